"""The demo page: `GET /` and its three static files (no build step, no CDN).

The page talks to the public API only (`GET /v1/models`, `WS /v1/streams/{id}/ws`),
so it holds no secrets and needs no API key to load; the key is typed into the page.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Served files and their media types; anything else is a 404 (no path from the client touches the disk).
STATIC_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

# The page is a few kB; always revalidate so a new release is never hidden behind a stale cache.
_HEADERS = {"Cache-Control": "no-cache"}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> FileResponse:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise HTTPException(404, f"no static file {name!r}; the demo serves {sorted(STATIC_FILES)}")
    return FileResponse(STATIC_DIR / name, media_type=media_type, headers=_HEADERS)


@router.get("/")
def index() -> FileResponse:
    """The live demo page."""
    return _file("index.html")


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """One of the page's files (`app.js`, `style.css`)."""
    return _file(name)
