"""Every Prometheus metric of the service, defined once, in a registry per app.

`Metrics` is the engine's observer (batches, frames, drops, gauges); the routes
add the stages the engine does not see (decode, encode) with `observe_stage`.
No label ever carries a stream id: cardinality stays fixed however many streams come and go.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from service.types import MODES, STAGES, Mode

CONTENT_TYPE = CONTENT_TYPE_LATEST
# 0.5 ms … 10 s: decode/encode of a small frame sit at the bottom, a BNN with 30 samples at the top.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
OUTCOMES = ("ok", "error", "rejected")


class Metrics:
    """The service's metrics; implements `service.types.EngineObserver`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "streamuq_frame_latency_seconds",
            "Seconds a frame spends in each stage; `total` is body received to response encoded.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "streamuq_batch_size",
            "Frames per forward pass of the batcher.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.frames = Counter(
            "streamuq_frames", "Frames handled, by mode and outcome.", ["mode", "outcome"], registry=r
        )
        self.dropped = Counter(
            "streamuq_dropped_frames",
            "Frames or results not delivered: superseded (newest wins), queue full, slow subscriber, …",
            ["reason"],
            registry=r,
        )
        self.streams_active = Gauge("streamuq_streams_active", "Streams holding state.", registry=r)
        self.queue_depth = Gauge("streamuq_queue_depth", "Frames waiting for the batcher.", registry=r)
        self.state_bytes = Gauge(
            "streamuq_state_bytes", "Bytes of per-stream state on the device.", registry=r
        )
        # Pre-create the label sets so that a fresh server exposes every series at zero.
        for stage in STAGES:
            self.latency.labels(stage=stage)
        for mode in MODES:
            for outcome in OUTCOMES:
                self.frames.labels(mode=mode, outcome=outcome)

    # EngineObserver
    def batch_done(self, size: int) -> None:
        self.batch_size.observe(size)

    def frame_done(self, mode: Mode, outcome: str, timings: Mapping[str, float]) -> None:
        self.frames.labels(mode=mode, outcome=outcome).inc()
        for stage, seconds in timings.items():
            # The routes observe `total` themselves: it includes decode and encode, unseen here.
            if stage in STAGES and stage != "total":
                self.latency.labels(stage=stage).observe(seconds)

    def frame_dropped(self, reason: str) -> None:
        self.dropped.labels(reason=reason).inc()

    def gauges(self, streams_active: int, queue_depth: int, state_bytes: int) -> None:
        self.streams_active.set(streams_active)
        self.queue_depth.set(queue_depth)
        self.state_bytes.set(state_bytes)

    # What the routes add
    def observe_stage(self, stage: str, seconds: float) -> None:
        self.latency.labels(stage=stage).observe(seconds)

    def dropped_n(self, reason: str, count: int) -> None:
        if count > 0:
            self.dropped.labels(reason=reason).inc(count)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
