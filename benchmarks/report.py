"""Markdown tables and the small formatting rules every benchmark shares."""

from __future__ import annotations

import json
import math
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def fmt(value: Any, digits: int = 3, percent: bool = False) -> str:
    """A number for a table: NaN and None become an em dash, percentages get a % sign."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "yes" if value else "no"
    number = float(value)
    if math.isnan(number):
        return "—"
    if percent:
        return f"{100 * number:.{max(digits - 1, 1)}f} %"
    if number != 0 and abs(number) < 10 ** (-digits):
        return f"{number:.1e}"
    return f"{number:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub Markdown table; `align` is one letter per column (l, r, c), numbers right by default."""
    align = align or "l" + "r" * (len(headers) - 1)
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(marks[a] for a in align) + " |",
    ]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(met: bool | None) -> str:
    if met is None:
        return "not measured"
    return "**met**" if met else "**not met**"


def machine_line(threads: int | None = None) -> str:
    """Which machine the numbers are from: they mean nothing without it.

    `threads`: the intra-op threads the timed work ran with, when not this thread's own
    (the engine's inference thread has its own; see service/threads.py).
    """
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {threads or torch.get_num_threads()} torch threads, torch {torch.__version__}, "
        f"Python {platform.python_version()}, {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}"
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")
    return path


def write_raw(path: Path, data: Any) -> Path:
    """The raw numbers next to the tables (`*.raw.json` is not committed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stamped = {"finished": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), **data}
    path.write_text(json.dumps(stamped, indent=2, default=_jsonable) + "\n")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
