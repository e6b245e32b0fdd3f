"""The streams a server holds: list, inspect, reset, delete."""

from __future__ import annotations

import json

from fastapi import APIRouter, Response

from service.api.deps import BroadcasterDep, EngineDep
from service.api.params import StreamIdPath
from service.api.schemas import StreamList, StreamResponse, error_responses

router = APIRouter(prefix="/v1/streams", tags=["streams"])


@router.get("", response_model=StreamList)
async def list_streams(engine: EngineDep) -> StreamList:
    """Every stream that holds state, with its mode, frame count and state size."""
    return StreamList(streams=[StreamResponse.of(info) for info in engine.list_streams()])


@router.get("/{stream_id}", response_model=StreamResponse, responses=error_responses(404))
async def get_stream(stream_id: StreamIdPath, engine: EngineDep) -> StreamResponse:
    """One stream: mode, frames seen, last seen, state bytes."""
    return StreamResponse.of(engine.stream_info(stream_id))


@router.post("/{stream_id}/reset", response_model=StreamResponse, responses=error_responses(404))
async def reset_stream(stream_id: StreamIdPath, engine: EngineDep) -> StreamResponse:
    """Forget the stream's temporal state; its next frame starts afresh (`state_reset: true`)."""
    engine.reset_stream(stream_id)
    return StreamResponse.of(engine.stream_info(stream_id))


@router.delete("/{stream_id}", status_code=204, responses=error_responses(404))
async def delete_stream(stream_id: StreamIdPath, engine: EngineDep, broadcaster: BroadcasterDep) -> Response:
    """End the stream and free its state; subscribers get `{"type": "end"}` and keep waiting."""
    engine.delete_stream(stream_id)
    broadcaster.publish(stream_id, json.dumps({"type": "end", "stream_id": stream_id, "reason": "deleted"}))
    return Response(status_code=204)
