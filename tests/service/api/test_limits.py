"""Limits on what a client sends, and the error shape of every refusal, in process."""

from __future__ import annotations

import gzip
import json
import logging
import struct
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from api_helpers import png

from service import limits
from service.app import create_app
from service.config import Settings
from service.engine import Engine
from service.errors import ImageTooLarge, InvalidRequest, PayloadTooLarge

MODEL = "unet-ss-mcd"


def _client(settings: Settings, **kwargs: Any):
    from fastapi.testclient import TestClient

    return TestClient(create_app(settings, **kwargs), raise_server_exceptions=False)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares `width`×`height` but holds 100 bytes of pixels: decoding it would fail."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 100)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _post(client, stream: str, body: bytes, content_type: str = "image/png", **params: object):
    return client.post(
        f"/v1/streams/{stream}/frames", content=body, headers={"Content-Type": content_type}, params=params
    )


def _infer_body(image: np.ndarray) -> bytes:
    return json.dumps(
        {
            "inputs": [
                {
                    "name": "IMAGE",
                    "datatype": "UINT8",
                    "shape": list(image.shape),
                    "data": image.ravel().tolist(),
                }
            ]
        }
    ).encode()


@pytest.mark.parametrize(
    ("width", "height"), [(20000, 20000), (2**31 - 1, 2**31 - 1), (9000, 10), (5000, 5000)]
)
def test_limits_image_size_is_refused_from_the_header_before_decoding(
    client, width: int, height: int
) -> None:
    response = _post(client, "bomb", png_header_only(width, height))
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "image_too_large" and "STREAMUQ_MAX_IMAGE_PIXELS" in error["message"]


def test_limits_small_limits_name_the_image_and_the_limit(settings: Settings) -> None:
    small = settings.model_copy(update={"max_image_side": 32, "max_image_pixels": 600})
    with _client(small) as client:
        side = _post(client, "s", png(40, 10)).json()["error"]["message"]
        pixels = _post(client, "s", png(30, 30)).json()["error"]["message"]
        raw = _post(client, "s", b"\0" * 3, "application/octet-stream", width=10**9, height=1)
    assert "40×10" in side and "32 px a side" in side
    assert "30×30" in pixels and "600 px in all" in pixels
    assert raw.status_code == 413 and "1000000000×1" in raw.json()["error"]["message"]


def test_limits_check_image_size_refuses_empty_and_oversized() -> None:
    limits.check_image_size(8, 8, max_side=8, max_pixels=64)
    with pytest.raises(ImageTooLarge, match="9×8"):
        limits.check_image_size(9, 8, max_side=8, max_pixels=1000)
    with pytest.raises(ImageTooLarge, match="at most 8 px a side and 63 px"):
        limits.check_image_size(8, 8, max_side=8, max_pixels=63)
    with pytest.raises(Exception, match="at least 1×1"):
        limits.check_image_size(0, 8, max_side=8, max_pixels=64)


def test_limits_inflate_round_trips_and_refuses_bombs() -> None:
    data = b"frame " * 1000
    assert limits.inflate(gzip.compress(data), "gzip", 10_000) == data
    assert limits.inflate(gzip.compress(data) + gzip.compress(b"!"), "GZIP", 10_000) == data + b"!"
    assert limits.inflate(zlib.compress(data), "deflate", 10_000) == data
    assert limits.inflate(data, None, 10) == data  # identity: the body limit was checked on receipt
    bomb = gzip.compress(b"\0" * (64 << 20))  # 64 MiB of zeros in ~64 kB
    with pytest.raises(PayloadTooLarge, match="inflates past the limit of 1048576 bytes"):
        limits.inflate(bomb, "gzip", 1 << 20)
    for bad, encoding in ((gzip.compress(data)[:-4], "gzip"), (b"not zlib", "deflate"), (data, "br")):
        with pytest.raises(InvalidRequest):
            limits.inflate(bad, encoding, 1 << 20)


