"""Names and shapes that flow through the pipeline, defined once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

import numpy as np
import numpy.typing as npt
import torch

Mode = Literal["dnn", "bnn", "vq-dnn", "vq-bnn"]
MODES: tuple[Mode, ...] = get_args(Mode)
DEFAULT_MODE: Mode = "vq-bnn"

OutputName = Literal["mask", "confidence", "entropy", "aleatoric", "epistemic"]
OUTPUT_NAMES: tuple[OutputName, ...] = get_args(OutputName)

Stage = Literal["decode", "queue", "infer", "update", "encode", "total"]
STAGES: tuple[Stage, ...] = get_args(Stage)

# H×W×3 uint8 RGB, as decoded from the client's bytes.
ImageArray = npt.NDArray[np.uint8]
# H×W uint8 class ids.
MaskArray = npt.NDArray[np.uint8]
# H×W float32 per-pixel values (confidence, entropy, …).
MapArray = npt.NDArray[np.float32]
# B×3×h×w float32 in [0, 1] at the model's input size, on the inference device.
ImageBatch = torch.Tensor
# B×C×h×w float32 softmax probabilities, on the inference device.
ProbBatch = torch.Tensor


def uses_temporal_state(mode: Mode) -> bool:
    return mode in ("vq-dnn", "vq-bnn")


def is_stochastic(mode: Mode) -> bool:
    return mode in ("bnn", "vq-bnn")


@dataclass(frozen=True)
class UncertaintyMaps:
    """Per-pixel outputs at the frame's own size: `mask` H×W uint8, the rest H×W float32.

    Entropies are in nats; `entropy = aleatoric + epistemic` up to the clamp of
    epistemic at 0.
    """

    mask: MaskArray
    confidence: MapArray
    entropy: MapArray
    aleatoric: MapArray
    epistemic: MapArray

    def get(self, name: OutputName) -> npt.NDArray[np.generic]:
        return getattr(self, name)  # type: ignore[no-any-return]


@dataclass
class FrameResult:
    """What one processed frame gives back; `timings` are seconds per stage."""

    stream_id: str
    frame_index: int  # 0-based index among the frames this stream has processed
    mode: Mode
    timestamp: float  # the time used for the decay: capture seconds, or the frame index
    state_reset: bool  # the temporal state started afresh with this frame
    height: int
    width: int
    maps: UncertaintyMaps
    timings: dict[str, float] = field(default_factory=dict)
    dropped_frames: int = 0  # frames of this stream dropped (newest wins) since its previous result


@dataclass(frozen=True)
class StreamInfo:
    stream_id: str
    mode: Mode
    frames_seen: int
    created_at: float  # wall clock, seconds since the epoch
    last_seen: float
    state_bytes: int
    owner: str | None = None  # the API key's id that created it, when keys are on


class EngineObserver(Protocol):
    """How the engine reports to the metrics layer without importing it."""

    def batch_done(self, size: int) -> None: ...

    def frame_done(self, mode: Mode, outcome: str, timings: Mapping[str, float]) -> None:
        """`outcome`: "ok", "error" or "rejected"; `timings` in seconds per stage."""

    def frame_dropped(self, reason: str) -> None:
        """`reason`: "superseded", "queue_full", "too_many_streams", "shutdown", ..."""

    def gauges(self, streams_active: int, queue_depth: int, state_bytes: int) -> None: ...


class NullObserver:
    """The observer used when nobody listens (unit tests, benchmarks)."""

    def batch_done(self, size: int) -> None:
        pass

    def frame_done(self, mode: Mode, outcome: str, timings: Mapping[str, float]) -> None:
        pass

    def frame_dropped(self, reason: str) -> None:
        pass

    def gauges(self, streams_active: int, queue_depth: int, state_bytes: int) -> None:
        pass
