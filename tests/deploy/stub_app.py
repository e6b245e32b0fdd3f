"""A stand-in for `service.app.create_app` with the same stream contract and no model.

Only the Ray test uses it, while the real app has no weights to load: each
stream counts its frames in this process, exactly as the engine's slot pool
does, so `frame_index` and `state_reset` say which replica holds the stream.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from service.config import Settings


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI()
    frames_seen: dict[str, int] = {}

    @app.get("/v2/health/ready")
    def ready() -> dict[str, str]:
        return {"status": "ok", "model": settings.model}

    @app.post("/v1/streams/{stream_id}/frames")
    async def frames(stream_id: str, request: Request) -> dict[str, Any]:
        await request.body()
        index = frames_seen.get(stream_id, 0)
        frames_seen[stream_id] = index + 1
        return {"stream_id": stream_id, "frame_index": index, "state_reset": index == 0}

    return app
