"""What routes depend on, as `Annotated` aliases: the engine, settings, metrics, the broadcaster."""

from __future__ import annotations

from typing import Annotated, Protocol

import torch
from fastapi import Depends
from starlette.requests import HTTPConnection

from models import ModelCard
from service.broadcast import Broadcaster
from service.config import Settings
from service.errors import NotReady
from service.metrics import Metrics
from service.types import FrameResult, ImageArray, Mode, StreamInfo


class EngineAPI(Protocol):
    """The part of `service.engine.Engine` the routes use (tests pass a fake with the same surface)."""

    @property
    def ready(self) -> bool: ...

    @property
    def card(self) -> ModelCard: ...

    @property
    def device(self) -> torch.device: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def submit(
        self,
        stream_id: str,
        image: ImageArray,
        *,
        timestamp: float | None = None,
        mode: Mode | None = None,
        samples: int | None = None,
        latest_wins: bool = False,
        owner: str | None = None,
    ) -> FrameResult: ...

    def list_streams(self) -> list[StreamInfo]: ...

    def stream_info(self, stream_id: str) -> StreamInfo: ...

    def reset_stream(self, stream_id: str) -> None: ...

    def delete_stream(self, stream_id: str) -> None: ...

    def queue_depth(self) -> int: ...

    def state_bytes(self) -> int: ...


def get_engine(conn: HTTPConnection) -> EngineAPI:
    engine: EngineAPI | None = getattr(conn.app.state, "engine", None)
    if engine is None:
        raise NotReady("the model is still loading; retry when /v2/health/ready answers 200")
    return engine


def get_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


def get_metrics(conn: HTTPConnection) -> Metrics:
    metrics: Metrics = conn.app.state.metrics
    return metrics


def get_broadcaster(conn: HTTPConnection) -> Broadcaster:
    broadcaster: Broadcaster = conn.app.state.broadcaster
    return broadcaster


EngineDep = Annotated[EngineAPI, Depends(get_engine)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
BroadcasterDep = Annotated[Broadcaster, Depends(get_broadcaster)]
