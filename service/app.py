"""The FastAPI app: settings, engine, metrics and routers wired together; nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api import (
    DESCRIPTION,
    SERVICE_VERSION,
    demo,
    errors,
    frames,
    guard,
    health,
    kserve,
    models,
    streams,
    ws,
)
from service.api.deps import EngineAPI
from service.broadcast import Broadcaster
from service.config import Settings
from service.metrics import Metrics
from service.types import EngineObserver

EngineFactory = Callable[[Settings, EngineObserver], EngineAPI]


def _shipped_engine(settings: Settings, observer: EngineObserver) -> EngineAPI:
    from service import threads
    from service.engine import Engine  # torch and the weights load here, not at import

    threads.confine_caller()  # this thread only loads; the inference thread computes
    return Engine.from_settings(settings, observer)


def create_app(settings: Settings | None = None, engine_factory: EngineFactory = _shipped_engine) -> FastAPI:
    """A ready-to-serve app; the model loads and warms up in the lifespan, before readiness."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = engine_factory(settings, metrics)
        app.state.engine = engine
        await engine.start()  # warm-up: /v2/health/ready turns true only after this
        try:
            yield
        finally:
            await engine.stop()  # refuse new frames, finish those in flight

    app = FastAPI(
        title="streamuq",
        version=SERVICE_VERSION,
        summary="Real-time per-pixel uncertainty for video segmentation.",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.broadcaster = Broadcaster(on_drop=lambda n: metrics.dropped_n("subscriber_slow", n))
    errors.install(app)
    guard.install(app, settings)  # request id, API keys, request timeout, CORS
    for router in (frames.router, streams.router, ws.router, models.router, kserve.router, health.router):
        app.include_router(router)
    app.include_router(demo.router)  # the live demo page at GET /
    return app
