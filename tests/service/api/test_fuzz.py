"""Property-based fuzzing of everything that parses client bytes: only `StreamUQError`s may come out.

The pure decoders get hundreds of examples (milliseconds each); the app is driven
through TestClient with a few dozen each, and must never answer 5xx.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest
from api_helpers import png
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from service import codec, kserve_codec, limits
from service.api import ws
from service.errors import StreamUQError

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
APP = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LIMITS = codec.ImageLimits(max_pixels=256 * 256, max_side=512)
CONTENT_TYPES = st.sampled_from(
    ["image/png", "image/jpeg", "image/jpg", "application/octet-stream", "image/gif", "text/plain", "", None]
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=30,
)


def _jpeg(width: int = 24, height: int = 16) -> bytes:
    out = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(out, format="JPEG")
    return out.getvalue()


SEEDS = [png(24, 16), _jpeg()]


def _decodes_or_refuses(data: bytes, content_type: str | None, **size: int | None) -> None:
    try:
        image = codec.decode_image(data, content_type, limits=LIMITS, **size)
    except StreamUQError as exc:
        assert 400 <= exc.status_code < 500 and exc.message
    else:
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert image.shape[0] * image.shape[1] <= LIMITS.max_pixels


@FAST
@given(data=st.binary(max_size=2048), content_type=CONTENT_TYPES)
def test_fuzz_decode_image_arbitrary_bytes(data: bytes, content_type: str | None) -> None:
    _decodes_or_refuses(data, content_type)


@FAST
@given(
    seed=st.sampled_from(SEEDS),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, 10_000),
)
def test_fuzz_decode_image_mutated_real_images(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for position, value in flips:
        data[position % len(data)] = value
    blob = bytes(data[: max(1, cut % (len(data) + 1))])
    _decodes_or_refuses(blob, codec.sniff_type(seed))


@FAST
@given(
    data=st.binary(max_size=512),
    width=st.none() | st.integers(-5, 2**40),
    height=st.none() | st.integers(-5, 2**40),
)
def test_fuzz_decode_raw_rgb_any_size(data: bytes, width: int | None, height: int | None) -> None:
    _decodes_or_refuses(data, codec.RAW_TYPE, width=width, height=height)


def _input_specs() -> st.SearchStrategy[Any]:
    shape = st.lists(st.integers(-2, 2**40) | st.booleans() | st.floats() | st.text(max_size=3), max_size=5)
    spec = st.fixed_dictionaries(
        {"name": st.sampled_from(["IMAGE", "OTHER"]) | st.text(max_size=4)},
        optional={
            "datatype": st.sampled_from(sorted(kserve_codec.DATATYPES)) | st.text(max_size=5),
            "shape": shape,
            "data": JSON,
            "parameters": JSON
            | st.fixed_dictionaries({"binary_data_size": st.integers(-4, 64) | st.floats() | st.booleans()}),
        },
    )
    return spec | JSON


@FAST
@given(
    header=st.fixed_dictionaries(
        {"inputs": st.lists(_input_specs(), max_size=3)},
        optional={"id": JSON, "parameters": JSON, "outputs": JSON | st.lists(JSON, max_size=3)},
    )
    | JSON,
    binary=st.binary(max_size=64),
    length_shift=st.none() | st.integers(-3, 3),
)
def test_fuzz_kserve_parse_request(header: Any, binary: bytes, length_shift: int | None) -> None:
    head = json.dumps(header).encode()
    length = None if length_shift is None else len(head) + length_shift
    try:
        request = kserve_codec.parse_request(head + binary if length is not None else head, length)
    except StreamUQError as exc:
        assert exc.status_code == 400 and exc.message
    else:
        assert all(isinstance(a, np.ndarray) for a in request.inputs.values())


@FAST
@given(body=st.binary(max_size=256), length=st.none() | st.integers(-10, 300))
def test_fuzz_kserve_parse_request_raw_bytes(body: bytes, length: int | None) -> None:
    try:
        kserve_codec.parse_request(body, length)
    except StreamUQError as exc:
        assert exc.status_code == 400


@FAST
@given(
    body=st.binary(max_size=512), encoding=st.sampled_from(["gzip", "deflate", "identity", "br", "", None])
)
def test_fuzz_inflate_any_bytes(body: bytes, encoding: str | None) -> None:
    try:
        out = limits.inflate(body, encoding, 4096)
    except StreamUQError as exc:
        assert exc.status_code in (400, 413)
    else:
        assert len(out) <= max(4096, len(body))


@FAST
@given(control=JSON)
def test_fuzz_websocket_controls(control: Any) -> None:
    for parse in (ws._frame_meta, ws.parse_mode, ws._str_list, codec.parse_outputs):
        try:
            parse(control)
        except StreamUQError as exc:
            assert exc.status_code in (400, 422)
        except (AttributeError, TypeError):
            # The session hands these helpers a JSON object's fields only; a non-dict control
            # never reaches _frame_meta, and parse_outputs only ever gets a string or a str list.
            assert parse in (ws._frame_meta, codec.parse_outputs)


def _assert_no_5xx(response: Any) -> None:
    assert response.status_code < 500, response.text
    error = response.json().get("error") if response.status_code >= 400 else None
    if error is not None:
        assert error


@APP
@given(
    body=st.binary(max_size=512) | st.sampled_from(SEEDS),
    content_type=CONTENT_TYPES,
    params=st.dictionaries(
        st.sampled_from(["mode", "timestamp", "outputs", "samples", "width", "height"]),
        st.text(max_size=8) | st.integers(-3, 2**33).map(str) | st.floats().map(str),
        max_size=4,
    ),
    stream=st.text(alphabet="abc-._:", min_size=1, max_size=5),
)
def test_fuzz_app_frames_never_5xx(
    client: Any, body: bytes, content_type: str | None, params: Any, stream: str
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = client.post(f"/v1/streams/f{stream}/frames", content=body, headers=headers, params=params)
    _assert_no_5xx(response)


@APP
@given(
    header=st.fixed_dictionaries(
        {"inputs": st.lists(_input_specs(), max_size=2)},
        optional={
            "parameters": st.dictionaries(
                st.sampled_from(
                    [
                        "sequence_id",
                        "sequence_start",
                        "sequence_end",
                        "mode",
                        "timestamp",
                        "samples",
                        "binary_data_output",
                    ]
                ),
                JSON,
                max_size=4,
            ),
            "outputs": JSON,
        },
    ),
    encoding=st.sampled_from([None, "gzip", "deflate", "zstd"]),
    length=st.none() | st.text(alphabet="0123456789x- ", max_size=4),
)
def test_fuzz_app_kserve_infer_never_5xx(
    client: Any, header: Any, encoding: str | None, length: str | None
) -> None:
    headers = {}
    if encoding is not None:
        headers["Content-Encoding"] = encoding
    if length is not None:
        headers[kserve_codec.HEADER_LENGTH] = length
    response = client.post(
        "/v2/models/unet-ss-mcd/infer", content=json.dumps(header).encode(), headers=headers
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert isinstance(response.json()["error"], str)


def test_fuzz_app_websocket_survives_garbage(client: Any) -> None:
    rng = np.random.default_rng(7)
    messages: list[str | bytes] = [
        "not json",
        "[" * 5000 + "]" * 5000,  # deeper than the JSON parser recurses
        '{"type": "frame", "timestamp": ' + "9" * 5000 + "}",  # past Python's int-string limit
        json.dumps({"type": "frame", "width": -1}),
        json.dumps({"type": "frame", "width": 2, "height": 2, "timestamp": "soon"}),
        json.dumps({"type": "mode", "mode": ["dnn"]}),
        json.dumps({"type": "outputs", "outputs": "mask"}),
        json.dumps({"type": 7}),
        json.dumps([1, 2]),
        b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 64, dtype=np.uint8)),
        b"\xff\xd8\xff" + bytes(rng.integers(0, 256, 64, dtype=np.uint8)),
        bytes(rng.integers(0, 256, 128, dtype=np.uint8)),
    ]
    with client.websocket_connect("/v1/streams/fuzz-ws/ws") as socket:
        for message in messages:
            if isinstance(message, bytes):
                socket.send_bytes(message)
            else:
                socket.send_text(message)
            answer = socket.receive_json()
            assert answer["type"] == "error" and answer["error"]["message"], answer
        socket.send_bytes(png())
        assert socket.receive_json()["type"] == "result"  # still serving after all that


def test_fuzz_kserve_refuses_numbers_past_the_int_string_limit(client: Any) -> None:
    digits = "7" * 5000  # json.loads raises a plain ValueError past 4300 digits
    for body in ('{"inputs": [], "parameters": {"sequence_id": ' + digits + "}}", "[" + digits + "]"):
        with pytest.raises(StreamUQError):
            kserve_codec.parse_request(body.encode(), None)
        response = client.post("/v2/models/unet-ss-mcd/infer", content=body.encode())
        assert response.status_code == 400 and isinstance(response.json()["error"], str)
