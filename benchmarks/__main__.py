"""`python -m benchmarks [--quick] [--only quality|latency|load]`: run the benchmarks, write the results.

Tables (Markdown) and plots (PNG) go to `benchmarks/results/` (or `--out`); `summary.md`
there collects every target with its verdict. `--quick` runs the same code on fewer
streams, frames and corruptions (under ~10 minutes on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from benchmarks import report
from service import threads

PARTS = ("quality", "latency", "load")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="streamuq bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer streams/frames/corruptions, same code")
    parser.add_argument(
        "--only", choices=PARTS, action="append", help="run only this part (repeatable); default: all three"
    )
    parser.add_argument("--out", type=Path, default=report.RESULTS_DIR, help="where tables and plots go")
    parser.add_argument(
        "--random-init",
        action="store_true",
        help="use randomly initialised nets instead of the shipped weights (development only: "
        "the numbers then mean nothing)",
    )
    parser.add_argument(
        "--engine-p50-ms",
        type=float,
        help="the load part's in-process reference: this run's latency-part vq-bnn p50 (set by a full run)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    parts = args.only or list(PARTS)
    if len(parts) > 1:
        return run_apart(args, parts)
    out: Path = args.out
    begin = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - begin:6.0f} s] {message}", flush=True)

    sections: dict[str, Any] = {}
    if "quality" in parts:
        from benchmarks import quality

        q_config = quality.QualityConfig.quick() if args.quick else quality.QualityConfig()
        sections["quality"] = quality.run(q_config, _model_loader(args.random_init), out, log)
    if "latency" in parts:
        from benchmarks import latency

        l_config = latency.LatencyConfig.quick() if args.quick else latency.LatencyConfig()
        sections["latency"] = latency.run(l_config, _pretrained_loader(args.random_init), out, log)
    if "load" in parts:
        from benchmarks import load

        d_config = load.LoadConfig.quick() if args.quick else load.LoadConfig()
        if args.random_init:
            d_config = replace(d_config, weights_dir=_random_weights(d_config.model))
        sections["load"] = load.run(d_config, out, log, engine_p50_ms=args.engine_p50_ms)
    summary = summarize(sections, quick=args.quick, seconds=time.perf_counter() - begin, out=out)
    report.write(out / "summary.md", summary)
    print(summary)
    return 0


def run_apart(args: argparse.Namespace, parts: Sequence[str]) -> int:
    """Each part in a fresh `python -m benchmarks --only PART` process, then one summary.

    A fresh process per part, because torch's thread teams outlive the part that made
    them: after the quality part computed on the main thread, the latency part's engines
    would run throttled (see service/threads.py) and time a slower engine than the server's.
    """
    begin = time.perf_counter()
    flags = [*(["--quick"] if args.quick else []), *(["--random-init"] if args.random_init else [])]
    for part in parts:
        extra: list[str] = []
        if part == "load" and "latency" in parts:  # the load ratios divide by this run's engine p50
            raw = json.loads((args.out / "latency.raw.json").read_text())
            extra = ["--engine-p50-ms", f"{_vq_bnn_p50_ms(raw):.3f}"]
        command = [sys.executable, "-m", "benchmarks", "--only", part, "--out", str(args.out), *flags, *extra]
        code = run_part(command)
        if code != 0:
            print(f"benchmark part {part!r} failed with exit code {code}", file=sys.stderr)
            return code
    summary = summarize({}, quick=args.quick, seconds=time.perf_counter() - begin, out=args.out, fresh=parts)
    report.write(args.out / "summary.md", summary)
    print(summary)
    return 0


def run_part(command: list[str]) -> int:
    return subprocess.run(command, check=False).returncode


def _vq_bnn_p50_ms(latency_raw: dict[str, Any]) -> float:
    return 1000 * statistics.median(latency_raw["modes"]["torch"]["vq-bnn"]["wall"])


def _model_loader(random_init: bool) -> Any:
    from models import create_model, load_pretrained

    if random_init:
        return lambda name: create_model(name).eval()
    return lambda name: load_pretrained(name)[0]


def _pretrained_loader(random_init: bool) -> Any:
    from models import ModelCard, create_model, load_pretrained

    if not random_init:
        return load_pretrained

    def load(name: str) -> Any:
        from models.data.synthetic import CLASSES, PALETTE

        model = create_model(name).eval()
        return model, ModelCard(name, CLASSES, PALETTE, (192, 256), model.config)

    return load


def _random_weights(name: str) -> Path:
    """A weights folder holding a randomly initialised `name`, for the server of a --random-init run."""
    import tempfile

    from safetensors.torch import save_file

    from models import ModelCard, create_model
    from models.data.synthetic import CLASSES, PALETTE

    folder = Path(tempfile.mkdtemp(prefix="streamuq-random-weights-"))
    model = create_model(name).eval()
    save_file(model.state_dict(), str(folder / f"{name}.safetensors"))
    ModelCard(name, CLASSES, PALETTE, (192, 256), model.config).save(folder / f"{name}.json")
    return folder


def summarize(
    sections: dict[str, Any],
    quick: bool,
    seconds: float,
    out: Path | None = None,
    fresh: Sequence[str] = (),
) -> str:
    """Every target with its verdict, and the headline quality table.

    Parts not in `sections` are taken from their `<part>.raw.json` in `out`, when a run
    left one; unless named in `fresh` (run just now, in their own process) they say so.
    """
    import importlib

    rows: list[list[str]] = []
    headline: str | None = None
    for part in PARTS:
        if part in sections:
            module = importlib.import_module(f"benchmarks.{part}")
            found, label = module.targets(sections[part]), part
            if part == "quality":
                headline = module.headline_table(sections[part])
        elif out is not None and (out / f"{part}.raw.json").is_file():
            raw = json.loads((out / f"{part}.raw.json").read_text())
            found = raw.get("targets", [])
            label = part if part in fresh else f"{part} (run {raw.get('finished', 'earlier')})"
            if part == "quality":
                headline = raw.get("headline")
        else:
            continue
        rows += [[label, t["target"], t["ours"], report.verdict(t["met"])] for t in found]
    parts = [
        "# Benchmark summary",
        "",
        f"`python -m benchmarks{' --quick' if quick else ''}` on "
        f"{report.machine_line(threads.LIBRARY_DEFAULT)}; "
        f"{seconds:.0f} s in all. "
        "Details: [quality](quality.md), [latency](latency.md), [load](load.md).",
        "",
        report.table(["part", "target", "ours", "verdict"], rows, "lllc"),
    ]
    if headline:
        parts += ["", "## Headline", "", headline, "", "![reliability](reliability.png)"]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.exit(main())
