"""`streamuq serve` with no options serves the shipped model: one CamVid frame over each protocol."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from live_server import REPO, LiveServer, start_server, stop_server
from PIL import Image
from websockets.sync.client import connect

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (REPO / "models" / "weights" / "unet-ss-mcd.safetensors").is_file(),
        reason="the shipped weights are not trained yet (models/weights/unet-ss-mcd.*)",
    ),
]
FRAME = sorted((REPO.parent / "shared" / "data" / "camvid" / "seq").glob("*.png"))[:1]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server([], tmp_path_factory.mktemp("shipped") / "server.log", env={"STREAMUQ_DEVICE": "cpu"})
    yield live
    stop_server(live)


@pytest.mark.skipif(not FRAME, reason="no CamVid frames in ../shared/data/camvid/seq")
def test_e2e_shipped_model_answers_a_camvid_frame(shipped: LiveServer) -> None:
    body = Path(FRAME[0]).read_bytes()
    with httpx.Client(base_url=shipped.url, timeout=60) as client:
        card = client.get("/v1/models").json()["models"][0]
        assert card["name"] == "unet-ss-mcd"
        result = client.post("/v1/streams/camvid/frames", content=body, headers={"Content-Type": "image/png"})
        assert result.status_code == 200, result.text
        answer = result.json()
    assert (answer["width"], answer["height"]) == (480, 360) and answer["classes"] == card["classes"]
    assert 0 < answer["summary"]["mean_entropy"] < np.log(len(card["classes"]))
    with connect(f"{shipped.ws_url}/v1/streams/camvid-ws/ws", max_size=None) as ws:
        ws.send(body)
        assert json.loads(ws.recv(timeout=60))["type"] == "result"
    image = np.asarray(Image.open(FRAME[0]).convert("RGB"))
    client = triton.InferenceServerClient(shipped.url.removeprefix("http://"))
    tensor = triton.InferInput("IMAGE", list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image, binary_data=True)
    out = client.infer(
        "unet-ss-mcd", [tensor], sequence_id="camvid-v2", sequence_start=True, sequence_end=True
    )
    assert out.as_numpy("MASK").shape == (360, 480) and out.as_numpy("EPISTEMIC").dtype == np.float32
    client.close()
