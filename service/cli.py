"""`streamuq serve | train | export | bench | client`: thin commands over library functions.

Each subcommand's arguments belong to the module that does the work (its
`main(argv)`), so this file only dispatches and imports lazily: `streamuq train`
never pays for importing FastAPI, nor `streamuq client` for torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("service.server", "run the HTTP/WebSocket/KServe-v2 server"),
    "train": ("models.train", "train a shipped model on synthetic streams or a CamVid folder"),
    "export": ("models.export", "export a model to ONNX (deterministic or stochastic MC dropout)"),
    "bench": ("benchmarks.__main__", "run the benchmarks and write benchmarks/results/"),
    "client": ("service.client", "stream a video or image folder to a server and save the overlay"),
}


def _usage() -> str:
    lines = ["usage: streamuq COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<8} {about}" for name, (_, about) in COMMANDS.items()]
    lines += ["", "`streamuq COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"streamuq: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    run: Callable[[list[str]], int] = module.main
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
