import math
from pathlib import Path

from benchmarks import latency
from models import ModelCard, SegNet, create_model
from models.data.synthetic import CLASSES, PALETTE


def tiny_pretrained(name: str) -> tuple[SegNet, ModelCard]:
    model = create_model(name, widths=(4, 4, 4, 4, 4)).eval()
    card = ModelCard(name=name, classes=CLASSES, palette=PALETTE, input_size=(32, 48), config=model.config)
    return model, card


def test_latency_tiny_run_measures_every_mode_and_writes_tables(tmp_path: Path) -> None:
    config = latency.LatencyConfig(
        frames=3,
        warmup=1,
        bnn_frames=1,
        bnn_samples=4,
        onnx_frames=0,
        onnx_bnn_frames=0,
        backends=("torch",),
        stream_counts=(1, 2),
        batch_sizes=(1, 2),
        throughput_frames=4,
    )
    result = latency.run(config, tiny_pretrained, tmp_path, log=lambda _: None)
    for mode in ("dnn", "vq-dnn", "vq-bnn", "bnn-4"):
        assert result.p50("torch", mode) > 0, mode
    assert len(result.modes["torch"]["dnn"]["wall"]) == 3
    assert all(math.isfinite(v) for v in result.ratios().values())
    assert len(result.throughput) == 4 and all(r["fps"] > 0 for r in result.throughput)
    assert result.flops > 0 and result.matmul_flops > 0
    text = (tmp_path / "latency.md").read_text()
    assert "vq-bnn / dnn" in text and "frames/s (all streams)" in text
