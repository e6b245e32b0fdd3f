from __future__ import annotations

from api_helpers import png
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families


def _feed(client: TestClient, stream: str, n: int = 1) -> None:
    for i in range(n):
        response = client.post(
            f"/v1/streams/{stream}/frames", content=png(seed=i), headers={"Content-Type": "image/png"}
        )
        assert response.status_code == 200, response.text


def test_streams_list_get_reset_delete(client: TestClient) -> None:
    _feed(client, "s1", 2)
    _feed(client, "s2")
    listed = {s["stream_id"]: s for s in client.get("/v1/streams").json()["streams"]}
    assert set(listed) == {"s1", "s2"} and listed["s1"]["frames_seen"] == 2
    one = client.get("/v1/streams/s1").json()
    assert one["mode"] == "vq-bnn" and one["state_bytes"] > 0
    assert client.post("/v1/streams/s1/reset").status_code == 200
    after = client.post("/v1/streams/s1/frames", content=png(seed=5), headers={"Content-Type": "image/png"})
    assert after.json()["state_reset"] is True
    assert client.delete("/v1/streams/s1").status_code == 204
    assert [s["stream_id"] for s in client.get("/v1/streams").json()["streams"]] == ["s2"]


def test_streams_unknown_is_404_json(client: TestClient) -> None:
    for response in (
        client.get("/v1/streams/nope"),
        client.delete("/v1/streams/nope"),
        client.post("/v1/streams/nope/reset"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "stream_not_found"


def test_unknown_route_is_404_json(client: TestClient) -> None:
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_models_card(client: TestClient) -> None:
    models = client.get("/v1/models").json()["models"]
    assert len(models) == 1
    card = models[0]
    assert card["name"] == "unet-ss-mcd" and len(card["classes"]) == len(card["palette"]) == 8
    assert card["input_size"] == [32, 48] and card["stochastic"] is True
    assert set(card["modes"]) == {"dnn", "bnn", "vq-dnn", "vq-bnn"}
    assert client.get("/v1/models/unet-ss-mcd").status_code == 200
    assert client.get("/v1/models/other").json()["error"]["code"] == "model_not_found"


def test_health_and_metrics(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    _feed(client, "metered", 2)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(response.text)
        for s in f.samples
    }
    assert samples[("streamuq_frames_total", (("mode", "vq-bnn"), ("outcome", "ok")))] == 2
    for stage in ("decode", "queue", "infer", "update", "encode", "total"):
        assert samples[("streamuq_frame_latency_seconds_count", (("stage", stage),))] == 2, stage
    assert samples[("streamuq_streams_active", ())] == 1
    client.post("/v1/streams/metered/frames", content=b"junk", headers={"Content-Type": "image/png"})
    rejected = client.get("/metrics").text
    assert 'streamuq_frames_total{mode="vq-bnn",outcome="rejected"} 1.0' in rejected
    assert samples[("streamuq_state_bytes", ())] > 0


def test_openapi_documents_every_route(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v1/streams/{stream_id}/frames",
        "/v1/streams",
        "/v1/models",
        "/v2/models/{model}/infer",
        "/metrics",
    ):
        assert path in paths, path
    frames = paths["/v1/streams/{stream_id}/frames"]["post"]
    assert {"image/png", "image/jpeg", "application/octet-stream"} <= set(frames["requestBody"]["content"])
    assert client.get("/docs").status_code == 200
