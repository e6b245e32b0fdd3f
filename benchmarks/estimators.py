"""The pieces every quality measurement shares: held-out streams and the estimators.

DNN (one deterministic pass), BNN-N (N MC-dropout passes averaged) and the VQ
methods' temporal state, which runs the serving code's own pure functions
(`service.uncertainty`), so the benchmark measures what the server computes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from service import uncertainty as U

# --------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class Stream:
    frames: np.ndarray  # T×H×W×3 uint8
    labels: np.ndarray  # T×H×W uint8, 255 = ignore
    ood: np.ndarray  # T×H×W bool
    unknown_object: bool


def test_streams(
    count: int,
    frames: int,
    height: int,
    width: int,
    unknown_object: bool = False,
    offset: int = 0,
    **spec: Any,
) -> Iterator[Stream]:
    """Held-out streams (seeds never used in training), generated one at a time to bound memory."""
    from models.data.synthetic import StreamSpec, generate_stream, split_seeds

    seeds = split_seeds("test", offset + count)[offset:]
    for seed in seeds:
        s = generate_stream(
            StreamSpec(
                seed=seed,
                num_frames=frames,
                height=height,
                width=width,
                unknown_object=unknown_object,
                **spec,
            )
        )
        yield Stream(np.asarray(s.frames), np.asarray(s.labels), np.asarray(s.ood), unknown_object)


def to_batch(frames: np.ndarray) -> torch.Tensor:
    """K×H×W×3 uint8 → K×3×H×W float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


# --------------------------------------------------------------------------- the estimators


def deterministic_probs(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """K×3×H×W → K×C×H×W softmax of one deterministic pass."""
    _set_stochastic(model, False)
    return U.softmax(model(x))


def mc_probs(model: nn.Module, x: torch.Tensor, samples: int, max_batch: int) -> torch.Tensor:
    """K×3×H×W → K×S×C×H×W softmax of S MC-dropout passes, S·K images in batches of `max_batch`."""
    _set_stochastic(model, True)
    rep = x.repeat_interleave(samples, dim=0)
    out = torch.cat([U.softmax(model(part)) for part in torch.split(rep, max_batch)])
    return out.view(x.shape[0], samples, *out.shape[1:])


def bnn_maps(probs: torch.Tensor) -> tuple[torch.Tensor, U.MapBatch]:
    """S×C×H×W samples of one frame → (1×C×H×W mean, its maps): aleatoric = mean entropy."""
    mean = probs.mean(dim=0, keepdim=True)
    return mean, U.output_maps(mean, U.entropy(probs).mean(dim=0, keepdim=True))


@dataclass
class TemporalState:
    """One stream's VQ state, updated by the serving code's pure functions."""

    tau: float
    P: torch.Tensor | None = None
    A: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    t_last: torch.Tensor | None = None

    def update(self, probs: torch.Tensor, t: float) -> tuple[torch.Tensor, U.MapBatch]:
        """`probs` 1×C×H×W of frame time `t` (frames) → (1×C×H×W ensemble, its maps)."""
        ent = U.entropy(probs)
        now = torch.tensor([t], dtype=torch.float64)
        if self.P is None or self.A is None or self.weight is None or self.t_last is None:
            P, A, weight = torch.zeros_like(probs), torch.zeros_like(ent), torch.zeros(1)
        else:
            P, A = self.P, self.A
            weight = self.weight * U.decay(now, self.t_last, torch.tensor([self.tau], dtype=torch.float64))
        self.P, self.A, self.weight = U.ema_update(P, A, weight, probs, ent)
        self.t_last = now
        return self.P, U.output_maps(self.P, self.A)


def _set_stochastic(model: nn.Module, on: bool) -> None:
    setter = getattr(model, "set_stochastic", None)
    if setter is not None:
        setter(on)
