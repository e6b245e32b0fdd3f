"""When does the temporal ensemble pay? DNN, BNN-N and VQ-BNN across two regime knobs.

The quality table runs the shipped nets on the protocol's streams. Whether VQ-BNN can
beat DNN and BNN-N there depends on two things the papers' CamVid setting had and our
data may not:

- Overconfident single passes. Averaging predictions lowers confidence; that helps
  calibration only when a single pass is too sure of itself. Knob: the nets as trained,
  or made overconfident after the fact by sharpening every pass, softmax(log p / T) with
  T < 1 (for one deterministic pass, the same as dividing its logits by T).
- Little motion between frames. The temporal average is not motion-compensated: every
  edge that moves between frames is blurred, which costs accuracy. Knob: the protocol's
  frame rate, or the same worlds rendered at 3× the frame rate (`frame_time` 1/3: a
  third of the motion a frame), with τ still 1.25 frames.

Same frames, same forward passes for every temperature: the sharpening is post hoc.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from benchmarks import report
from benchmarks.estimators import (
    TemporalState,
    bnn_maps,
    deterministic_probs,
    mc_probs,
    test_streams,
    to_batch,
)
from benchmarks.uq_metrics import SegmentationAccumulator
from models import SegNet
from service import uncertainty as U

ModelLoader = Callable[[str], SegNet]
METHODS = ("DNN", "BNN", "VQ-BNN")


@dataclass(frozen=True)
class RegimeConfig:
    dnn: str = "unet-ss"
    bnn: str = "unet-ss-mcd"
    streams: int = 4
    frames: int = 60
    height: int = 192
    width: int = 256
    samples: int = 30
    tau: float = 1.25  # frames
    temperatures: tuple[float, ...] = (1.0, 0.6)
    frame_times: tuple[float, ...] = (1.0, 1 / 3)
    max_batch: int = 32

    @classmethod
    def quick(cls) -> RegimeConfig:
        return cls(streams=1, frames=10, samples=5)


def sharpen(probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(log p / T) over the class dimension of `probs` (dim -3: …×C×H×W)."""
    if temperature == 1.0:
        return probs
    return (probs.clamp_min(torch.finfo(probs.dtype).tiny).log() / temperature).softmax(dim=-3)


def label_change(labels: np.ndarray) -> float:
    """Fraction of the pixels, valid in both, whose label differs from the previous frame's."""
    valid = (labels[1:] != 255) & (labels[:-1] != 255)
    return float(((labels[1:] != labels[:-1]) & valid).sum() / max(valid.sum(), 1))


def run(config: RegimeConfig, load: ModelLoader) -> list[dict[str, Any]]:
    """One row per (frame time, temperature): NLL, ECE-10 and accuracy of each method."""
    dnn, bnn = load(config.dnn), load(config.bnn)
    rows: list[dict[str, Any]] = []
    for frame_time in config.frame_times:
        accs = {
            (t, m): SegmentationAccumulator(dnn.config.num_classes)
            for t in config.temperatures
            for m in METHODS
        }
        changes: list[float] = []
        streams = test_streams(
            config.streams, config.frames, config.height, config.width, frame_time=frame_time
        )
        for stream in streams:
            changes.append(label_change(stream.labels))
            states = {t: TemporalState(config.tau) for t in config.temperatures}
            for t_frame in range(stream.frames.shape[0]):
                x = to_batch(stream.frames[t_frame : t_frame + 1])
                with torch.inference_mode():
                    det = deterministic_probs(dnn, x)
                    mc = mc_probs(bnn, x, config.samples, config.max_batch)[0]  # S×C×H×W
                labels = torch.from_numpy(stream.labels[t_frame])
                for temperature in config.temperatures:
                    d, samples = sharpen(det, temperature), sharpen(mc, temperature)
                    outputs = {
                        "DNN": (d, U.entropy(d)),
                        "BNN": _probs_and_entropy(bnn_maps(samples)),
                        "VQ-BNN": _probs_and_entropy(states[temperature].update(samples[:1], float(t_frame))),
                    }
                    for method, (probs, ent) in outputs.items():
                        accs[(temperature, method)].update(probs[0], labels, entropy=ent[0])
        for temperature in config.temperatures:
            row: dict[str, Any] = {
                "frame_time": frame_time,
                "temperature": temperature,
                "label_change": float(np.mean(changes)),
            }
            for method in METHODS:
                r = accs[(temperature, method)].result()
                row[method] = {"nll": r["nll"], "ece10": r["ece10"], "acc": r["acc"]}
            rows.append(row)
    return rows


def _probs_and_entropy(pair: tuple[torch.Tensor, U.MapBatch]) -> tuple[torch.Tensor, torch.Tensor]:
    probs, maps = pair
    return probs, maps.entropy


def table(rows: list[dict[str, Any]], samples: int) -> str:
    headers = ["frame time", "labels changed / frame", "T"]
    names = {"DNN": "DNN", "BNN": f"BNN-{samples}", "VQ-BNN": "VQ-BNN"}
    headers += [f"{names[m]} {k}" for m in METHODS for k in ("NLL", "ECE", "acc")]
    body = []
    for row in rows:
        cells = [
            f"{row['frame_time']:.3g}",
            report.fmt(row["label_change"], 3, True),
            f"{row['temperature']:g}",
        ]
        for method in METHODS:
            r = row[method]
            cells += [report.fmt(r["nll"], 4), report.fmt(r["ece10"], 3, True), report.fmt(r["acc"], 3, True)]
        body.append(cells)
    return report.table(headers, body, "l" + "r" * (len(headers) - 1))
