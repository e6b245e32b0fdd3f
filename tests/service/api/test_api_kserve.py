from __future__ import annotations

import json

import numpy as np
from fastapi.testclient import TestClient

from service import kserve_codec

MODEL = "unet-ss-mcd"


def _infer(client: TestClient, image: np.ndarray, outputs: list[dict] | None = None, **parameters: object):
    header: dict[str, object] = {
        "inputs": [
            {
                "name": "IMAGE",
                "datatype": "UINT8",
                "shape": list(image.shape),
                "parameters": {"binary_data_size": image.nbytes},
            }
        ],
        "parameters": parameters,
    }
    if outputs is not None:
        header["outputs"] = outputs
    head = json.dumps(header).encode()
    return client.post(
        f"/v2/models/{MODEL}/infer",
        content=head + image.tobytes(),
        headers={kserve_codec.HEADER_LENGTH: str(len(head)), "Content-Type": "application/octet-stream"},
    )


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (20, 24, 3), dtype=np.uint8)


def test_kserve_metadata_and_health(client: TestClient) -> None:
    assert "binary_tensor_data" in client.get("/v2").json()["extensions"]
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    meta = client.get(f"/v2/models/{MODEL}").json()
    assert meta["inputs"][0] == {"name": "IMAGE", "datatype": "UINT8", "shape": [-1, -1, 3]}
    assert [o["name"] for o in meta["outputs"]] == ["MASK", "CONFIDENCE", "ENTROPY", "ALEATORIC", "EPISTEMIC"]
    assert client.get(f"/v2/models/{MODEL}/ready").status_code == 200
    assert client.get(f"/v2/models/{MODEL}/versions/1").status_code == 200


def test_kserve_unknown_model_is_404_in_v2_shape(client: TestClient) -> None:
    response = client.get("/v2/models/resnet")
    assert response.status_code == 404 and isinstance(response.json()["error"], str)
    assert client.get(f"/v2/models/{MODEL}/versions/7").status_code == 404


def test_kserve_sequence_keeps_state_and_end_frees_it(client: TestClient) -> None:
    first = _infer(client, _image(0), sequence_id=42, sequence_start=True, binary_data_output=True)
    assert first.status_code == 200, first.text
    length = int(first.headers[kserve_codec.HEADER_LENGTH])
    head = json.loads(first.content[:length])
    assert head["parameters"]["frame_index"] == 0 and head["parameters"]["state_reset"] is True
    sizes = {o["name"]: o["parameters"]["binary_data_size"] for o in head["outputs"]}
    assert sizes == {"MASK": 480, "CONFIDENCE": 1920, "ENTROPY": 1920, "ALEATORIC": 1920, "EPISTEMIC": 1920}
    assert client.get("/v1/streams/42").json()["frames_seen"] == 1
    second = _infer(client, _image(1), sequence_id=42, binary_data_output=True)
    assert (
        json.loads(second.content[: int(second.headers[kserve_codec.HEADER_LENGTH])])["parameters"][
            "frame_index"
        ]
        == 1
    )
    _infer(client, _image(2), sequence_id=42, sequence_end=True)
    assert client.get("/v1/streams/42").status_code == 404


def test_kserve_json_outputs_without_sequence_leave_no_stream(client: TestClient) -> None:
    response = _infer(client, _image(), outputs=[{"name": "MASK", "parameters": {"binary_data": False}}])
    assert response.status_code == 200 and kserve_codec.HEADER_LENGTH not in response.headers
    out = response.json()["outputs"]
    assert out[0]["name"] == "MASK" and out[0]["shape"] == [20, 24] and len(out[0]["data"]) == 480
    assert client.get("/v1/streams").json()["streams"] == []


def test_kserve_bad_requests_are_4xx_in_v2_shape(client: TestClient) -> None:
    cases = [
        client.post(f"/v2/models/{MODEL}/infer", content=b"{oops"),
        _infer(client, np.zeros((4, 4), np.uint8)),
        _infer(client, _image(), outputs=[{"name": "DEPTH"}]),
        _infer(client, _image(), sequence_id=3, mode="bayes"),
        client.post(f"/v2/models/{MODEL}/infer", content=b"{}", headers={kserve_codec.HEADER_LENGTH: "x"}),
    ]
    for response in cases:
        assert 400 <= response.status_code < 500, response.text
        assert isinstance(response.json()["error"], str)
