"""The streaming engine: a micro-batcher across streams in front of one backend and the slot pool.

`submit` validates a frame on the event loop and queues it. One batcher task
gathers frames of different streams (up to `max_batch_size`, waiting at most
`max_wait_ms` for company), runs the batch on a single inference thread —
one forward per kind (deterministic, one stochastic pass, N-sample MC
dropout) — then folds every temporal stream's frame into its slot with one
gather/update/scatter. A stream never has two frames in one batch, and
batches run one after another, so each stream's frames are processed in
arrival order and each sees the state its predecessor left.

Modes: `dnn` is one deterministic pass (aleatoric = its entropy, epistemic 0);
`bnn` averages N stochastic passes (run `bnn_batch_size` copies a forward);
`vq-dnn` / `vq-bnn` fold one deterministic / stochastic pass into the stream's
slot. Time: a frame without a timestamp is at the stream's frame count (τ =
`tau_frames`), one with a capture timestamp at that time (τ = `tau_seconds`);
a stream keeps the clock of its first frame until reset, and a frame of the
other kind is refused (InvalidParameter) rather than mixing frames with seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from models import ModelCard, load_pretrained
from service import preprocess, threads
from service.backends import Backend, build_backend
from service.batcher import FrameQueue
from service.config import Settings
from service.errors import (
    FrameSuperseded,
    InferenceFailed,
    InvalidParameter,
    ModeConflict,
    NotReady,
    Overloaded,
    ShuttingDown,
    StreamNotFound,
    StreamUQError,
)
from service.inference import BatchParams, FrameJob, run_batch
from service.streams import SlotPool, Stream, StreamTable
from service.types import (
    MODES,
    EngineObserver,
    FrameResult,
    ImageArray,
    Mode,
    NullObserver,
    StreamInfo,
    is_stochastic,
)

log = logging.getLogger(__name__)

# A stream counts as live (worth waiting for in the batcher) this long after its last frame.
LIVE_WINDOW_S = 1.0
# How often idle streams are swept when no frames arrive.
SWEEP_INTERVAL_S = 1.0
MAX_SAMPLES = 256
_DETERMINISTIC: dict[Mode, Mode] = {"bnn": "dnn", "vq-bnn": "vq-dnn", "dnn": "dnn", "vq-dnn": "vq-dnn"}


class Engine:
    """Streams of frames in, per-pixel masks and uncertainty maps out; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        card: ModelCard,
        settings: Settings,
        observer: EngineObserver | None = None,
    ) -> None:
        self.backend = backend
        self._card = card
        self.settings = settings
        self.observer: EngineObserver = observer or NullObserver()
        height, width = card.input_size
        # Deleted streams hold their slot until their in-flight frames finish: one batch's worth.
        pool = SlotPool(
            settings.max_streams + settings.max_batch_size,
            card.config.num_classes,
            height,
            width,
            backend.device,
        )
        self.streams = StreamTable(pool, max_streams=settings.max_streams, ttl_s=settings.stream_ttl_s)
        self.default_mode: Mode = (
            settings.default_mode if backend.stochastic_capable else _DETERMINISTIC[settings.default_mode]
        )
        self._queue = FrameQueue()
        self._wakeup = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = False
        self._stopping = False
        self._batch_seconds = 0.05  # running mean of a batch's compute, for Retry-After
        self._params = BatchParams(card.input_size, settings.scene_cut_threshold, settings.bnn_batch_size)

    @classmethod
    def from_settings(cls, settings: Settings, observer: EngineObserver | None = None) -> Engine:
        """The shipped model `settings.model` from `settings.weights_dir` on the configured backend."""
        model, card = load_pretrained(settings.model, settings.weights_dir, device="cpu")
        return cls(build_backend(settings, model, card), card, settings, observer)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def card(self) -> ModelCard:
        return self._card

    @property
    def device(self) -> torch.device:
        return self.backend.device

    async def start(self) -> None:
        """Warm up (one forward of each kind), then start the batcher; `ready` is True after."""
        if self._task is not None:
            raise RuntimeError("engine already started: call stop() before starting it again")
        self._executor = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="streamuq-infer",
            initializer=threads.use_threads,  # the one thread team of the process: see service/threads.py
            initargs=(self.settings.threads,),
        )
        self._stopping = False
        self._wakeup = asyncio.Event()
        await asyncio.get_running_loop().run_in_executor(self._executor, self._warm_up)
        self._task = asyncio.create_task(self._batch_loop(), name="streamuq-batcher")
        self._task.add_done_callback(self._batcher_ended)
        self._ready = True

    async def stop(self) -> None:
        """Refuse new frames (ShuttingDown), finish every accepted frame, stop the batcher."""
        self._stopping = True
        self._ready = False
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _batcher_ended(self, task: asyncio.Task[None]) -> None:
        # A bug in the batcher must not leave callers waiting forever: fail what is queued.
        if task.cancelled() or task.exception() is None:
            return
        log.error("the batcher stopped", exc_info=task.exception())
        self._ready = False
        self._stopping = True
        for job in self._queue.clear():
            if not job.future.done():
                job.future.set_exception(InferenceFailed("the inference loop stopped; see the server log"))

    def _warm_up(self) -> None:
        height, width = self._card.input_size
        images = torch.rand(1, 3, height, width, device=self.device)
        self.backend.forward(images, False)
        if self.backend.stochastic_capable:
            self.backend.forward(images, True)

    # -- submission --------------------------------------------------------------------------

    async def submit(
        self,
        stream_id: str,
        image: ImageArray,
        *,
        timestamp: float | None = None,
        mode: Mode | None = None,
        samples: int | None = None,
        latest_wins: bool = False,
        owner: str | None = None,
    ) -> FrameResult:
        """Queue one H×W×3 uint8 frame of `stream_id`; its result, maps at the frame's size.

        Raises the `service.errors` named in the class contract: Overloaded,
        TooManyStreams, OutOfOrderFrame, ModeConflict, InvalidParameter,
        InferenceFailed, ShuttingDown, FrameSuperseded, NotReady.
        """
        received = time.perf_counter()
        try:
            job = self._admit(stream_id, image, timestamp, mode, samples, latest_wins, owner, received)
        except StreamUQError as exc:
            self.observer.frame_done(mode if mode in MODES else self.default_mode, "rejected", {})
            reason = {"Overloaded": "queue_full", "TooManyStreams": "too_many_streams"}.get(
                type(exc).__name__, "shutdown" if isinstance(exc, ShuttingDown) else None
            )
            if reason is not None:
                self.observer.frame_dropped(reason)
            raise
        self._queue.append(job)
        self._wakeup.set()
        self._report_gauges()
        return await job.future

    def _admit(
        self,
        stream_id: str,
        image: ImageArray,
        timestamp: float | None,
        mode: Mode | None,
        samples: int | None,
        latest_wins: bool,
        owner: str | None,
        received: float,
    ) -> FrameJob:
        if self._stopping:
            raise ShuttingDown("the server is shutting down; retry against another replica")
        if not self._ready:
            raise NotReady("the engine is not started: call `await engine.start()` first")
        preprocess.check_frame(image)
        if mode is not None and mode not in MODES:
            raise InvalidParameter(f"mode {mode!r} is not one of {list(MODES)}")
        if timestamp is not None and not math.isfinite(timestamp):
            raise InvalidParameter(f"timestamp {timestamp!r} must be a finite number of seconds")

        stream = self.streams.find(stream_id)
        if stream is not None and mode is not None and mode != stream.mode:
            raise ModeConflict(
                f"stream {stream_id!r} runs in mode {stream.mode!r}, not {mode!r}; delete the stream "
                "or use a new stream id to change mode"
            )
        chosen: Mode = stream.mode if stream is not None else (mode or self.default_mode)
        n_samples = self._check_samples(chosen, samples)
        if is_stochastic(chosen) and not self.backend.stochastic_capable:
            raise InvalidParameter(
                f"mode {chosen!r} needs MC dropout but model {self._card.name!r} has none; "
                f"use {_DETERMINISTIC[chosen]!r}"
            )

        if stream is None:
            self.streams.check_capacity(chosen)
            self._check_global_queue()  # before creating: a refused first frame leaves no stream
            stream = self.streams.create(stream_id, chosen, owner)
        clock, time_ = self.streams.check_time(stream, timestamp)
        dropped = self._supersede(stream) if latest_wins else 0
        self._check_queues(stream)
        self.streams.accept(stream, clock, time_)
        tau = self.settings.tau_frames if clock == "frames" else self.settings.tau_seconds
        future: asyncio.Future[FrameResult] = asyncio.get_running_loop().create_future()
        return FrameJob(stream, image, time_, tau, n_samples, future, received, dropped=dropped)

    def _check_samples(self, mode: Mode, samples: int | None) -> int:
        if mode != "bnn":
            if samples not in (None, 1):
                raise InvalidParameter(
                    f"samples={samples} only applies to mode 'bnn'; mode {mode!r} runs one pass a frame"
                )
            return 1
        n = self.settings.bnn_samples if samples is None else samples
        if not 1 <= n <= MAX_SAMPLES:
            raise InvalidParameter(f"samples={n} must be between 1 and {MAX_SAMPLES}")
        return n

    def _supersede(self, stream: Stream) -> int:
        """Drop the queued frames of `stream`; how many frames the next one replaces in all."""
        stale = self._queue.remove_stream(stream)
        for job in stale:
            self.streams.finished(stream)
            self.observer.frame_dropped("superseded")
            self.observer.frame_done(stream.mode, "rejected", {})
            if not job.future.done():
                job.future.set_exception(
                    FrameSuperseded(f"a newer frame of stream {stream.stream_id!r} replaced this one")
                )
        # A frame that replaced earlier ones passes their count on to its replacement.
        return sum(job.dropped + 1 for job in stale)

    def _check_queues(self, stream: Stream) -> None:
        queued = self._queue.count(stream)
        if queued >= self.settings.stream_queue_size:
            raise Overloaded(
                f"stream {stream.stream_id!r} has {queued} frames waiting (the limit is "
                f"{self.settings.stream_queue_size}); wait for results before sending more, or send "
                "with latest_wins",
                retry_after=self._retry_after(),
            )
        self._check_global_queue()

    def _check_global_queue(self) -> None:
        if len(self._queue) >= self.settings.queue_size:
            raise Overloaded(
                f"{len(self._queue)} frames are waiting (the limit is {self.settings.queue_size}); "
                "retry later",
                retry_after=self._retry_after(),
            )

    def _retry_after(self) -> float:
        batches = math.ceil((len(self._queue) + 1) / self.settings.max_batch_size)
        return round(max(0.01, batches * self._batch_seconds), 3)

    # -- streams -----------------------------------------------------------------------------

    def list_streams(self) -> list[StreamInfo]:
        return [self.streams.info(s) for s in self.streams.streams()]

    def stream_info(self, stream_id: str) -> StreamInfo:
        return self.streams.info(self.streams.get(stream_id))

    def reset_stream(self, stream_id: str) -> None:
        """Forget the stream's temporal state; its next result says `state_reset: true`."""
        self.streams.reset(stream_id)

    def delete_stream(self, stream_id: str) -> None:
        """Close the stream and free its slot; its queued frames fail with StreamNotFound."""
        stream = self.streams.delete(stream_id)
        for job in self._queue.remove_stream(stream):
            self.streams.finished(stream)
            if not job.future.done():
                job.future.set_exception(StreamNotFound(f"stream {stream_id!r} was deleted"))
        self._report_gauges()

    def queue_depth(self) -> int:
        return len(self._queue)

    def state_bytes(self) -> int:
        return self.streams.state_bytes()

    def _report_gauges(self) -> None:
        self.observer.gauges(len(self.streams), len(self._queue), self.streams.state_bytes())

    # -- batching ----------------------------------------------------------------------------

    async def _batch_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._stopping:
                    return
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), SWEEP_INTERVAL_S)
                if not self._queue:
                    if self.streams.evict_idle():
                        self._report_gauges()
                    continue
            await self._gather()
            batch, abandoned = self._queue.take_batch(self.settings.max_batch_size)
            for job in abandoned:  # their callers went away
                self.streams.finished(job.stream)
            if not batch:
                continue
            started = time.perf_counter()
            assert self._executor is not None
            try:
                outputs = await loop.run_in_executor(
                    self._executor, run_batch, self.backend, self.streams.pool, batch, self._params
                )
            except Exception as exc:  # the backend failed: this batch only
                log.exception("inference failed for a batch of %d frames", len(batch))
                self._fail(batch, exc)
            else:
                self._finish(batch, outputs, started)
            self._batch_seconds = 0.8 * self._batch_seconds + 0.2 * (time.perf_counter() - started)
            self.observer.batch_done(len(batch))
            self._report_gauges()

    async def _gather(self) -> None:
        """Wait up to max_wait_ms from the oldest frame for frames of other live streams."""
        deadline = self._queue.oldest.received + self.settings.max_wait_ms / 1000.0
        while not self._stopping:
            waiting = self._queue.streams_waiting()
            recent = time.monotonic() - LIVE_WINDOW_S  # the stream table's clock
            live = sum(1 for s in self.streams.streams() if s.last_active > recent)
            now = time.perf_counter()
            if waiting >= min(self.settings.max_batch_size, max(live, 1)) or now >= deadline:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), deadline - now)
            except TimeoutError:
                return

    def _fail(self, batch: list[FrameJob], exc: BaseException) -> None:
        for job in batch:
            self.streams.finished(job.stream)
            job.stream.reset_next |= job.reset  # the slot was not written: the next frame starts it
            self.observer.frame_done(job.stream.mode, "error", {})
            if not job.future.done():
                job.future.set_exception(
                    InferenceFailed(
                        f"inference failed for this batch ({type(exc).__name__}: {exc}); "
                        "the stream's state is unchanged, resend the frame"
                    )
                )

    def _finish(self, batch: list[FrameJob], outputs: list[FrameResult], started: float) -> None:
        done = time.perf_counter()
        for job, result in zip(batch, outputs, strict=True):
            stream = job.stream
            self.streams.finished(stream)
            result.frame_index = stream.frames_seen
            stream.frames_seen += 1
            result.dropped_frames = job.dropped
            result.timings["queue"] = job.queue_s
            result.timings["total"] = done - job.received
            self.observer.frame_done(stream.mode, "ok", result.timings)
            if not job.future.done():
                job.future.set_result(result)
