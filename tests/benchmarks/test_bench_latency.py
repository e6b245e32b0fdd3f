import math
from pathlib import Path

from bench_helpers import TINY_LATENCY, tiny_pretrained

from benchmarks import latency


def test_latency_tiny_run_measures_every_mode_and_writes_tables(tmp_path: Path) -> None:
    config = TINY_LATENCY
    result = latency.run(config, tiny_pretrained, tmp_path, log=lambda _: None)
    for mode in ("dnn", "vq-dnn", "vq-bnn", "bnn-4"):
        assert result.p50("torch", mode) > 0, mode
    assert len(result.modes["torch"]["dnn"]["wall"]) == 3
    assert all(math.isfinite(v) for v in result.ratios().values())
    assert len(result.throughput) == 4 and all(r["fps"] > 0 for r in result.throughput)
    assert result.flops > 0 and result.matmul_flops > 0
    text = (tmp_path / "latency.md").read_text()
    assert "vq-bnn / dnn" in text and "frames/s (all streams)" in text
