"""KServe v2 / Triton inference bodies, with Triton's binary tensor extension.

A request is a JSON object, optionally followed by raw tensor bytes: the header
`Inference-Header-Content-Length` gives the JSON's length, and each input whose
`parameters.binary_data_size` is set takes that many bytes, in input order
(little-endian, row-major, no padding). Outputs go back the same way when the
request asks (`outputs[i].parameters.binary_data` or the request parameter
`binary_data_output`); otherwise as flat JSON `data` lists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.errors import InvalidRequest

HEADER_LENGTH = "Inference-Header-Content-Length"
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_NAMES = {dtype: name for name, dtype in DATATYPES.items()}
# Bounds on a declared shape, so that sizes computed from it stay honest integers.
_MAX_DIM = 2**31 - 1
_MAX_DIMS = 8


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool


@dataclass
class InferRequest:
    """A parsed request: `inputs` by name as numpy arrays of their declared shape and type."""

    inputs: dict[str, np.ndarray]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[RequestedOutput] | None = None  # None: all, as `binary_data_output` says

    @property
    def binary_output(self) -> bool:
        return bool(self.parameters.get("binary_data_output", False))


def parse_request(body: bytes, header_length: int | None) -> InferRequest:
    """Body (+ the header's JSON length when binary tensors follow) → `InferRequest`."""
    if header_length is None:
        header, binary = body, b""
    else:
        if not 0 < header_length <= len(body):
            raise InvalidRequest(f"{HEADER_LENGTH} {header_length} does not fit a body of {len(body)} bytes")
        header, binary = body[:header_length], body[header_length:]
    try:
        raw = json.loads(header)
    except (ValueError, RecursionError) as exc:  # bad JSON, bad UTF-8, a 5000-digit number, deep nesting
        raise InvalidRequest(f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("inputs"), list) or not raw["inputs"]:
        raise InvalidRequest("the inference request needs a non-empty `inputs` list")
    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidRequest("`parameters` must be a JSON object")

    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for spec in raw["inputs"]:
        array, used = _parse_input(spec, binary, offset)
        inputs[spec["name"]] = array
        offset += used
    if offset != len(binary):
        raise InvalidRequest(f"{len(binary) - offset} bytes after the last binary input are unaccounted for")
    return InferRequest(
        inputs=inputs,
        id=str(raw["id"]) if raw.get("id") is not None else None,
        parameters=parameters,
        outputs=_parse_outputs(raw.get("outputs"), bool(parameters.get("binary_data_output", False))),
    )


def _parse_input(spec: Any, binary: bytes, offset: int) -> tuple[np.ndarray, int]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise InvalidRequest("every input needs a `name`, a `datatype` and a `shape`")
    name = spec["name"]
    datatype, shape = spec.get("datatype"), spec.get("shape")
    if datatype not in DATATYPES:
        raise InvalidRequest(f"input {name!r}: datatype {datatype!r} is not one of {sorted(DATATYPES)}")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= _MAX_DIM for d in shape
    ):
        raise InvalidRequest(
            f"input {name!r}: shape must be a list of integers in 0..{_MAX_DIM}, got {shape!r:.120}"
        )
    if len(shape) > _MAX_DIMS:
        raise InvalidRequest(f"input {name!r}: {len(shape)} dimensions, at most {_MAX_DIMS}")
    dtype = DATATYPES[datatype]
    count = math.prod(shape)  # exact: numpy's product would wrap around at 2**63
    size = _parameters(spec, f"input {name!r}").get("binary_data_size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size != count * dtype.itemsize:
            raise InvalidRequest(
                f"input {name!r}: binary_data_size {size} is not the {count * dtype.itemsize} bytes "
                f"of {datatype}{shape}"
            )
        if offset + size > len(binary):
            raise InvalidRequest(f"input {name!r}: the body ends before its {size} binary bytes")
        return _reshape(np.frombuffer(binary, dtype=dtype, count=count, offset=offset), shape, name), size
    if "data" not in spec:
        raise InvalidRequest(f"input {name!r} has neither `data` nor `parameters.binary_data_size`")
    try:
        array = np.asarray(spec["data"], dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidRequest(f"input {name!r}: data is not {datatype}: {exc}") from None
    if array.size != count:
        raise InvalidRequest(f"input {name!r}: {array.size} values do not fill shape {shape}")
    return _reshape(array, shape, name), 0


def _reshape(array: np.ndarray, shape: list[int], name: str) -> np.ndarray:
    try:
        return array.reshape(shape)
    except ValueError as exc:  # an empty tensor with absurd dimensions
        raise InvalidRequest(f"input {name!r}: cannot take shape {shape}: {exc}") from None


def _parse_outputs(raw: Any, default_binary: bool) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidRequest("`outputs` must be a list")
    outputs = []
    for spec in raw:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise InvalidRequest("every requested output needs a `name`")
        binary = _parameters(spec, f"output {spec['name']!r}").get("binary_data", default_binary)
        outputs.append(RequestedOutput(spec["name"], bool(binary)))
    return outputs


def _parameters(spec: dict[str, Any], what: str) -> dict[str, Any]:
    parameters = spec.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidRequest(f"{what}: `parameters` must be a JSON object, got {parameters!r:.80}")
    return parameters


def encode_response(
    model_name: str,
    model_version: str,
    outputs: Sequence[tuple[str, np.ndarray, bool]],
    *,
    request_id: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> tuple[bytes, int | None]:
    """`(name, array, binary)` triples → body and the JSON length (None when all JSON)."""
    header: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        header["id"] = request_id
    if parameters:
        header["parameters"] = dict(parameters)
    tensors: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for name, array, binary in outputs:
        little = array.astype(array.dtype.newbyteorder("<"), copy=False)
        tensor: dict[str, Any] = {"name": name, "datatype": datatype_of(little), "shape": list(little.shape)}
        if binary:
            blob = np.ascontiguousarray(little).tobytes()
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = little.ravel().tolist()
        tensors.append(tensor)
    header["outputs"] = tensors
    head = json.dumps(header, separators=(",", ":")).encode()
    if not blobs:
        return head, None
    return b"".join([head, *blobs]), len(head)


def datatype_of(array: np.ndarray) -> str:
    try:
        return _NAMES[array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype]
    except KeyError:
        raise ValueError(f"no KServe datatype for numpy {array.dtype}") from None
