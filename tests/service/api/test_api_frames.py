from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from api_helpers import png
from fastapi.testclient import TestClient
from PIL import Image

from service.types import OUTPUT_NAMES


def _post(client: TestClient, stream: str, body: bytes, content_type: str = "image/png", **params: object):
    return client.post(
        f"/v1/streams/{stream}/frames", content=body, headers={"Content-Type": content_type}, params=params
    )


def test_frames_post_png_returns_the_documented_shape(client: TestClient) -> None:
    response = _post(client, "cam-1", png(40, 30))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stream_id"] == "cam-1" and body["frame_index"] == 0 and body["state_reset"] is True
    assert (body["width"], body["height"]) == (40, 30) and body["mode"] == "vq-bnn"
    assert len(body["classes"]) == 8 and body["dropped_frames"] == 0
    assert set(body["timings_ms"]) == {"decode", "queue", "infer", "update", "encode", "total"}
    assert body["timings_ms"]["total"] >= body["timings_ms"]["infer"] > 0
    assert set(body["summary"]) == {"mean_entropy", "mean_epistemic", "uncertain_fraction", "class_fractions"}
    assert set(body["maps"]) == set(OUTPUT_NAMES)
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["maps"]["mask"]["data"]))))
    assert mask.shape == (30, 40) and mask.max() < 8
    assert body["maps"]["entropy"]["scale"]["max"] == pytest.approx(np.log(8))


def test_frames_second_frame_continues_the_stream(client: TestClient) -> None:
    _post(client, "cam", png(seed=1))
    body = _post(client, "cam", png(seed=2), outputs="mask,epistemic").json()
    assert body["frame_index"] == 1 and body["state_reset"] is False
    assert set(body["maps"]) == {"mask", "epistemic"}


def test_frames_raw_rgb_and_timestamps(client: TestClient) -> None:
    raw = np.zeros((6, 8, 3), dtype=np.uint8).tobytes()
    first = _post(client, "raw", raw, "application/octet-stream", width=8, height=6, timestamp=1.0)
    assert first.status_code == 200, first.text
    assert first.json()["timestamp"] == 1.0
    late = _post(client, "raw", raw, "application/octet-stream", width=8, height=6, timestamp=0.5)
    assert late.status_code == 409 and late.json()["error"]["code"] == "out_of_order_frame"


def test_frames_npz_on_request(client: TestClient) -> None:
    response = client.post(
        "/v1/streams/npz/frames",
        content=png(),
        headers={"Content-Type": "image/png", "Accept": "application/x-npz"},
        params={"outputs": "mask,entropy"},
    )
    assert response.status_code == 200 and response.headers["content-type"] == "application/x-npz"
    with np.load(io.BytesIO(response.content)) as npz:
        assert npz["mask"].dtype == np.uint8 and npz["entropy"].dtype == np.float16
        assert npz["mask"].shape == (30, 40)
        meta = json.loads(str(npz["meta"]))
    assert meta["stream_id"] == "npz" and json.loads(response.headers["x-frame-meta"])["frame_index"] == 0


@pytest.mark.parametrize(
    ("body", "content_type", "params", "status", "code"),
    [
        (b"garbage", "image/png", {}, 400, "frame_decode_error"),
        (b"GIF89a", "image/gif", {}, 415, "unsupported_media_type"),
        (b"\0" * 10, "application/octet-stream", {"width": 2, "height": 2}, 400, "frame_decode_error"),
        (b"\0" * 12, "application/octet-stream", {}, 422, "invalid_parameter"),
        (None, "image/png", {"mode": "bayes"}, 422, "invalid_parameter"),
        (None, "image/png", {"outputs": "depth"}, 422, "invalid_parameter"),
        (None, "image/png", {"timestamp": "nan"}, 422, "invalid_parameter"),
        (b"", "image/png", {}, 400, "frame_decode_error"),
    ],
)
def test_frames_bad_input_is_a_json_4xx(
    client: TestClient,
    body: bytes | None,
    content_type: str,
    params: dict[str, object],
    status: int,
    code: str,
) -> None:
    response = _post(client, "bad", png() if body is None else body, content_type, **params)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_frames_bad_stream_id_is_422(client: TestClient) -> None:
    response = _post(client, "a b!", png())
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_parameter"


def test_frames_mode_conflict_is_409(client: TestClient) -> None:
    assert _post(client, "m", png(), mode="dnn").status_code == 200
    response = _post(client, "m", png(), mode="vq-bnn")
    assert response.status_code == 409 and response.json()["error"]["code"] == "mode_conflict"


def test_frames_body_over_the_limit_is_413(settings, tiny_weights_dir) -> None:
    from service.app import create_app

    small = settings.model_copy(update={"max_body_bytes": 1024})
    with TestClient(create_app(small)) as client:
        response = _post(client, "big", png(200, 200, seed=3))
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


def test_frames_overloaded_is_429_with_retry_after(settings) -> None:
    from service.app import create_app
    from service.engine import Engine
    from service.errors import Overloaded

    class Busy(Engine):
        async def submit(self, *args: object, **kwargs: object):  # type: ignore[override]
            raise Overloaded("64 frames are waiting; retry later", retry_after=0.2)

    def factory(s, observer):
        real = Engine.from_settings(s, observer)
        busy = Busy(real.backend, real.card, s, observer)
        return busy

    with TestClient(create_app(settings, engine_factory=factory)) as client:
        response = _post(client, "busy", png())
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert response.json()["error"] == {"code": "overloaded", "message": "64 frames are waiting; retry later"}
