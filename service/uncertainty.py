"""Pure tensor functions of the uncertainty maths: entropy, the temporal EMA, the output maps.

VQ-BNN (Park et al., AAAI 2021) approximates the predictive distribution of
frame t by the importance-weighted ensemble of recent per-frame predictions,
p(y | x_t) ≈ Σ_k π_k p(y | x_k, w_k) with π_k ∝ exp(-|t - t_k| / τ). Kept as a
normalised running average it costs one element-wise update a frame:

    a = exp(-(t - t_last) / τ)
    P ← (a·W·P + p) / (a·W + 1);  A ← (a·W·A + H(p)) / (a·W + 1);  W ← a·W + 1

`P` is the ensemble's probabilities, `A` the ensemble's expected entropy
(aleatoric); H(P) − A is the mutual information (epistemic). Every function is
batched over a leading dimension S (slots or frames) and runs where its inputs
live; nothing here synchronises with the host.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

_TINY = torch.finfo(torch.float32).tiny


class MapBatch(NamedTuple):
    """Output maps of S frames at the model's size: `mask` S×h×w int64, the rest S×h×w float32."""

    mask: torch.Tensor
    confidence: torch.Tensor
    entropy: torch.Tensor
    aleatoric: torch.Tensor
    epistemic: torch.Tensor


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """S×C×h×w logits (any float dtype) → S×C×h×w float32 probabilities, summed over dim 1."""
    return logits.float().softmax(dim=1)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """S×C×h×w probabilities → S×h×w entropy in nats (0·log 0 counts as 0)."""
    # In place on one scratch tensor: half the time of torch.special.entr on a CPU core.
    # The clamp makes p = 0 (an underflowed softmax) give 0·log(tiny) = 0, not 0·(−inf).
    log_p = probs.clamp_min(_TINY).log_().mul_(probs)
    return log_p.sum(dim=1).neg_()


def decay(t: torch.Tensor, t_last: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """Per-slot decay a = exp(-(t - t_last) / τ): S float64 each → S float32.

    Float64 in, because capture timestamps (~1.7e9 s) lose their sub-second part in float32.
    """
    return torch.exp(-(t - t_last) / tau).float()


def ema_update(
    P: torch.Tensor, A: torch.Tensor, weight: torch.Tensor, probs: torch.Tensor, ent: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One normalised EMA step for S slots; returns new (P, A, W), inputs untouched.

    `P` S×C×h×w and `probs` S×C×h×w float32; `A` and `ent` S×h×w float32;
    `weight` S float32 is the already-decayed a·W (0 starts the slot afresh: P ← p).
    """
    P, A = P.clone(), A.clone()
    W = ema_update_(P, A, weight, probs, ent)
    return P, A, W


def ema_update_(
    P: torch.Tensor, A: torch.Tensor, weight: torch.Tensor, probs: torch.Tensor, ent: torch.Tensor
) -> torch.Tensor:
    """`ema_update` in place on `P` and `A`; returns the new W (S).

    Written as P + (p − P)/(a·W + 1), which equals (a·W·P + p)/(a·W + 1): one `lerp_`
    reads P and p and writes P in a single pass with no temporary, because the state
    update is memory-bound.
    """
    denom = weight + 1.0
    step = denom.reciprocal()
    P.lerp_(probs, step.view(-1, 1, 1, 1))
    A.lerp_(ent, step.view(-1, 1, 1))
    return denom


def total_variation(P: torch.Tensor, probs: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Mean over pixels of ½·Σ_c |P − p|, in [0, 1]: S×C×h×w twice → S float32.

    The scene-cut signal: how far the new frame's prediction is from the stream's ensemble.
    `stride` > 1 averages over every stride-th row and column only: a scene cut moves
    the whole frame, so 1/16 of the pixels (stride 4) decide it as well as all of them,
    at a sixteenth of the memory traffic.
    """
    if stride > 1:
        P, probs = P[..., ::stride, ::stride], probs[..., ::stride, ::stride]
    return 0.5 * (probs - P).abs_().sum(dim=1).mean(dim=(1, 2))


def output_maps(P: torch.Tensor, A: torch.Tensor, total: torch.Tensor | None = None) -> MapBatch:
    """Maps from ensemble probabilities `P` S×C×h×w and expected entropy `A` S×h×w.

    `epistemic = max(H(P) − A, 0)`: by concavity of entropy H(P) ≥ A exactly; the
    clamp only removes float rounding. `total` = H(P) S×h×w when the caller has it
    (a single deterministic pass: it is A).
    """
    confidence, mask = P.max(dim=1)
    if total is None:
        total = entropy(P)
    return MapBatch(
        mask=mask,
        confidence=confidence,
        entropy=total,
        aleatoric=A,
        epistemic=(total - A).clamp_min(0.0),
    )
