"""The streams a server holds: list, inspect, reset, delete."""

from __future__ import annotations

import json

from fastapi import APIRouter, Response

from service import security
from service.api.deps import BroadcasterDep, EngineDep, SettingsDep
from service.api.guard import OwnerDep
from service.api.params import StreamIdPath
from service.api.schemas import StreamList, StreamResponse, error_responses

router = APIRouter(prefix="/v1/streams", tags=["streams"])


@router.get("", response_model=StreamList)
async def list_streams(engine: EngineDep, owner: OwnerDep) -> StreamList:
    """Every stream of the caller's key that holds state, with its mode, frame count and state size."""
    infos = [info for info in engine.list_streams() if security.visible(info, owner)]
    return StreamList(streams=[StreamResponse.of(info) for info in infos])


@router.get("/{stream_id}", response_model=StreamResponse, responses=error_responses(404))
async def get_stream(
    stream_id: StreamIdPath, engine: EngineDep, settings: SettingsDep, owner: OwnerDep
) -> StreamResponse:
    """One stream: mode, frames seen, last seen, state bytes."""
    security.check_owner(engine, stream_id, owner, settings.stream_ttl_s)
    return StreamResponse.of(engine.stream_info(stream_id))


@router.post("/{stream_id}/reset", response_model=StreamResponse, responses=error_responses(404))
async def reset_stream(
    stream_id: StreamIdPath, engine: EngineDep, settings: SettingsDep, owner: OwnerDep
) -> StreamResponse:
    """Forget the stream's temporal state; its next frame starts afresh (`state_reset: true`)."""
    security.check_owner(engine, stream_id, owner, settings.stream_ttl_s)
    engine.reset_stream(stream_id)
    return StreamResponse.of(engine.stream_info(stream_id))


@router.delete("/{stream_id}", status_code=204, responses=error_responses(404))
async def delete_stream(
    stream_id: StreamIdPath,
    engine: EngineDep,
    broadcaster: BroadcasterDep,
    settings: SettingsDep,
    owner: OwnerDep,
) -> Response:
    """End the stream and free its state; subscribers get `{"type": "end"}` and keep waiting."""
    security.check_owner(engine, stream_id, owner, settings.stream_ttl_s)
    engine.delete_stream(stream_id)
    channel = security.channel(stream_id, owner)
    broadcaster.publish(channel, json.dumps({"type": "end", "stream_id": stream_id, "reason": "deleted"}))
    return Response(status_code=204)
