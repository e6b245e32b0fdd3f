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
    assert bench.main(["--quick", "--only", "quality", "--only", "latency", "--out", str(tmp_path)]) == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "VQ-BNN +SS" in summary and "vq-bnn / dnn" in summary
    for name in ("quality.md", "latency.md", "reliability.png", "nll_vs_fps.png", "example_frame.png"):
        assert (tmp_path / name).is_file(), name
    # a later run of one part keeps the other parts' verdicts, marked with their run time
    assert bench.main(["--quick", "--only", "latency", "--out", str(tmp_path)]) == 0
    summary = (tmp_path / "summary.md").read_text()
    assert "quality (run " in summary and "VQ-BNN +SS" in summary
