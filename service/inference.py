"""One micro-batch through the backend and the slot pool, on the inference thread.

Frames are grouped by kind — deterministic (dnn, vq-dnn), one stochastic pass
(vq-bnn), N-sample MC dropout (bnn) — one forward per kind. Only after every
forward has succeeded are the temporal frames folded into their slots, all in
one `SlotPool.update`, so a failing backend leaves every stream's state as it was.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from service import preprocess, uncertainty
from service.backends import Backend
from service.streams import SlotPool, Stream
from service.types import FrameResult, ImageArray, Mode, uses_temporal_state

_KIND_ORDER: dict[Mode, int] = {"dnn": 0, "vq-dnn": 0, "vq-bnn": 1, "bnn": 2}


@dataclass
class FrameJob:
    """A queued frame. `time` and `tau` are in the stream's clock (frames or seconds)."""

    stream: Stream
    image: ImageArray
    time: float
    tau: float
    samples: int
    future: asyncio.Future[FrameResult]
    received: float  # perf_counter() when submitted
    dropped: int = 0  # frames of the stream this one superseded (latest wins)
    queue_s: float = 0.0
    # Fixed when the batch is formed, on the event loop: the worker never reads the live record.
    mode: Mode = "vq-bnn"
    slot: int | None = None
    reset: bool = False


@dataclass(frozen=True)
class BatchParams:
    input_size: tuple[int, int]  # (h, w) of the model
    scene_cut_threshold: float
    bnn_batch_size: int  # MC-dropout samples per forward pass


def run_batch(
    backend: Backend, pool: SlotPool, jobs: Sequence[FrameJob], params: BatchParams
) -> list[FrameResult]:
    """Results of `jobs` (distinct streams), in order; `frame_index` and queue/total timings left to fill."""
    started = time.perf_counter()
    device = backend.device
    order = sorted(range(len(jobs)), key=lambda i: _KIND_ORDER[jobs[i].mode])
    ordered = [jobs[i] for i in order]
    images = preprocess.to_batch([job.image for job in ordered], params.input_size, device)

    probs: list[torch.Tensor] = []
    expected: list[torch.Tensor] = []
    kinds = [_KIND_ORDER[job.mode] for job in ordered]
    for kind in (0, 1, 2):
        rows = [i for i, k in enumerate(kinds) if k == kind]
        if not rows:
            continue
        part = images[rows[0] : rows[-1] + 1]  # kinds are contiguous after the sort
        if kind == 2:
            p, a = mc_dropout(backend, part, [ordered[i].samples for i in rows], params.bnn_batch_size)
        else:
            p = backend.forward(part, kind == 1)
            a = uncertainty.entropy(p)
        probs.append(p)
        expected.append(a)
    P = probs[0] if len(probs) == 1 else torch.cat(probs)
    A = expected[0] if len(expected) == 1 else torch.cat(expected)
    _sync(device)
    inferred = time.perf_counter()

    cut = [False] * len(ordered)
    temporal = [i for i, job in enumerate(ordered) if uses_temporal_state(job.mode)]
    if temporal:
        P, A, cut = _update_state(pool, ordered, temporal, P, A, params.scene_cut_threshold)
    # A single deterministic pass is its own ensemble: H(P) is the A computed above.
    total = A if all(job.mode == "dnn" for job in ordered) else None
    maps = preprocess.to_frames(
        uncertainty.output_maps(P, A, total), [(job.image.shape[0], job.image.shape[1]) for job in ordered]
    )
    updated = time.perf_counter()

    results: list[FrameResult | None] = [None] * len(jobs)
    for position, (index, job) in enumerate(zip(order, ordered, strict=True)):
        results[index] = FrameResult(
            stream_id=job.stream.stream_id,
            frame_index=0,
            mode=job.mode,
            timestamp=job.time,
            state_reset=job.reset or cut[position],
            height=job.image.shape[0],
            width=job.image.shape[1],
            maps=maps[position],
            timings={"infer": inferred - started, "update": updated - inferred},
        )
    return [r for r in results if r is not None]


def _update_state(
    pool: SlotPool,
    ordered: Sequence[FrameJob],
    temporal: list[int],
    P: torch.Tensor,
    A: torch.Tensor,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
    """Fold the temporal rows of P B×C×h×w / A B×h×w into their slots; returns the new P, A and cuts."""
    device = P.device
    jobs = [ordered[i] for i in temporal]
    everything = len(temporal) == len(ordered)
    rows = None if everything else torch.tensor(temporal, dtype=torch.long, device=device)
    p_rows = P if rows is None else P.index_select(0, rows)
    a_rows = A if rows is None else A.index_select(0, rows)
    new_P, new_A, cut_rows = pool.update(
        [_slot(job) for job in jobs],
        p_rows,
        a_rows,
        [job.time for job in jobs],
        [job.tau for job in jobs],
        [job.reset for job in jobs],
        threshold,
    )
    cut = [False] * len(ordered)
    for i, flag in zip(temporal, cut_rows.tolist(), strict=True):
        cut[i] = bool(flag)
    if rows is None:
        return new_P, new_A, cut
    return P.index_copy(0, rows, new_P), A.index_copy(0, rows, new_A), cut


def _slot(job: FrameJob) -> int:
    if job.slot is None:
        raise RuntimeError(f"frame of stream {job.stream.stream_id!r} has no slot: take it with take_batch()")
    return job.slot


def mc_dropout(
    backend: Backend, images: torch.Tensor, samples: Sequence[int], chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """MC-dropout average of B frames: `images` B×3×h×w, `samples[i]` passes for frame i.

    The B·N copies run in forward passes of at most `chunk` images. Returns the
    mean probabilities B×C×h×w and the mean per-sample entropy B×h×w (aleatoric).
    """
    device = images.device
    counts = torch.tensor(list(samples), device=device)
    owner = torch.repeat_interleave(torch.arange(len(samples), device=device), counts)
    sum_p: torch.Tensor | None = None
    sum_h: torch.Tensor | None = None
    for start in range(0, owner.numel(), chunk):
        rows = owner[start : start + chunk]
        p = backend.forward(images.index_select(0, rows), True)
        if sum_p is None or sum_h is None:
            sum_p = torch.zeros(len(samples), *p.shape[1:], device=device)
            sum_h = torch.zeros(len(samples), *p.shape[2:], device=device)
        sum_p.index_add_(0, rows, p)
        sum_h.index_add_(0, rows, uncertainty.entropy(p))
    assert sum_p is not None and sum_h is not None
    n = counts.to(torch.float32)
    return sum_p / n.view(-1, 1, 1, 1), sum_h / n.view(-1, 1, 1)


def _sync(device: torch.device) -> None:
    # Honest stage timings on CUDA; the host copy of the maps would wait here anyway.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
