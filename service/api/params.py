"""Path and query parameters shared by the /v1 routes, declared once with their docs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from service.api.pipeline import STREAM_ID_PATTERN
from service.types import Mode

StreamIdPath = Annotated[
    str,
    Path(
        pattern=STREAM_ID_PATTERN,
        description="Any id the client picks: letters, digits and `._:-`, at most 128 characters.",
        examples=["cam-1"],
    ),
]
ModeQuery = Annotated[
    Mode | None,
    Query(description="For a new stream; default from the server's settings (vq-bnn)."),
]
TimestampQuery = Annotated[
    float | None,
    Query(
        allow_inf_nan=False,
        description="Capture time in seconds; must grow within a stream. Without it, frames are 1 apart.",
    ),
]
OutputsQuery = Annotated[
    str | None,
    Query(
        description="Comma list of mask, confidence, entropy, aleatoric, epistemic (default: all).",
        examples=["mask,entropy"],
    ),
]
