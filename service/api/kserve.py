"""KServe v2 / Triton HTTP protocol, so that the stock `tritonclient[http]` works unmodified.

Input `IMAGE` UINT8 [H, W, 3] (or [1, H, W, 3]); outputs `MASK` UINT8 [H, W] and
`CONFIDENCE`, `ENTROPY`, `ALEATORIC`, `EPISTEMIC` FP32 [H, W]. Triton's sequence
extension maps onto streams: `sequence_id` N is stream `N` of /v1 (watchable with
/v1/streams/N/subscribe); `sequence_start` starts it afresh, `sequence_end` frees
its state after the frame. A request without a sequence is one stateless frame.
Custom request parameters: `mode`, `timestamp`, `samples`. Errors: `{"error": "..."}`.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
import uuid
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from service import kserve_codec, limits, security
from service.api import SERVICE_VERSION, pipeline
from service.api.deps import BroadcasterDep, EngineAPI, EngineDep, MetricsDep, SettingsDep
from service.api.frames import read_body
from service.api.guard import OwnerDep
from service.api.ws import parse_mode
from service.errors import (
    FrameDecodeError,
    InvalidParameter,
    InvalidRequest,
    ModelNotFound,
    NotReady,
    StreamNotFound,
)
from service.types import OUTPUT_NAMES, OutputName

router = APIRouter(prefix="/v2", tags=["kserve-v2"])

VERSION = "1"
INPUT = "IMAGE"
OUTPUTS: dict[str, OutputName] = {name.upper(): name for name in OUTPUT_NAMES}
EXTENSIONS = ["binary_tensor_data", "sequence", "sequence(string_id)", "parameters"]
_V2_ERROR = {"content": {"application/json": {"example": {"error": "model 'x' is not served here"}}}}


def _check_model(engine: EngineAPI, model: str, version: str | None = None) -> None:
    if model != engine.card.name:
        raise ModelNotFound(f"model {model!r} is not served here; this server runs {engine.card.name!r}")
    if version not in (None, "", VERSION):
        raise ModelNotFound(f"model {model!r} has no version {version!r}; the only one is {VERSION!r}")


@router.get("")
async def server_metadata() -> dict[str, Any]:
    """Server name, version and the protocol extensions it supports."""
    return {"name": "streamuq", "version": SERVICE_VERSION, "extensions": EXTENSIONS}


@router.get("/health/live")
async def server_live() -> dict[str, Any]:
    """200 while the process answers."""
    return {"live": True}


@router.get("/health/ready", responses={503: _V2_ERROR})
async def server_ready(engine: EngineDep) -> dict[str, Any]:
    """200 once the model is loaded and warm; 503 before and while shutting down."""
    if not engine.ready:
        raise NotReady("the model is still loading or the server is shutting down")
    return {"ready": True}


def model_metadata(engine: EngineAPI) -> dict[str, Any]:
    maps = [{"name": n, "datatype": "FP32", "shape": [-1, -1]} for n in OUTPUTS if n != "MASK"]
    return {
        "name": engine.card.name,
        "versions": [VERSION],
        "platform": "pytorch",
        "inputs": [{"name": INPUT, "datatype": "UINT8", "shape": [-1, -1, 3]}],
        "outputs": [{"name": "MASK", "datatype": "UINT8", "shape": [-1, -1]}, *maps],
    }


@router.get("/models/{model}", responses={404: _V2_ERROR})
@router.get("/models/{model}/versions/{version}", responses={404: _V2_ERROR})
async def get_model_metadata(model: str, engine: EngineDep, version: str | None = None) -> dict[str, Any]:
    """Inputs and outputs of the model, with names, datatypes and shapes (-1: any size)."""
    _check_model(engine, model, version)
    return model_metadata(engine)


@router.get("/models/{model}/ready", responses={404: _V2_ERROR, 503: _V2_ERROR})
@router.get("/models/{model}/versions/{version}/ready", responses={404: _V2_ERROR, 503: _V2_ERROR})
async def get_model_ready(model: str, engine: EngineDep, version: str | None = None) -> dict[str, Any]:
    """200 when the model takes requests."""
    _check_model(engine, model, version)
    if not engine.ready:
        raise NotReady(f"model {model!r} is still loading")
    return {"name": model, "ready": True}


@router.get("/models/{model}/config", responses={404: _V2_ERROR})
@router.get("/models/{model}/versions/{version}/config", responses={404: _V2_ERROR})
async def get_model_config(model: str, engine: EngineDep, version: str | None = None) -> dict[str, Any]:
    """A Triton-style model configuration: stateful (sequence batching), any image size."""
    _check_model(engine, model, version)
    meta = model_metadata(engine)
    return {
        "name": model,
        "platform": meta["platform"],
        "max_batch_size": 0,
        "sequence_batching": {},
        "input": [{"name": INPUT, "data_type": "TYPE_UINT8", "dims": [-1, -1, 3]}],
        "output": [
            {"name": o["name"], "data_type": "TYPE_" + o["datatype"], "dims": o["shape"]}
            for o in meta["outputs"]
        ],
    }


@router.post(
    "/models/{model}/infer",
    responses={400: _V2_ERROR, 404: _V2_ERROR, 409: _V2_ERROR, 429: _V2_ERROR},
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "Inference request JSON, optionally followed by binary tensors "
            f"(`{kserve_codec.HEADER_LENGTH}` = JSON length).",
            "content": {
                "application/json": {
                    "example": {
                        "inputs": [
                            {"name": "IMAGE", "datatype": "UINT8", "shape": [2, 2, 3], "data": [0] * 12}
                        ],
                        "parameters": {"sequence_id": 7, "sequence_start": True},
                    }
                },
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
@router.post("/models/{model}/versions/{version}/infer", include_in_schema=False)
async def infer(
    model: str,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    broadcaster: BroadcasterDep,
    owner: OwnerDep,
    version: str | None = None,
) -> Response:
    """Run one frame; with `sequence_id` it is a frame of that stream (state kept between calls)."""
    _check_model(engine, model, version)
    raw = await read_body(request, settings.max_body_bytes)
    start = time.perf_counter()
    body = limits.inflate(raw, request.headers.get("content-encoding"), settings.max_body_bytes)
    header_length = _int_header(request.headers.get(kserve_codec.HEADER_LENGTH))
    parsed = kserve_codec.parse_request(body, header_length)
    image = _image(parsed.inputs, settings.max_image_side, settings.max_image_pixels)
    outputs = _requested(parsed)
    params = parsed.parameters
    stream_id, sequence = _stream_id(params.get("sequence_id"))
    decode_s = time.perf_counter() - start
    metrics.observe_stage("decode", decode_s)

    # Another key's sequence of the same id looks missing (404), as on /v1.
    security.check_owner(engine, stream_id, owner, settings.stream_ttl_s)
    if sequence and params.get("sequence_start"):
        with contextlib.suppress(StreamNotFound):
            engine.delete_stream(stream_id)
    try:
        result = await engine.submit(
            stream_id,
            image,
            timestamp=_number(params.get("timestamp"), "timestamp"),
            mode=parse_mode(params.get("mode")),
            samples=_count(params.get("samples")),
            owner=owner,
        )
    finally:
        if not sequence or params.get("sequence_end"):
            with contextlib.suppress(StreamNotFound):
                security.check_owner(engine, stream_id, owner, settings.stream_ttl_s)
                engine.delete_stream(stream_id)

    start = time.perf_counter()
    tensors = [(name, np.asarray(result.maps.get(OUTPUTS[name])), binary) for name, binary in outputs]
    body, json_length = kserve_codec.encode_response(
        model,
        VERSION,
        tensors,
        request_id=parsed.id,
        parameters={
            "sequence_id": params.get("sequence_id", 0),
            "frame_index": result.frame_index,
            "state_reset": result.state_reset,
            "mode": result.mode,
        },
    )
    pipeline.timings_ms(result, decode_s, time.perf_counter() - start, metrics)
    if sequence:
        await pipeline.publish(broadcaster, result, engine.card, owner=owner)
    if json_length is None:
        return Response(body, media_type="application/json")
    return Response(
        body,
        media_type="application/octet-stream",
        headers={kserve_codec.HEADER_LENGTH: str(json_length)},
    )


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise InvalidRequest(f"{kserve_codec.HEADER_LENGTH} must be a byte count, got {value!r}")
    return int(value)


def _image(inputs: dict[str, np.ndarray], max_side: int, max_pixels: int) -> np.ndarray:
    if INPUT not in inputs or len(inputs) != 1:
        raise InvalidRequest(f"expected exactly one input {INPUT!r}, got {sorted(inputs)}")
    image = inputs[INPUT]
    if image.ndim == 4 and image.shape[0] == 1:
        image = image[0]
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise FrameDecodeError(
            f"input {INPUT} must be UINT8 [H, W, 3] or [1, H, W, 3], got {image.dtype} {list(image.shape)}"
        )
    height, width = image.shape[:2]
    limits.check_image_size(width, height, max_side=max_side, max_pixels=max_pixels)
    return np.ascontiguousarray(image).copy()  # writable and independent of the request body


def _requested(parsed: kserve_codec.InferRequest) -> list[tuple[str, bool]]:
    if parsed.outputs is None:
        return [(name, parsed.binary_output) for name in OUTPUTS]
    unknown = [o.name for o in parsed.outputs if o.name not in OUTPUTS]
    if unknown:
        raise InvalidRequest(f"unknown outputs {unknown}; choose from {list(OUTPUTS)}")
    return [(o.name, o.binary) for o in parsed.outputs]


def _stream_id(sequence_id: object) -> tuple[str, bool]:
    """`sequence_id` → (stream id, is a sequence). 0, "" or absent: a one-off frame."""
    if sequence_id in (None, 0, ""):
        return f"v2-{uuid.uuid4().hex}", False
    if isinstance(sequence_id, bool) or not isinstance(sequence_id, int | str):
        raise InvalidRequest(f"sequence_id must be an unsigned integer or a string, got {sequence_id!r}")
    if isinstance(sequence_id, int) and not 0 <= sequence_id < 2**64:
        shown = sequence_id if abs(sequence_id) < 2**128 else "a larger number"  # str() of a huge int fails
        raise InvalidRequest(f"sequence_id must be an unsigned 64-bit integer, got {shown}")
    stream_id = str(sequence_id)
    if not re.fullmatch(pipeline.STREAM_ID_PATTERN, stream_id):
        raise InvalidRequest(f"sequence_id {stream_id!r} must match {pipeline.STREAM_ID_PATTERN}")
    return stream_id, True


def _number(value: object, name: str) -> float | None:
    if value is None:
        return None
    number = float(value) if isinstance(value, float) else math.inf
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**1023:
        number = float(value)  # a huge JSON integer would overflow float()
    if not math.isfinite(number):
        raise InvalidParameter(f"parameter {name} must be a finite number, got {value!r:.40}")
    return number


def _count(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
        raise InvalidParameter(f"parameter samples must be an integer in 1..256, got {value!r}")
    return value
