"""POST a frame to a stream: one image in, mask and uncertainty maps out (JSON or npz)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from service import codec, security
from service.api import pipeline
from service.api.deps import BroadcasterDep, EngineDep, MetricsDep, SettingsDep
from service.api.guard import OwnerDep
from service.api.params import ModeQuery, OutputsQuery, StreamIdPath, TimestampQuery
from service.api.schemas import FrameResponse, error_responses
from service.errors import PayloadTooLarge

router = APIRouter(prefix="/v1/streams", tags=["frames"])

_BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "One JPEG or PNG image, or packed RGB bytes (row-major, H·W·3) with `width` and "
        "`height` in the query.",
        "content": {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            codec.RAW_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_NPZ_DOC = {
    codec.NPZ_TYPE: {
        "schema": {"type": "string", "format": "binary"},
        "description": "With `Accept: application/x-npz`: arrays `mask` (uint8) and the float16 maps, and "
        "`meta`, a JSON string with everything of the JSON response but the maps (also in the "
        "`X-Frame-Meta` header).",
    }
}


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused with 413 as soon as it passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/{stream_id}/frames",
    response_model=FrameResponse,
    summary="Process one frame of a stream",
    openapi_extra=_BODY_DOC,
    responses={200: {"content": _NPZ_DOC}, **error_responses(400, 409, 413, 415, 422, 429, 503)},
)
async def post_frame(
    stream_id: StreamIdPath,
    request: Request,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    broadcaster: BroadcasterDep,
    owner: OwnerDep,
    mode: ModeQuery = None,
    timestamp: TimestampQuery = None,
    outputs: OutputsQuery = None,
    samples: Annotated[int | None, Query(ge=1, le=256, description="MC samples (mode bnn)")] = None,
    width: Annotated[int | None, Query(ge=1, description="raw RGB only: width in pixels")] = None,
    height: Annotated[int | None, Query(ge=1, description="raw RGB only: height in pixels")] = None,
) -> Response:
    """Segment one frame and return its mask and uncertainty maps; a new stream starts on its first frame."""
    names = codec.parse_outputs(outputs)
    body = await read_body(request, settings.max_body_bytes)
    image, decode_s = await pipeline.decode(
        body,
        request.headers.get("content-type"),
        width=width,
        height=height,
        mode=mode,
        settings=settings,
        metrics=metrics,
    )
    # No await between the owner check and the submit: the stream cannot change hands in between.
    security.check_owner(engine, stream_id, owner, settings.stream_ttl_s)
    result = await engine.submit(
        stream_id, image, timestamp=timestamp, mode=mode, samples=samples, owner=owner
    )
    card = engine.card
    if codec.NPZ_TYPE in request.headers.get("accept", ""):
        data, meta = await asyncio.to_thread(pipeline.render_npz, result, card, names, decode_s, metrics)
        await pipeline.publish(broadcaster, result, card, owner=owner)
        return Response(data, media_type=codec.NPZ_TYPE, headers={"X-Frame-Meta": json.dumps(meta)})
    response = await asyncio.to_thread(pipeline.render, result, card, names, decode_s, metrics)
    await pipeline.publish(broadcaster, result, card, response, owner)
    return Response(response.model_dump_json(), media_type="application/json")
