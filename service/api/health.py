"""Liveness, readiness and Prometheus metrics (KServe's /v2/health lives in kserve.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from service.api.deps import EngineDep, MetricsDep, SettingsDep
from service.api.schemas import Health, error_responses
from service.errors import NotReady
from service.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def live(engine: EngineDep, settings: SettingsDep) -> Health:
    """The process answers (the model may still be warming up)."""
    return Health(
        status="ok" if engine.ready else "starting", model=settings.model, device=str(engine.device)
    )


@router.get("/readyz", response_model=Health, responses=error_responses(503))
async def ready(engine: EngineDep, settings: SettingsDep) -> Health:
    """The model is loaded and warm: frames are taken."""
    if not engine.ready:
        raise NotReady("the model is still loading or the server is shutting down")
    return Health(status="ok", model=settings.model, device=str(engine.device))


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(engine: EngineDep, metrics: MetricsDep) -> Response:
    """Prometheus text format: latency per stage, batch size, frames, drops, streams, queue, state bytes."""
    metrics.gauges(len(engine.list_streams()), engine.queue_depth(), engine.state_bytes())
    return Response(metrics.exposition(), media_type=CONTENT_TYPE)
