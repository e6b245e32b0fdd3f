"""API keys and stream isolation, in process: who may call what, and whose streams they see."""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterator

import numpy as np
import pytest
from api_helpers import png
from starlette.testclient import WebSocketDenialResponse

from service import security
from service.app import create_app
from service.config import Settings
from service.errors import StreamNotFound, Unauthorized
from service.streams import SlotPool, StreamTable

KEY_A = "key-a-0123456789abcdef"
KEY_B = "key-b-0123456789abcdef"
A = {"Authorization": f"Bearer {KEY_A}"}
B = {"Authorization": f"Bearer {KEY_B}"}
MODEL = "unet-ss-mcd"


@pytest.fixture
def keyed(settings: Settings) -> Iterator[object]:
    from fastapi.testclient import TestClient

    with TestClient(create_app(settings.model_copy(update={"api_keys": [KEY_A, KEY_B]}))) as client:
        yield client


def _post(client, stream: str, headers: dict[str, str], **params: object):
    return client.post(
        f"/v1/streams/{stream}/frames",
        content=png(),
        headers={"Content-Type": "image/png", **headers},
        params=params,
    )


def _infer(client, headers: dict[str, str], sequence_id: int, **params: object):
    image = np.zeros((6, 8, 3), np.uint8)
    body = {
        "inputs": [
            {"name": "IMAGE", "datatype": "UINT8", "shape": list(image.shape), "data": image.ravel().tolist()}
        ],
        "outputs": [{"name": "MASK"}],
        "parameters": {"sequence_id": sequence_id, **params},
    }
    return client.post(f"/v2/models/{MODEL}/infer", json=body, headers=headers)


def test_security_key_id_is_a_short_hash_never_the_key() -> None:
    kid = security.key_id(KEY_A)
    assert len(kid) == 12 and kid != KEY_A[:12] and kid == security.key_id(KEY_A)
    assert kid != security.key_id(KEY_B)


def test_security_keyring_compares_every_key_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", counting)
    ring = security.KeyRing([KEY_A, KEY_B, "key-c-0123456789abcdef"])
    assert ring.identify(KEY_A) == security.key_id(KEY_A)  # found first, yet every key is compared
    assert len(calls) == 3 and all(len(a) == len(b) == 32 for a, b in calls)
    for bad in ("", None, "nope", KEY_A + "x"):
        with pytest.raises(Unauthorized):
            ring.identify(bad)


def test_security_settings_read_comma_separated_keys(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setenv("STREAMUQ_API_KEYS", f" {KEY_A}, {KEY_B} ,")
    monkeypatch.setenv("STREAMUQ_CORS_ORIGINS", "https://a.example,https://b.example")
    loaded = Settings(weights_dir=settings.weights_dir)
    assert loaded.api_keys == [KEY_A, KEY_B]
    assert loaded.cors_origins == ["https://a.example", "https://b.example"]


def test_security_missing_or_wrong_key_is_401_json(keyed) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY_A}):
        response = _post(keyed, "s", headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        error = response.json()["error"]
        assert error["code"] == "unauthorized" and KEY_A not in error["message"]
    v2 = keyed.get(f"/v2/models/{MODEL}")
    assert v2.status_code == 401 and isinstance(v2.json()["error"], str)
    assert keyed.get("/v1/streams").status_code == 401
    assert keyed.get("/v1/models").status_code == 401


def test_security_http_refuses_a_query_token(keyed) -> None:
    # Query strings land in access logs: only WebSockets (browsers cannot set headers) may use one.
    assert keyed.get("/v1/streams", params={"token": KEY_A}).status_code == 401


def test_security_health_demo_docs_and_metrics_stay_open(keyed) -> None:
    for path in ("/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/", "/static/app.js"):
        assert keyed.get(path).status_code == 200, path
    for path in ("/openapi.json", "/docs", "/metrics"):
        assert keyed.get(path).status_code == 200, path


def test_security_metrics_need_a_key_when_not_public(settings: Settings) -> None:
    from fastapi.testclient import TestClient

    closed = settings.model_copy(update={"api_keys": [KEY_A], "metrics_public": False})
    with TestClient(create_app(closed)) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=A).status_code == 200


def test_security_websocket_handshake_needs_a_key(keyed) -> None:
    with pytest.raises(WebSocketDenialResponse) as denied, keyed.websocket_connect("/v1/streams/w/ws"):
        pass
    assert denied.value.status_code == 401
    with pytest.raises(WebSocketDenialResponse), keyed.websocket_connect("/v1/streams/w/subscribe?token=x"):
        pass
    with keyed.websocket_connect(f"/v1/streams/w/ws?token={KEY_A}") as ws:  # the browser way
        ws.send_bytes(png())
        assert ws.receive_json()["type"] == "result"
    with keyed.websocket_connect("/v1/streams/w/ws", headers=A) as ws:  # the header way
        ws.send_bytes(png())
        assert ws.receive_json()["frame_index"] == 1