def test_limits_kserve_gzip_bomb_is_413_in_v2_shape(client) -> None:
    bomb = gzip.compress(b" " * (64 << 20))
    response = client.post(f"/v2/models/{MODEL}/infer", content=bomb, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413 and "inflates past" in response.json()["error"]
    ok = client.post(
        f"/v2/models/{MODEL}/infer",
        content=gzip.compress(_infer_body(np.zeros((6, 8, 3), np.uint8))),
        headers={"Content-Encoding": "gzip"},
    )
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("bad", ["a b", "-lead", ".hidden", "x" * 129, "é", "semi;colon"])
def test_limits_stream_id_syntax_is_checked_everywhere(client, bad: str) -> None:
    from urllib.parse import quote

    path = quote(bad, safe="")
    for response in (
        _post(client, path, png()),
        client.get(f"/v1/streams/{path}"),
        client.post(f"/v1/streams/{path}/reset"),
        client.delete(f"/v1/streams/{path}"),
    ):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_parameter"
    with client.websocket_connect(f"/v1/streams/{path}/ws") as ws:
        assert ws.receive_json()["error"]["code"] == "invalid_parameter"
    image = np.zeros((4, 4, 3), np.uint8)
    body = json.loads(_infer_body(image))
    body["parameters"] = {"sequence_id": bad}
    v2 = client.post(f"/v2/models/{MODEL}/infer", json=body)
    assert v2.status_code == 400 and "must match" in v2.json()["error"]


def test_limits_websocket_message_over_the_limit_is_an_error_not_a_crash(settings: Settings) -> None:
    small = settings.model_copy(update={"ws_max_message_bytes": 1024})
    with _client(small) as client, client.websocket_connect("/v1/streams/wsbig/ws") as ws:
        ws.send_bytes(png(64, 64, seed=5))  # ~12 kB of noise
        error = ws.receive_json()
        assert error["type"] == "error" and "over 1024" in error["error"]["message"]
        ws.send_bytes(png(8, 8))  # the socket stays open
        assert ws.receive_json()["type"] == "result"


def test_limits_too_many_streams_is_429_with_retry_after(settings: Settings) -> None:
    with _client(settings.model_copy(update={"max_streams": 2})) as client:
        assert _post(client, "one", png()).status_code == 200
        assert _post(client, "two", png()).status_code == 200
        third = _post(client, "three", png())
    assert third.status_code == 429 and int(third.headers["retry-after"]) >= 1
    assert "the maximum is 2" in third.json()["error"]["message"]


def test_limits_kserve_body_over_the_limit_is_413(settings: Settings) -> None:
    with _client(settings.model_copy(update={"max_body_bytes": 1024})) as client:
        response = client.post(
            f"/v2/models/{MODEL}/infer", content=_infer_body(np.zeros((20, 20, 3), np.uint8))
        )
    assert response.status_code == 413 and isinstance(response.json()["error"], str)


@pytest.fixture
def gated(settings: Settings) -> Iterator[tuple[Any, threading.Event]]:
    """A client whose engine's backend waits for `gate` (set by the test) before every forward."""
    gate = threading.Event()
    with _client(settings.model_copy(update={"request_timeout_s": 0.3})) as client:
        backend = client.app.state.engine.backend
        forward = backend.forward

        def held(images: Any, stochastic: bool) -> Any:
            gate.wait(10)
            return forward(images, stochastic)

        backend.forward = held
        try:
            yield client, gate
        finally:
            gate.set()


def test_limits_request_timeout_is_503_and_leaves_nothing_queued(gated) -> None:
    client, gate = gated
    response = _post(client, "slow", png(), mode="vq-dnn")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    error = response.json()["error"]
    assert error["code"] == "request_timeout" and "0.3 s" in error["message"]
    assert response.headers["x-request-id"]
    gate.set()
    engine = client.app.state.engine
    again = _post(client, "slow", png(), mode="vq-dnn")  # the stream goes on after the abandoned frame
    assert again.status_code == 200, again.text
    assert engine.queue_depth() == 0 and engine.streams.get("slow").pending == 0


def test_limits_request_id_is_echoed_or_made(client) -> None:
    given = client.get("/healthz", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = client.get("/healthz", headers={"X-Request-ID": "not plain <script>" * 20})
    assert len(made.headers["x-request-id"]) == 16 and made.headers["x-request-id"] != "trace-42"


def test_limits_unexpected_error_is_500_naming_the_request_id(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Engine):
        def list_streams(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("a bug")

    def factory(s: Settings, observer: Any) -> Engine:
        real = Engine.from_settings(s, observer)
        return Broken(real.backend, real.card, s, observer)

    with caplog.at_level(logging.ERROR), _client(settings, engine_factory=factory) as client:
        response = client.get("/v1/streams", headers={"X-Request-ID": "req-7"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "req-7"
    error = response.json()["error"]
    assert (
        error["code"] == "internal_error" and "req-7" in error["message"] and "a bug" not in error["message"]
    )
    assert any("req-7" in record.getMessage() for record in caplog.records)


def test_limits_connections_over_the_cap_are_503_but_probes_pass(settings: Settings) -> None:
    with _client(settings.model_copy(update={"max_connections": 1})) as client:
        with client.websocket_connect("/v1/streams/held/subscribe") as held:
            held.receive_json()
            busy = client.get("/v1/streams")
            assert client.get("/readyz").status_code == 200  # a saturated server is still alive
        assert client.get("/v1/streams").status_code == 200  # the socket closed: room again
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    error = busy.json()["error"]
    assert error["code"] == "server_busy" and "STREAMUQ_MAX_CONNECTIONS" in error["message"]


def test_limits_websocket_bug_closes_1011_naming_the_request_id(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from starlette.websockets import WebSocketDisconnect

    class Broken(Engine):
        def list_streams(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("a bug")

    def factory(s: Settings, observer: Any) -> Engine:
        real = Engine.from_settings(s, observer)
        return Broken(real.backend, real.card, s, observer)

    with (
        caplog.at_level(logging.ERROR),
        _client(settings, engine_factory=factory) as client,
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/v1/streams/s/subscribe", headers={"X-Request-ID": "ws-9"}) as ws,
    ):
        ws.receive_json()
    assert closed.value.code == 1011 and "ws-9" in closed.value.reason
    assert any("ws-9" in record.getMessage() for record in caplog.records)
