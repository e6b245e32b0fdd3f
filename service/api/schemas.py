"""Pydantic shapes of what the API returns, with examples for /docs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.types import Mode, StreamInfo

_PNG_EXAMPLE = "iVBORw0KGgoAAAANSUhEUgAAAeAAAAFoCAAAAAA…"


class MapScale(BaseModel):
    min: float
    max: float


class EncodedMap(BaseModel):
    """One map as an 8-bit PNG; value = pixel / 255 · (max − min) + min (`scale` null: exact ids)."""

    format: Literal["png"] = "png"
    dtype: Literal["uint8"] = "uint8"
    scale: MapScale | None
    data: str = Field(description="base64 of an 8-bit grayscale PNG", examples=[_PNG_EXAMPLE])


class Timings(BaseModel):
    """Milliseconds per stage; `total` is the server's whole time for the frame."""

    decode: float = 0.0
    queue: float = 0.0
    infer: float = 0.0
    update: float = 0.0
    encode: float = 0.0
    total: float = 0.0


class Summary(BaseModel):
    """Frame-level numbers. A pixel is uncertain when its entropy exceeds ½·ln C nats."""

    mean_entropy: float
    mean_epistemic: float
    uncertain_fraction: float
    class_fractions: dict[str, float]


class FrameResponse(BaseModel):
    """The result of one frame: its uncertainty maps and where the time went."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "stream_id": "cam-1",
                    "frame_index": 0,
                    "mode": "vq-bnn",
                    "timestamp": 0.0,
                    "state_reset": True,
                    "width": 480,
                    "height": 360,
                    "classes": ["sky", "building", "road", "sidewalk", "tree", "car", "pedestrian", "other"],
                    "dropped_frames": 0,
                    "timings_ms": {
                        "decode": 1.2,
                        "queue": 0.3,
                        "infer": 40.1,
                        "update": 0.4,
                        "encode": 3.0,
                        "total": 45.0,
                    },
                    "summary": {
                        "mean_entropy": 0.31,
                        "mean_epistemic": 0.05,
                        "uncertain_fraction": 0.12,
                        "class_fractions": {"sky": 0.2, "road": 0.35},
                    },
                    "maps": {
                        "mask": {"format": "png", "dtype": "uint8", "scale": None, "data": _PNG_EXAMPLE},
                        "entropy": {
                            "format": "png",
                            "dtype": "uint8",
                            "scale": {"min": 0.0, "max": 2.079},
                            "data": _PNG_EXAMPLE,
                        },
                    },
                }
            ]
        }
    )

    stream_id: str
    frame_index: int = Field(description="0-based index among this stream's processed frames")
    mode: Mode
    timestamp: float = Field(description="capture time in seconds, or the frame index without one")
    state_reset: bool = Field(description="the temporal state started afresh with this frame")
    width: int
    height: int
    classes: list[str]
    dropped_frames: int = Field(
        description="frames of this stream dropped (newest wins) since the last result"
    )
    timings_ms: Timings
    summary: Summary
    maps: dict[str, EncodedMap] = Field(description="mask, confidence, entropy, aleatoric, epistemic")


class StreamResponse(BaseModel):
    stream_id: str
    mode: Mode
    frames_seen: int
    created_at: float = Field(description="seconds since the epoch")
    last_seen: float = Field(description="seconds since the epoch")
    state_bytes: int
    owner: str | None = None

    @classmethod
    def of(cls, info: StreamInfo) -> StreamResponse:
        return cls(
            stream_id=info.stream_id,
            mode=info.mode,
            frames_seen=info.frames_seen,
            created_at=info.created_at,
            last_seen=info.last_seen,
            state_bytes=info.state_bytes,
            owner=info.owner,
        )


class StreamList(BaseModel):
    streams: list[StreamResponse]


class ModelCardResponse(BaseModel):
    name: str = Field(description="also the model name of /v2/models/{name}", examples=["unet-ss-mcd"])
    classes: list[str]
    # Lists of fixed length, not tuples: `prefixItems` trips OpenAPI tools (schemathesis, 3.0 generators).
    palette: list[Annotated[list[int], Field(min_length=3, max_length=3)]] = Field(
        description="RGB per class"
    )
    input_size: list[int] = Field(min_length=2, max_length=2, description="(height, width) the net runs at")
    modes: list[Mode]
    stochastic: bool = Field(description="has MC dropout: bnn and vq-bnn sample it")
    metrics: dict[str, float] = Field(default_factory=dict)


class ModelList(BaseModel):
    models: list[ModelCardResponse]


class ErrorBody(BaseModel):
    code: str = Field(examples=["frame_decode_error"])
    message: str = Field(examples=["could not decode the body as PNG: …"])


class ErrorResponse(BaseModel):
    """Every 4xx/5xx of /v1: a stable `code` and a message naming the bad value."""

    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok", "starting"]
    model: str
    device: str


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries for the error statuses a route can answer."""
    return {status: {"model": ErrorResponse} for status in statuses}
