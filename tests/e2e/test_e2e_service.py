"""The whole service over real sockets: httpx, websockets, tritonclient, the Prometheus parser."""

from __future__ import annotations

import io
import json
import threading

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from live_server import LiveServer, start_server, stop_server, write_tiny_weights
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from websockets.sync.client import connect

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
MODEL = "unet-ss-mcd"


def frames(n: int, seed: int = 0, size: tuple[int, int] = (64, 48)) -> list[bytes]:
    """`n` PNGs of a scene drifting right: consecutive frames are alike, as in a video."""
    rng = np.random.default_rng(seed)
    scene = rng.integers(0, 256, (size[1], size[0] + n, 3), dtype=np.uint8)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(scene[:, i : i + size[0]])).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def post(
    client: httpx.Client, stream: str, body: bytes, content_type: str = "image/png", **params: object
) -> httpx.Response:
    return client.post(
        f"/v1/streams/{stream}/frames", content=body, headers={"Content-Type": content_type}, params=params
    )


def test_e2e_http_stream_read_by_a_subscriber_in_order(server: LiveServer) -> None:
    a_frames, b_frames = frames(20, seed=1), frames(20, seed=2)
    received: list[dict] = []
    subscribed = threading.Event()

    def watch() -> None:
        with connect(f"{server.ws_url}/v1/streams/e2e-a/subscribe", max_size=None) as ws:
            assert json.loads(ws.recv())["type"] == "subscribed"
            subscribed.set()
            while len(received) < 20:
                received.append(json.loads(ws.recv(timeout=30)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert subscribed.wait(10)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answers_b = []
        for a, b in zip(a_frames, b_frames, strict=True):  # interleaved: a, b, a, b, …
            assert post(client, "e2e-a", a, mode="vq-dnn").status_code == 200
            answers_b.append(post(client, "e2e-b", b, mode="vq-dnn").json())
        alone = [post(client, "e2e-b-alone", b, mode="vq-dnn").json() for b in b_frames]
    watcher.join(30)
    assert [m["frame_index"] for m in received] == list(range(20))
    assert all(m["type"] == "result" and m["stream_id"] == "e2e-a" and m["missed"] == 0 for m in received)
    # The interleaved stream is unaffected by its neighbour: same results as when fed alone.
    assert [r["frame_index"] for r in answers_b] == list(range(20))
    for mixed, single in zip(answers_b, alone, strict=True):
        assert mixed["summary"]["mean_entropy"] == pytest.approx(single["summary"]["mean_entropy"], abs=1e-4)
        assert mixed["maps"]["mask"]["data"] == single["maps"]["mask"]["data"]


@pytest.mark.parametrize(
    ("body", "content_type", "params", "status"),
    [
        (b"\x89PNG\r\n\x1a\ncorrupt", "image/png", {}, 400),
        (b"BM....", "image/bmp", {}, 415),
        (b"\0" * 11, "application/octet-stream", {"width": 2, "height": 2}, 400),
        (None, "image/png", {"mode": "bayes"}, 422),
        (None, "image/png", {"timestamp": "soon"}, 422),
    ],
)
def test_e2e_bad_frames_are_clear_json_4xx(
    server: LiveServer, body: bytes | None, content_type: str, params: dict[str, object], status: int
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = post(client, "e2e-bad", frames(1)[0] if body is None else body, content_type, **params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["message"]


def test_e2e_out_of_order_and_unknown_streams(server: LiveServer) -> None:
    one = frames(1)[0]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert post(client, "e2e-ts", one, timestamp=2.0).status_code == 200
        late = post(client, "e2e-ts", one, timestamp=1.0)
        assert late.status_code == 409 and late.json()["error"]["code"] == "out_of_order_frame"
        for response in (client.get("/v1/streams/e2e-none"), client.delete("/v1/streams/e2e-none")):
            assert response.status_code == 404 and response.json()["error"]["code"] == "stream_not_found"
        assert client.delete("/v1/streams/e2e-ts").status_code == 204


def test_e2e_websocket_push_answers_in_order_and_newest_wins(server: LiveServer) -> None:
    shots = frames(12, seed=3)
    with connect(f"{server.ws_url}/v1/streams/e2e-ws/ws?outputs=mask,epistemic", max_size=None) as ws:
        for i, shot in enumerate(shots[:4]):  # lock-step: every frame answered
            ws.send(json.dumps({"type": "frame", "timestamp": i / 30}))
            ws.send(shot)
            result = json.loads(ws.recv(timeout=30))
            assert result["type"] == "result" and result["frame_index"] == i
            assert set(result["maps"]) == {"mask", "epistemic"}
        for i, shot in enumerate(shots[4:], start=4):  # a burst: frames may be skipped, never reordered
            ws.send(json.dumps({"type": "frame", "timestamp": i / 30}))
            ws.send(shot)
        seen, dropped = [], 0
        while len(seen) + dropped < 8:
            result = json.loads(ws.recv(timeout=30))
            assert result["type"] == "result", result
            seen.append(result["frame_index"])
            dropped += result["dropped_frames"]
        assert seen == sorted(seen) and seen[0] == 4
        ws.send(b"not an image")
        assert json.loads(ws.recv(timeout=30))["type"] == "error"


def test_e2e_tritonclient_sequence(server: LiveServer) -> None:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL)
    metadata = client.get_model_metadata(MODEL)
    assert metadata["inputs"][0]["name"] == "IMAGE"
    rng = np.random.default_rng(4)
    for i in range(4):
        image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
        tensor = triton.InferInput("IMAGE", list(image.shape), "UINT8")
        tensor.set_data_from_numpy(image, binary_data=True)
        result = client.infer(
            MODEL, [tensor], sequence_id=1234, sequence_start=(i == 0), sequence_end=(i == 3)
        )
        mask, entropy = result.as_numpy("MASK"), result.as_numpy("ENTROPY")
        assert mask.dtype == np.uint8 and mask.shape == (48, 64) and mask.max() < 8
        assert entropy.dtype == np.float32 and entropy.shape == (48, 64)
        assert result.get_response()["parameters"]["frame_index"] == i
        if i < 3:
            assert httpx.get(f"{server.url}/v1/streams/1234").json()["frames_seen"] == i + 1
    assert httpx.get(f"{server.url}/v1/streams/1234").status_code == 404  # sequence_end freed it
    with pytest.raises(triton.InferenceServerException, match="not served"):
        client.get_model_metadata("resnet50")
    client.close()


def test_e2e_metrics_parse(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        post(client, "e2e-metrics", frames(1)[0])
        text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {
        "streamuq_frame_latency_seconds",
        "streamuq_batch_size",
        "streamuq_frames",
        "streamuq_dropped_frames",
        "streamuq_streams_active",
        "streamuq_queue_depth",
        "streamuq_state_bytes",
    } <= set(families)
    ok = sum(
        s.value
        for s in families["streamuq_frames"].samples
        if s.labels.get("outcome") == "ok" and s.name.endswith("_total")
    )
    assert ok >= 1
    for family in families.values():
        for sample in family.samples:
            assert "stream" not in "".join(sample.labels)


def test_e2e_shutdown_finishes_and_closes_sockets_cleanly(tmp_path) -> None:
    from websockets.exceptions import ConnectionClosed

    weights = write_tiny_weights(tmp_path / "weights")
    live = start_server(["--weights-dir", str(weights), "--device", "cpu"], tmp_path / "server.log")
    try:
        with (
            connect(f"{live.ws_url}/v1/streams/bye/ws", max_size=None) as pusher,
            connect(f"{live.ws_url}/v1/streams/bye/subscribe", max_size=None) as watcher,
        ):
            assert json.loads(watcher.recv(timeout=10))["type"] == "subscribed"
            pusher.send(frames(1)[0])
            assert json.loads(pusher.recv(timeout=30))["type"] == "result"
            assert json.loads(watcher.recv(timeout=30))["type"] == "result"
            code = stop_server(live)
            for ws in (pusher, watcher):
                with pytest.raises(ConnectionClosed) as closed:
                    ws.recv(timeout=10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code in (1001, 1012)
    finally:
        if live.process.poll() is None:
            live.process.kill()
            live.process.wait()
    log = live.log.read_text()
    assert code in (0, -15) and "Application shutdown complete" in log and "Traceback" not in log, log


def test_e2e_schemathesis_finds_no_server_error(server: LiveServer) -> None:
    """Fuzz every documented operation from the OpenAPI schema: bad input is never a 5xx."""
    import subprocess
    import sys
    from pathlib import Path

    st = Path(sys.executable).parent / "st"
    if not st.exists():
        pytest.skip("schemathesis is not installed")
    run = subprocess.run(
        [
            str(st),
            "run",
            f"{server.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "10",
            "--seed",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
