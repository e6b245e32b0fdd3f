"""The bounded frame queue in front of the batcher: arrival order, per-stream counts, batch forming.

Lives on the event loop only. A batch takes the oldest waiting frame of each
stream, oldest first, so a stream never has two frames in one batch and its
frames leave in the order they came.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator

from service.inference import FrameJob
from service.streams import Stream


class FrameQueue:
    """Frames waiting for the batcher, across all streams, in arrival order."""

    def __init__(self) -> None:
        self._jobs: deque[FrameJob] = deque()

    def __len__(self) -> int:
        return len(self._jobs)

    def __iter__(self) -> Iterator[FrameJob]:
        return iter(self._jobs)

    @property
    def oldest(self) -> FrameJob:
        if not self._jobs:
            raise RuntimeError("the queue is empty: check len() before asking for the oldest frame")
        return self._jobs[0]

    def append(self, job: FrameJob) -> None:
        self._jobs.append(job)

    def count(self, stream: Stream) -> int:
        """Frames of `stream` waiting (not those in flight)."""
        return sum(1 for job in self._jobs if job.stream is stream)

    def streams_waiting(self) -> int:
        """How many distinct streams have a frame waiting."""
        return len({id(job.stream) for job in self._jobs})

    def remove_stream(self, stream: Stream) -> list[FrameJob]:
        """Take every waiting frame of `stream` out of the queue; returns them, oldest first."""
        mine = [job for job in self._jobs if job.stream is stream]
        if mine:
            self._jobs = deque(job for job in self._jobs if job.stream is not stream)
        return mine

    def take_batch(self, max_size: int) -> tuple[list[FrameJob], list[FrameJob]]:
        """(batch, abandoned): the oldest frame of each stream, at most `max_size`, oldest first,
        and the frames whose caller went away (their future is done) dropped on the way.

        Each frame of the batch gets its queue time and a snapshot of its stream's
        mode, slot and pending reset, so the inference thread never reads live records.
        """
        batch: list[FrameJob] = []
        abandoned: list[FrameJob] = []
        taken: set[int] = set()
        rest: deque[FrameJob] = deque()
        for job in self._jobs:
            if job.future.done():
                abandoned.append(job)
            elif id(job.stream) in taken or len(batch) >= max_size:
                rest.append(job)
            else:
                taken.add(id(job.stream))
                batch.append(job)
        self._jobs = rest
        now = time.perf_counter()
        for job in batch:
            stream = job.stream
            job.queue_s = now - job.received
            job.mode, job.slot, job.reset = stream.mode, stream.slot, stream.reset_next
            stream.reset_next = False  # a reset_stream() from now on applies to the next frame
        return batch, abandoned

    def clear(self) -> list[FrameJob]:
        jobs = list(self._jobs)
        self._jobs.clear()
        return jobs
