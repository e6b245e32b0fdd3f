"""Tiny random-init models and configurations shared by the benchmark tests."""

import torch

from benchmarks import latency, quality, regimes
from models import ModelCard, SegNet, create_model
from models.data.synthetic import CLASSES, PALETTE

TINY_WIDTHS = (4, 4, 4, 4, 4)

TINY_QUALITY = quality.QualityConfig(
    streams=1,
    ood_streams=1,
    frames=4,
    height=32,
    width=48,
    samples=(1, 2, 3),
    timing_frames=1,
    shift_corruptions=("fog",),
    shift_severities=(3,),
    shift_streams=1,
    shift_frames=2,
    regimes=regimes.RegimeConfig(streams=1, frames=3, height=32, width=48, samples=2),
)

TINY_LATENCY = latency.LatencyConfig(
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


def tiny_loader(name: str) -> SegNet:
    torch.manual_seed(0)
    model = create_model(name, widths=TINY_WIDTHS).eval()
    with torch.no_grad():  # a random net is never sure; scale its logits so some pixels pass the 0.9 cutoff
        model.head.weight.mul_(300.0)
    return model


def tiny_pretrained(name: str) -> tuple[SegNet, ModelCard]:
    model = tiny_loader(name)
    card = ModelCard(name=name, classes=CLASSES, palette=PALETTE, input_size=(32, 48), config=model.config)
    return model, card