def test_security_another_keys_stream_is_indistinguishable_from_a_missing_one(keyed) -> None:
    created = _post(keyed, "cam", A)
    assert created.status_code == 200
    missing = keyed.get("/v1/streams/nothing-here", headers=B).json()
    for response in (
        keyed.get("/v1/streams/cam", headers=B),
        keyed.post("/v1/streams/cam/reset", headers=B),
        keyed.delete("/v1/streams/cam", headers=B),
        _post(keyed, "cam", B),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["message"] == missing["error"]["message"].replace(
            "nothing-here", "cam"
        )
    assert keyed.get("/v1/streams", headers=B).json()["streams"] == []
    mine = keyed.get("/v1/streams", headers=A).json()["streams"]
    assert [s["stream_id"] for s in mine] == ["cam"] and mine[0]["owner"] == security.key_id(KEY_A)
    second = _post(keyed, "cam", A)  # A's stream went on untouched by B's attempts
    assert second.status_code == 200 and second.json()["frame_index"] == 1
    assert keyed.delete("/v1/streams/cam", headers=A).status_code == 204


def test_security_not_found_wording_matches_the_stream_table() -> None:
    table = StreamTable(SlotPool(1, 2, 4, 4, "cpu"), max_streams=1, ttl_s=12.5)
    with pytest.raises(StreamNotFound) as genuine:
        table.get("cam")
    assert security.not_found("cam", 12.5).message == genuine.value.message


def test_security_websocket_cannot_feed_or_control_another_keys_stream(keyed) -> None:
    assert _post(keyed, "ws-cam", A).status_code == 200
    with keyed.websocket_connect("/v1/streams/ws-cam/ws", headers=B) as ws:
        ws.send_bytes(png())
        error = ws.receive_json()
        assert error["type"] == "error" and error["error"]["code"] == "stream_not_found"
        ws.send_text('{"type": "reset"}')
        assert ws.receive_json()["type"] == "ack"  # acknowledged, but A's stream is not B's to reset
        ws.send_text('{"type": "mode", "mode": "dnn"}')
        assert ws.receive_json()["type"] == "ack"
    info = keyed.get("/v1/streams/ws-cam", headers=A).json()
    assert info["frames_seen"] == 1 and info["mode"] == "vq-bnn"  # neither deleted nor switched


def test_security_subscribers_only_see_their_own_keys_stream(keyed) -> None:
    with keyed.websocket_connect("/v1/streams/shared/subscribe", headers=B) as watcher:
        assert watcher.receive_json() == {"type": "subscribed", "stream_id": "shared", "exists": False}
        assert _post(keyed, "shared", A).status_code == 200  # A's result goes to A's channel only
        assert keyed.delete("/v1/streams/shared", headers=A).status_code == 204
        own = _post(keyed, "shared", B)  # now B's own stream of that id
        assert own.status_code == 200
        first = watcher.receive_json()  # the first thing B sees is B's own frame, not A's
        assert first["type"] == "result" and first["frame_index"] == 0 and first["missed"] == 0


def test_security_kserve_sequences_are_isolated(keyed) -> None:
    assert _infer(keyed, A, 77, sequence_start=True).status_code == 200
    assert _infer(keyed, B, 77).status_code == 404
    assert _infer(keyed, B, 77, sequence_start=True).status_code == 404  # cannot restart A's sequence
    again = _infer(keyed, A, 77)
    assert again.status_code == 200 and again.json()["parameters"]["frame_index"] == 1
    assert _infer(keyed, A, 77, sequence_end=True).status_code == 200
    assert keyed.get("/v1/streams/77", headers=A).status_code == 404


def test_security_cors_is_off_unless_configured(settings: Settings) -> None:
    from fastapi.testclient import TestClient

    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(settings)) as client:
        response = client.options("/v1/streams/x/frames", headers=preflight)
        assert "access-control-allow-origin" not in response.headers
    configured = settings.model_copy(update={"cors_origins": ["https://app.example"], "api_keys": [KEY_A]})
    with TestClient(create_app(configured)) as client:
        response = client.options("/v1/streams/x/frames", headers=preflight)
        assert response.status_code == 200  # a preflight needs no key
        assert response.headers["access-control-allow-origin"] == "https://app.example"


def test_security_no_pickle_loads_anywhere() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    sources = [*root.glob("service/**/*.py"), *root.glob("models/**/*.py")]
    for path in sources:
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, path
        for call in re.finditer(r"torch\.load\(", text):  # allowed only without pickle
            assert "weights_only=True" in text[call.end() : call.end() + 300], path


def test_security_engine_is_unchanged_when_keys_are_off(client) -> None:
    assert _post(client, "open", {}).status_code == 200
    assert client.get("/v1/streams/open").json()["owner"] is None
