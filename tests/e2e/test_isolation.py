"""Two API keys against a live server over real sockets: httpx, websockets and tritonclient."""

from __future__ import annotations

import io
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from live_server import LiveServer, start_server, stop_server, write_tiny_weights
from PIL import Image
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
KEY_A = "tenant-a-0123456789abcdef"
KEY_B = "tenant-b-0123456789abcdef"
MODEL = "unet-ss-mcd"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("isolation")
    weights = write_tiny_weights(folder / "weights")
    live = start_server(
        ["--weights-dir", str(weights), "--device", "cpu"],
        folder / "server.log",
        env={"STREAMUQ_API_KEYS": f"{KEY_A},{KEY_B}"},
    )
    yield live
    code = stop_server(live)
    log = live.log.read_text()
    assert code in (0, -signal.SIGTERM) and "Traceback" not in log, log[-4000:]
    assert KEY_A not in log and KEY_B not in log, "an API key reached the server log"


def _png(seed: int = 0) -> bytes:
    out = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _client(server: LiveServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_isolation_websocket_handshake_without_a_key_is_a_401(keyed: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused, connect(f"{keyed.ws_url}/v1/streams/x/ws"):
        pass
    response = refused.value.response
    assert response.status_code == 401 and json.loads(response.body)["error"]["code"] == "unauthorized"
    with connect(f"{keyed.ws_url}/v1/streams/browser/ws?token={KEY_A}", max_size=None) as ws:
        ws.send(_png())
        assert json.loads(ws.recv(timeout=30))["type"] == "result"


def test_isolation_http_streams_are_per_key(keyed: LiveServer) -> None:
    with _client(keyed, KEY_A) as a, _client(keyed, KEY_B) as b:
        post = {"content": _png(), "headers": {"Content-Type": "image/png"}}
        assert a.post("/v1/streams/cam-7/frames", **post).status_code == 200
        assert b.post("/v1/streams/cam-7/frames", **post).status_code == 404
        assert b.get("/v1/streams/cam-7").status_code == 404
        assert b.delete("/v1/streams/cam-7").status_code == 404
        assert "cam-7" not in {s["stream_id"] for s in b.get("/v1/streams").json()["streams"]}
        assert a.get("/v1/streams/cam-7").json()["frames_seen"] == 1
        assert httpx.get(f"{keyed.url}/v1/streams", timeout=30).status_code == 401
        assert httpx.get(f"{keyed.url}/v2/health/ready", timeout=30).status_code == 200


def test_isolation_a_subscriber_never_sees_another_keys_frames(keyed: LiveServer) -> None:
    with connect(f"{keyed.ws_url}/v1/streams/party/subscribe?token={KEY_B}", max_size=None) as watcher:
        assert json.loads(watcher.recv(timeout=10))["type"] == "subscribed"
        with _client(keyed, KEY_A) as a:
            for seed in range(3):
                response = a.post(
                    "/v1/streams/party/frames", content=_png(seed), headers={"Content-Type": "image/png"}
                )
                assert response.status_code == 200
        with pytest.raises(TimeoutError):
            watcher.recv(timeout=1.5)


def test_isolation_tritonclient_sequences_are_per_key(keyed: LiveServer) -> None:
    client = triton.InferenceServerClient(keyed.url.removeprefix("http://"))
    a, b = {"Authorization": f"Bearer {KEY_A}"}, {"Authorization": f"Bearer {KEY_B}"}
    image = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    tensor = triton.InferInput("IMAGE", list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image, binary_data=True)
    first = client.infer(MODEL, [tensor], sequence_id=4242, sequence_start=True, headers=a)
    assert first.get_response()["parameters"]["frame_index"] == 0
    with pytest.raises(triton.InferenceServerException, match="not found"):
        client.infer(MODEL, [tensor], sequence_id=4242, headers=b)
    with pytest.raises(triton.InferenceServerException):
        client.get_model_metadata(MODEL)  # no key
    second = client.infer(MODEL, [tensor], sequence_id=4242, sequence_end=True, headers=a)
    assert second.get_response()["parameters"]["frame_index"] == 1
    client.close()


def test_isolation_server_log_hides_query_tokens(keyed: LiveServer) -> None:
    with connect(f"{keyed.ws_url}/v1/streams/logged/ws?token={KEY_B}", max_size=None) as ws:
        ws.send(_png())
        json.loads(ws.recv(timeout=30))
    log = Path(keyed.log).read_text()
    assert "token=[redacted]" in log and KEY_B not in log
