from __future__ import annotations

import json

import numpy as np
import pytest
import tritonclient.http as triton

from service import kserve_codec
from service.errors import InvalidRequest


def _binary_request(image: np.ndarray, **parameters: object) -> tuple[bytes, int]:
    header = {
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
    head = json.dumps(header).encode()
    return head + image.tobytes(), len(head)


def test_kserve_parse_binary_input() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    body, length = _binary_request(image, sequence_id=5, sequence_start=True)
    request = kserve_codec.parse_request(body, length)
    np.testing.assert_array_equal(request.inputs["IMAGE"], image)
    assert request.parameters == {"sequence_id": 5, "sequence_start": True}
    assert request.outputs is None


def test_kserve_parse_json_input_and_requested_outputs() -> None:
    body = json.dumps(
        {
            "id": "r1",
            "inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [1, 1, 3], "data": [[1, 2, 3]]}],
            "outputs": [{"name": "MASK", "parameters": {"binary_data": True}}, {"name": "ENTROPY"}],
        }
    ).encode()
    request = kserve_codec.parse_request(body, None)
    assert request.id == "r1"
    assert request.inputs["IMAGE"].tolist() == [[[1, 2, 3]]]
    assert [(o.name, o.binary) for o in request.outputs or []] == [("MASK", True), ("ENTROPY", False)]


def test_kserve_parse_tritonclient_request_bytes() -> None:
    """The exact bytes the stock client builds parse back to the same tensor."""
    from tritonclient.http._utils import _get_inference_request

    image = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    tensor = triton.InferInput("IMAGE", list(image.shape), "UINT8")
    tensor.set_data_from_numpy(image, binary_data=True)
    body, length = _get_inference_request([tensor], "", None, "cam", True, False, 0, None, None)
    request = kserve_codec.parse_request(body, length)
    np.testing.assert_array_equal(request.inputs["IMAGE"], image)
    assert request.parameters["sequence_id"] == "cam" and request.binary_output


@pytest.mark.parametrize(
    ("body", "length", "match"),
    [
        (b"{not json", None, "not valid JSON"),
        (b'{"inputs": []}', None, "non-empty"),
        (b'{"inputs": [{"name": "IMAGE", "datatype": "BLOB", "shape": [1]}]}', None, "datatype"),
        (
            b'{"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [2], "data": [1]}]}',
            None,
            "do not fill",
        ),
        (b'{"inputs": [{"name": "IMAGE", "datatype": "UINT8", "shape": [2]}]}', None, "neither"),
        (b"{}", 10, "does not fit"),
    ],
)
def test_kserve_parse_refuses_bad_requests(body: bytes, length: int | None, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        kserve_codec.parse_request(body, length)


def test_kserve_parse_refuses_wrong_binary_size() -> None:
    image = np.zeros((2, 2, 3), dtype=np.uint8)
    body, length = _binary_request(image)
    with pytest.raises(InvalidRequest, match="body ends"):
        kserve_codec.parse_request(body[:-1], length)
    with pytest.raises(InvalidRequest, match="unaccounted"):
        kserve_codec.parse_request(body + b"x", length)


def test_kserve_response_is_read_by_tritonclient() -> None:
    mask = np.arange(6, dtype=np.uint8).reshape(2, 3)
    entropy = np.linspace(0, 2, 6, dtype=np.float32).reshape(2, 3)
    body, length = kserve_codec.encode_response(
        "unet-ss-mcd", "1", [("MASK", mask, True), ("ENTROPY", entropy, False)], request_id="r1"
    )
    assert length is not None
    result = triton.InferResult.from_response_body(body, header_length=length)
    np.testing.assert_array_equal(result.as_numpy("MASK"), mask)
    np.testing.assert_allclose(result.as_numpy("ENTROPY"), entropy)
    assert result.get_response()["id"] == "r1"


def test_kserve_response_all_json_has_no_header_length() -> None:
    body, length = kserve_codec.encode_response("m", "1", [("X", np.ones((1, 2), np.float32), False)])
    assert length is None
    assert json.loads(body)["outputs"][0] == {
        "name": "X",
        "datatype": "FP32",
        "shape": [1, 2],
        "data": [1.0, 1.0],
    }
