import json
import statistics
import sys
from pathlib import Path

import pytest
from bench_helpers import TINY_LATENCY, TINY_QUALITY, tiny_loader, tiny_pretrained

from benchmarks import __main__ as bench
from benchmarks import latency, quality


def test_main_runs_quality_and_latency_and_writes_the_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quality.QualityConfig, "quick", classmethod(lambda cls: TINY_QUALITY))
    monkeypatch.setattr(latency.LatencyConfig, "quick", classmethod(lambda cls: TINY_LATENCY))
    monkeypatch.setattr(bench, "_model_loader", lambda random_init: tiny_loader)
    monkeypatch.setattr(bench, "_pretrained_loader", lambda random_init: tiny_pretrained)
    commands: list[list[str]] = []

    def run_in_process(command: list[str]) -> int:
        # Each part would get its own interpreter; here it runs in this one, with the tiny configs.
        commands.append(command)
        assert command[:3] == [sys.executable, "-m", "benchmarks"]
        return 0 if "load" in command else bench.main(command[3:])

    monkeypatch.setattr(bench, "run_part", run_in_process)
    parts = ["--only", "quality", "--only", "latency", "--only", "load"]
    assert bench.main(["--quick", *parts, "--out", str(tmp_path)]) == 0
    assert [c[c.index("--only") + 1] for c in commands] == ["quality", "latency", "load"]
    raw = json.loads((tmp_path / "latency.raw.json").read_text())
    p50 = 1000 * statistics.median(raw["modes"]["torch"]["vq-bnn"]["wall"])
    load_command = commands[-1]
    assert float(load_command[load_command.index("--engine-p50-ms") + 1]) == pytest.approx(p50, abs=1e-3)
    summary = (tmp_path / "summary.md").read_text()
    assert "VQ-BNN +SS" in summary and "vq-bnn / dnn" in summary
    assert "quality (run " not in summary  # run just now: no date stamp
    for name in ("quality.md", "latency.md", "reliability.png", "nll_vs_fps.png", "example_frame.png"):
        assert (tmp_path / name).is_file(), name
    # a later run of one part keeps the other parts' verdicts, marked with their run time
    assert bench.main(["--quick", "--only", "latency", "--out", str(tmp_path)]) == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "quality (run " in summary and "VQ-BNN +SS" in summary
