"""The slot pool: every stream's temporal state in preallocated tensors on the inference device.

One slot a stream. The state update of all streams in a batch is one gather,
one element-wise update and one scatter (`SlotPool.update`), never a Python
loop over streams. `StreamTable` keeps the host-side records (mode, clock,
counters, owner) and hands out slots; it runs on the event loop only, while
`SlotPool.update` runs on the inference thread. They never race: slot tensors
are written only by `update`, and a reset is a flag carried by the next frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from service import uncertainty
from service.errors import InvalidParameter, OutOfOrderFrame, StreamNotFound, TooManyStreams
from service.types import Mode, StreamInfo, uses_temporal_state

Clock = Literal["frames", "seconds"]
SCENE_CUT_STRIDE = 4  # the scene-cut divergence is averaged over every 4th row and column


class SlotPool:
    """State of `capacity` streams at the model's size (h, w) with C classes, on `device`.

    P S×C×h×w float32 (ensemble probabilities), A S×h×w float32 (expected
    entropy), W S float32 (accumulated weight), t_last S float64 (time of the
    last frame, in the stream's own clock).
    """

    def __init__(
        self, capacity: int, num_classes: int, height: int, width: int, device: torch.device | str
    ) -> None:
        if capacity < 1:
            raise ValueError(f"slot pool capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.device = torch.device(device)
        self.P = torch.zeros(capacity, num_classes, height, width, device=self.device)
        self.A = torch.zeros(capacity, height, width, device=self.device)
        self.W = torch.zeros(capacity, device=self.device)
        self.t_last = torch.zeros(capacity, dtype=torch.float64, device=self.device)
        self._free = list(range(capacity - 1, -1, -1))

    @property
    def slot_bytes(self) -> int:
        """Bytes one slot holds across P, A, W and t_last."""
        tensors = (self.P, self.A, self.W, self.t_last)
        return sum(t[0].numel() * t.element_size() for t in tensors)

    @property
    def free_slots(self) -> int:
        return len(self._free)

    def acquire(self) -> int:
        """A free slot index; its content is stale until its first `update` with `reset=True`."""
        if not self._free:
            raise RuntimeError("no free slot: call release() on a deleted stream's slot first")
        return self._free.pop()

    def release(self, slot: int) -> None:
        self._free.append(slot)

    @torch.inference_mode()
    def update(
        self,
        slots: Sequence[int],
        probs: torch.Tensor,
        ent: torch.Tensor,
        times: Sequence[float],
        taus: Sequence[float],
        resets: Sequence[bool],
        scene_cut_threshold: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fold one frame into each of B distinct slots; returns (P, A, cut) after the update.

        `probs` B×C×h×w float32, `ent` B×h×w float32
        (H(probs) or, for a multi-sample frame, its mean); per slot its frame's time
        and τ (the stream's clock) and whether to start afresh (first frame, or after
        `reset_stream`). Returns P B×C×h×w and A B×h×w (valid until the next update)
        and `cut` B bool on the device: the prediction diverged from the ensemble by
        more than `scene_cut_threshold` (mean total variation), so the old state was dropped.
        """
        n = len(slots)
        if len(set(slots)) != n:
            raise ValueError(f"slots {list(slots)} repeat: one frame per stream in a batch")
        # One host→device copy for all the per-slot scalars.
        meta = torch.tensor([list(times), list(taus), [float(r) for r in resets]], dtype=torch.float64)
        t, tau, reset = meta.to(self.device, non_blocking=True).unbind(0)
        first = slots[0]
        contiguous = list(slots) == list(range(first, first + n))
        index = None if contiguous else torch.tensor(list(slots), device=self.device)
        if index is None:  # a run of slots (always so for one stream): views, updated in place
            P, A = self.P[first : first + n], self.A[first : first + n]
            W, t_last = self.W[first : first + n], self.t_last[first : first + n]
        else:  # gather, update the copies, scatter back
            P, A = self.P.index_select(0, index), self.A.index_select(0, index)
            W, t_last = self.W.index_select(0, index), self.t_last.index_select(0, index)

        weight = torch.where(reset > 0, 0.0, uncertainty.decay(t, t_last, tau) * W)
        divergence = uncertainty.total_variation(P, probs, stride=SCENE_CUT_STRIDE)
        cut = (weight > 0) & (divergence > scene_cut_threshold)
        weight = torch.where(cut, 0.0, weight)
        new_W = uncertainty.ema_update_(P, A, weight, probs, ent)

        if index is None:
            W.copy_(new_W)
            t_last.copy_(t)
        else:
            self.P.index_copy_(0, index, P)
            self.A.index_copy_(0, index, A)
            self.W.index_copy_(0, index, new_W)
            self.t_last.index_copy_(0, index, t)
        return P, A, cut

    def read(self, slot: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(P C×h×w, A h×w, W) of one slot, copies on the device (for tests and inspection)."""
        return self.P[slot].clone(), self.A[slot].clone(), float(self.W[slot])


@dataclass
class Stream:
    """Host-side record of one stream. Mutated on the event loop only."""

    stream_id: str
    mode: Mode
    slot: int | None  # None for stateless modes (dnn, bnn)
    owner: str | None
    created_at: float  # wall clock
    last_seen: float  # wall clock
    last_active: float  # monotonic clock, for the TTL
    clock: Clock | None = None  # fixed by the first frame after creation or reset
    last_time: float | None = None  # time of the last accepted frame, in `clock`
    arrivals: int = 0  # frames accepted (processed or not): the frame clock
    frames_seen: int = 0  # frames processed
    pending: int = 0  # frames queued or in flight: never evicted while > 0
    reset_next: bool = True  # the next processed frame starts the state afresh
    deleted: bool = False


class StreamTable:
    """Streams by id over a `SlotPool`: create, look up, reset, delete, evict idle after a TTL."""

    def __init__(
        self,
        pool: SlotPool,
        *,
        max_streams: int,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pool = pool
        self.max_streams = max_streams
        self.ttl_s = ttl_s
        self._clock = clock
        self._streams: dict[str, Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    def __contains__(self, stream_id: object) -> bool:
        return stream_id in self._streams

    def get(self, stream_id: str) -> Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise StreamNotFound(
                f"stream {stream_id!r} not found; send it a frame to create it (it may have been "
                f"idle for more than {self.ttl_s:g} s and evicted)"
            ) from None

    def find(self, stream_id: str) -> Stream | None:
        return self._streams.get(stream_id)

    def streams(self) -> list[Stream]:
        return list(self._streams.values())

    def check_capacity(self, mode: Mode) -> None:
        """Raise TooManyStreams unless one more stream of `mode` fits (after evicting idle streams)."""
        needs_slot = uses_temporal_state(mode)
        if len(self._streams) >= self.max_streams or (needs_slot and not self.pool.free_slots):
            self.evict_idle()
        # Deleted streams keep their slot until their in-flight frames finish, hence the second test.
        if len(self._streams) >= self.max_streams or (needs_slot and not self.pool.free_slots):
            raise TooManyStreams(
                f"{len(self._streams)} streams are open, the maximum is {self.max_streams}; delete a "
                f"stream (DELETE /v1/streams/{{id}}), wait for idle ones to expire after "
                f"{self.ttl_s:g} s, or raise STREAMUQ_MAX_STREAMS"
            )

    def create(self, stream_id: str, mode: Mode, owner: str | None = None) -> Stream:
        if stream_id in self._streams:
            raise RuntimeError(f"stream {stream_id!r} exists: call get() or delete() first")
        self.check_capacity(mode)
        slot = self.pool.acquire() if uses_temporal_state(mode) else None
        now = time.time()
        stream = Stream(
            stream_id, mode, slot, owner, created_at=now, last_seen=now, last_active=self._clock()
        )
        self._streams[stream_id] = stream
        return stream

    def touch(self, stream: Stream) -> None:
        stream.last_seen = time.time()
        stream.last_active = self._clock()

    def check_time(self, stream: Stream, timestamp: float | None) -> tuple[Clock, float]:
        """The (clock, time) a new frame of `stream` gets; refuses out-of-order and mixed clocks.

        Without a timestamp the time is the stream's frame counter (τ in frames);
        with one it is the capture time (τ in seconds). A stream keeps the clock of
        its first frame until it is reset: mixing the two would compare seconds
        with frame counts, so it is refused.
        """
        clock: Clock = "frames" if timestamp is None else "seconds"
        if stream.clock is not None and clock != stream.clock:
            have = "capture timestamps" if stream.clock == "seconds" else "no timestamps"
            raise InvalidParameter(
                f"stream {stream.stream_id!r} was started with {have}; send "
                f"{'a timestamp' if stream.clock == 'seconds' else 'no timestamp'} with every frame, "
                "or reset the stream to switch"
            )
        time_ = float(stream.arrivals) if timestamp is None else float(timestamp)
        if timestamp is not None and stream.last_time is not None and time_ < stream.last_time:
            raise OutOfOrderFrame(
                f"frame timestamp {time_} of stream {stream.stream_id!r} is earlier than its last "
                f"accepted frame at {stream.last_time}; send frames in capture order, or reset the stream"
            )
        return clock, time_

    def accept(self, stream: Stream, clock: Clock, time_: float) -> None:
        """Record that a frame at `time_` was queued for `stream`."""
        stream.clock = clock
        stream.last_time = time_
        stream.arrivals += 1
        stream.pending += 1
        self.touch(stream)

    def reset(self, stream_id: str) -> None:
        """The next frame starts the state afresh (and may pick a new clock)."""
        stream = self.get(stream_id)
        stream.reset_next = True
        stream.clock = None
        stream.last_time = None

    def delete(self, stream_id: str) -> Stream:
        stream = self.get(stream_id)
        del self._streams[stream_id]
        stream.deleted = True
        if stream.pending == 0:
            self._free(stream)
        return stream

    def finished(self, stream: Stream) -> None:
        """One queued or in-flight frame of `stream` is done; frees a deleted stream's slot."""
        stream.pending -= 1
        if stream.deleted and stream.pending == 0:
            self._free(stream)

    def evict_idle(self) -> list[str]:
        """Delete streams idle for more than the TTL with nothing queued; returns their ids."""
        horizon = self._clock() - self.ttl_s
        idle = [s.stream_id for s in self._streams.values() if s.pending == 0 and s.last_active < horizon]
        for stream_id in idle:
            self.delete(stream_id)
        return idle

    def info(self, stream: Stream) -> StreamInfo:
        return StreamInfo(
            stream_id=stream.stream_id,
            mode=stream.mode,
            frames_seen=stream.frames_seen,
            created_at=stream.created_at,
            last_seen=stream.last_seen,
            state_bytes=self.pool.slot_bytes if stream.slot is not None else 0,
            owner=stream.owner,
        )

    def state_bytes(self) -> int:
        """Bytes of device state held by the open streams (slots in use)."""
        return sum(self.pool.slot_bytes for s in self._streams.values() if s.slot is not None)

    def _free(self, stream: Stream) -> None:
        if stream.slot is not None:
            self.pool.release(stream.slot)
            stream.slot = None
