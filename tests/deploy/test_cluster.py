"""Ray Serve with 2 replicas on a local Ray instance: streams stick to one replica and survive its death.

The real app and engine with a tiny random model. Frames go through Ray's own
HTTP proxy with the session header, exactly as clients send them; which replica
served a frame is read from the `x-streamuq-replica` header `service.cluster` adds.
"""

from __future__ import annotations

import io
import json
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import numpy as np
import pytest
from PIL import Image
from tiny_model import write_tiny_weights
from websockets.sync.client import connect

from service import kserve_codec
from service.cluster import APP_NAME, DEPLOYMENT_NAME, REPLICA_HEADER, build_app, session_header
from service.config import Settings

ray = pytest.importorskip("ray", reason="needs the [cluster] extra: pip install -e '.[dev,cluster]'")
serve = pytest.importorskip("ray.serve")

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]

STREAMS_PER_REPLICA = 5  # 10 streams over 2 replicas
FRAMES = 20


@dataclass(frozen=True)
class Served:
    stream_id: str
    frame_index: int
    state_reset: bool
    replica: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _free_port_pair() -> int:
    """A port p with p and p + 1 both free: the replicas' metrics ports."""
    for _ in range(50):
        base = _free_port()
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("127.0.0.1", base))
                b.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
            return base
    raise RuntimeError("no two consecutive free ports")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (90, 120, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


FRAME = _png()


def _send(client: httpx.Client, stream_id: str) -> Served:
    response = client.post(
        f"/v1/streams/{stream_id}/frames",
        content=FRAME,
        headers={"content-type": "image/png", session_header(): stream_id},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stream_id"] == stream_id
    return Served(stream_id, body["frame_index"], body["state_reset"], response.headers[REPLICA_HEADER])


def _send_frames(client: httpx.Client, stream_ids: list[str], count: int) -> dict[str, list[Served]]:
    """`count` frames for each stream, in order within a stream, the streams concurrently."""
    with ThreadPoolExecutor(len(stream_ids)) as pool:
        runs = pool.map(lambda sid: [_send(client, sid) for _ in range(count)], stream_ids)
        return dict(zip(stream_ids, runs, strict=True))


def _replica_of(client: httpx.Client, key: str) -> str:
    """Where the router sends `key`, asked with a request that creates no stream."""
    response = client.get("/v2/health/ready", headers={session_header(): key})
    assert response.status_code == 200, response.text
    return response.headers[REPLICA_HEADER]


def _running_replicas() -> int:
    app = serve.status().applications.get(APP_NAME)
    if app is None or DEPLOYMENT_NAME not in app.deployments:
        return 0
    return int(app.deployments[DEPLOYMENT_NAME].replica_states.get("RUNNING", 0))


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return _free_port_pair()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, metrics_port: int) -> Iterator[httpx.Client]:
    weights = write_tiny_weights(tmp_path_factory.mktemp("weights"), input_size=(24, 32), num_classes=4)
    settings = Settings(weights_dir=weights, device="cpu", bnn_samples=2, threads=1)
    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        app = build_app(settings, replicas=2, num_cpus=0.5, metrics_port=metrics_port)
        serve.run(app, name=APP_NAME, route_prefix="/")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            yield http
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def streams(client: httpx.Client) -> dict[str, list[str]]:
    """Five stream ids per replica, chosen by asking the router (ids hash to random replicas)."""
    by_replica: dict[str, list[str]] = {}
    for n in range(200):
        sid = f"cam-{n}"
        chosen = by_replica.setdefault(_replica_of(client, sid), [])
        if len(chosen) < STREAMS_PER_REPLICA:
            chosen.append(sid)
        if len(by_replica) == 2 and all(len(v) == STREAMS_PER_REPLICA for v in by_replica.values()):
            return by_replica
    raise AssertionError(f"200 stream ids did not fill both replicas: {by_replica}")


@pytest.fixture(scope="module")
def first_run(client: httpx.Client, streams: dict[str, list[str]]) -> dict[str, list[Served]]:
    stream_ids = [sid for sids in streams.values() for sid in sids]
    return _send_frames(client, stream_ids, FRAMES)


def test_cluster_stream_stays_on_one_replica(
    first_run: dict[str, list[Served]], streams: dict[str, list[str]]
) -> None:
    assert len(first_run) == 10
    for sid, served in first_run.items():
        assert [s.frame_index for s in served] == list(range(FRAMES)), sid
        assert [s.state_reset for s in served] == [True] + [False] * (FRAMES - 1), sid
        assert {s.replica for s in served} == {served[0].replica}, sid
    used = {served[0].replica for served in first_run.values()}
    assert used == set(streams), "the streams should be spread over both replicas"


def test_cluster_each_replica_exports_its_metrics(
    metrics_port: int, first_run: dict[str, list[Served]]
) -> None:
    """Both replicas' /metrics on the metrics ports; together they count every frame sent."""
    ok = 0.0
    for port in (metrics_port, metrics_port + 1):
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        line = next(
            x for x in text.splitlines() if x.startswith('streamuq_frames_total{mode="vq-bnn",outcome="ok"}')
        )
        ok += float(line.split()[-1])
    assert ok >= sum(len(served) for served in first_run.values())


def test_cluster_websocket_is_pinned_to_the_stream_replica(client: httpx.Client) -> None:
    """A WebSocket with the session header lands where the stream's HTTP frames went, and stays."""
    sid = "ws-cam"
    http = [_send(client, sid) for _ in range(3)]
    url = f"ws://{client.base_url.host}:{client.base_url.port}/v1/streams/{sid}/ws"
    with connect(url, additional_headers={session_header(): sid}) as ws:
        assert ws.response is not None
        assert ws.response.headers[REPLICA_HEADER] == http[0].replica
        for i in range(3):
            ws.send(FRAME)
            result = json.loads(ws.recv(timeout=60))
            assert result["type"] == "result", result
            assert (result["frame_index"], result["state_reset"]) == (3 + i, False)
    assert _send(client, sid).frame_index == 6


def test_cluster_kserve_sequence_follows_its_stream(client: httpx.Client) -> None:
    """KServe v2 `sequence_id` N is stream "N": with the header it reaches the replica of that stream."""
    sid = "77"
    http = [_send(client, sid) for _ in range(2)]
    image = np.full((24, 32, 3), 120, np.uint8)
    for i in range(2):
        head = json.dumps(
            {
                "inputs": [
                    {
                        "name": "IMAGE",
                        "datatype": "UINT8",
                        "shape": list(image.shape),
                        "parameters": {"binary_data_size": image.nbytes},
                    }
                ],
                "outputs": [{"name": "MASK", "parameters": {"binary_data": False}}],
                "parameters": {"sequence_id": int(sid)},
            }
        ).encode()
        response = client.post(
            "/v2/models/unet-ss-mcd/infer",
            content=head + image.tobytes(),
            headers={
                kserve_codec.HEADER_LENGTH: str(len(head)),
                "content-type": "application/octet-stream",
                session_header(): sid,
            },
        )
        assert response.status_code == 200, response.text
        assert response.headers[REPLICA_HEADER] == http[0].replica
        parameters = response.json()["parameters"]
        assert (parameters["frame_index"], parameters["state_reset"]) == (2 + i, False)


def test_cluster_killed_replica_streams_reset_and_continue(
    client: httpx.Client, first_run: dict[str, list[Served]], streams: dict[str, list[str]]
) -> None:
    victim = sorted(streams)[0]
    actor = ray.get_actor(f"SERVE_REPLICA::{APP_NAME}#{DEPLOYMENT_NAME}#{victim}", namespace="serve")
    ray.kill(actor, no_restart=True)

    # Straight after the kill every frame is answered (no 5xx); the victim's streams restart
    # elsewhere with state_reset, the others go on where they were unless the ring moved them.
    after = _send_frames(client, list(first_run), 3)
    for sid, served in after.items():
        before = first_run[sid][-1]
        assert all(s.replica != victim for s in served), sid
        if before.replica == victim:
            assert served[0].state_reset and served[0].frame_index == 0, (sid, served[0])
        _assert_continues(sid, before, served)

    # Serve replaces the dead replica; the ring changes again and streams that move reset again.
    deadline = time.monotonic() + 90
    while _running_replicas() < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _running_replicas() == 2, serve.status()
    final = _send_frames(client, list(first_run), 3)
    assert all(s.replica != victim for served in final.values() for s in served)
    for sid, served in final.items():
        _assert_continues(sid, after[sid][-1], served)


def _assert_continues(sid: str, before: Served, served: list[Served]) -> None:
    """Each frame either stays on the replica of the frame before and counts on, or moved and reset."""
    previous = before
    for s in served:
        if s.replica == previous.replica:
            assert not s.state_reset and s.frame_index == previous.frame_index + 1, (sid, previous, s)
        else:
            assert s.state_reset and s.frame_index == 0, (sid, previous, s)
        previous = s
