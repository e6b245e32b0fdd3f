from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics
from service.types import STAGES


def _families(metrics: Metrics) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}


def test_metrics_exposition_has_every_named_metric() -> None:
    families = _families(Metrics())
    for name in (
        "streamuq_frame_latency_seconds",
        "streamuq_batch_size",
        "streamuq_frames",
        "streamuq_dropped_frames",
        "streamuq_streams_active",
        "streamuq_queue_depth",
        "streamuq_state_bytes",
    ):
        assert name in families, name


def test_metrics_observer_records_frames_stages_drops_and_gauges() -> None:
    metrics = Metrics()
    metrics.batch_done(3)
    metrics.frame_done("vq-bnn", "ok", {"queue": 0.001, "infer": 0.02, "update": 0.001, "total": 0.03})
    metrics.frame_dropped("superseded")
    metrics.dropped_n("subscriber_slow", 2)
    metrics.observe_stage("decode", 0.002)
    metrics.gauges(streams_active=2, queue_depth=1, state_bytes=4096)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(metrics.exposition().decode())
        for s in f.samples
    }
    assert samples[("streamuq_frames_total", (("mode", "vq-bnn"), ("outcome", "ok")))] == 1
    assert samples[("streamuq_dropped_frames_total", (("reason", "superseded"),))] == 1
    assert samples[("streamuq_dropped_frames_total", (("reason", "subscriber_slow"),))] == 2
    assert samples[("streamuq_frame_latency_seconds_count", (("stage", "infer"),))] == 1
    assert samples[("streamuq_frame_latency_seconds_count", (("stage", "decode"),))] == 1
    # `total` comes from the routes (decode + engine + encode), not from the engine.
    assert samples[("streamuq_frame_latency_seconds_count", (("stage", "total"),))] == 0
    assert samples[("streamuq_batch_size_sum", ())] == 3
    assert samples[("streamuq_state_bytes", ())] == 4096
    assert {labels for (_, labels) in samples if any(k == "stage" for k, _ in labels)} >= {
        (("stage", s),) for s in STAGES
    }


def test_metrics_registries_are_per_instance() -> None:
    first, second = Metrics(), Metrics()
    first.frame_dropped("queue_full")
    assert b'reason="queue_full"' not in second.exposition()


def test_metrics_never_label_by_stream() -> None:
    metrics = Metrics()
    metrics.frame_done("dnn", "ok", {"infer": 0.01})
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            assert set(sample.labels) <= {"stage", "mode", "outcome", "reason", "le"}
