"""The I/O around one frame that HTTP, WebSocket and KServe routes share: decode, render, publish.

No model logic here: the engine does the work; this module times the two stages
the engine does not see (decode and encode), turns a `FrameResult` into the
JSON every client path returns, and hands it to the stream's subscribers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from models import ModelCard
from service import codec, security
from service.api.schemas import FrameResponse
from service.broadcast import Broadcaster
from service.config import Settings
from service.errors import StreamUQError
from service.metrics import Metrics
from service.types import OUTPUT_NAMES, FrameResult, ImageArray, Mode, OutputName

# Stream ids are path segments, log fields and Ray Serve session keys: keep them plain.
STREAM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
# Decoding a small frame inline beats a thread hop; big ones go to a thread to keep the loop free.
_INLINE_DECODE_BYTES = 256 * 1024


def image_limits(settings: Settings) -> codec.ImageLimits:
    return codec.ImageLimits(max_pixels=settings.max_image_pixels, max_side=settings.max_image_side)


async def decode(
    data: bytes,
    content_type: str | None,
    *,
    width: int | None,
    height: int | None,
    mode: Mode | None,
    settings: Settings,
    metrics: Metrics,
) -> tuple[ImageArray, float]:
    """Bytes → H×W×3 uint8 and the seconds it took (observed as stage `decode`).

    A frame that does not decode never reaches the engine: it is counted here as
    `streamuq_frames_total{outcome="rejected"}` under the mode it asked for.
    """
    start = time.perf_counter()
    limits = image_limits(settings)
    try:
        if len(data) <= _INLINE_DECODE_BYTES:
            image = codec.decode_image(data, content_type, width=width, height=height, limits=limits)
        else:
            image = await asyncio.to_thread(
                codec.decode_image, data, content_type, width=width, height=height, limits=limits
            )
    except StreamUQError:
        metrics.frame_done(mode or settings.default_mode, "rejected", {})
        raise
    seconds = time.perf_counter() - start
    metrics.observe_stage("decode", seconds)
    return image, seconds


def render(
    result: FrameResult,
    card: ModelCard,
    outputs: Sequence[OutputName],
    decode_s: float,
    metrics: Metrics | None,
) -> FrameResponse:
    """A `FrameResult` → the JSON response with PNG maps; observes `encode` and `total`."""
    start = time.perf_counter()
    maps = codec.encode_maps_png(result.maps, outputs, len(card.classes))
    summary = codec.summarize(result.maps, card.classes)
    encode_s = time.perf_counter() - start
    return FrameResponse.model_validate(
        {
            **frame_meta(result, card),
            "timings_ms": timings_ms(result, decode_s, encode_s, metrics),
            "summary": summary,
            "maps": maps,
        }
    )


def render_npz(
    result: FrameResult, card: ModelCard, outputs: Sequence[OutputName], decode_s: float, metrics: Metrics
) -> tuple[bytes, dict[str, object]]:
    """A `FrameResult` → npz bytes (uint8 mask, float16 maps, `meta` JSON entry) and the meta."""
    start = time.perf_counter()
    meta: dict[str, object] = {
        **frame_meta(result, card),
        "summary": codec.summarize(result.maps, card.classes),
    }
    body = codec.encode_npz(result.maps, outputs, meta)
    meta["timings_ms"] = timings_ms(result, decode_s, time.perf_counter() - start, metrics)
    return body, meta


def frame_meta(result: FrameResult, card: ModelCard) -> dict[str, object]:
    return {
        "stream_id": result.stream_id,
        "frame_index": result.frame_index,
        "mode": result.mode,
        "timestamp": result.timestamp,
        "state_reset": result.state_reset,
        "width": result.width,
        "height": result.height,
        "classes": list(card.classes),
        "dropped_frames": result.dropped_frames,
    }


def timings_ms(
    result: FrameResult, decode_s: float, encode_s: float, metrics: Metrics | None
) -> dict[str, float]:
    """Per-stage milliseconds; `total` = decode + the engine's time + encode (observed in seconds)."""
    engine = result.timings
    engine_total = engine.get("total", sum(engine.get(s, 0.0) for s in ("queue", "infer", "update")))
    total = decode_s + engine_total + encode_s
    if metrics is not None:
        metrics.observe_stage("encode", encode_s)
        metrics.observe_stage("total", total)
    ms = {stage: round(engine.get(stage, 0.0) * 1000, 3) for stage in ("queue", "infer", "update")}
    return {
        "decode": round(decode_s * 1000, 3),
        **ms,
        "encode": round(encode_s * 1000, 3),
        "total": round(total * 1000, 3),
    }


def result_message(response_json: str) -> str:
    """FrameResponse JSON → the WebSocket message `{"type": "result", ...}` (no re-serialisation)."""
    return '{"type":"result",' + response_json[1:]


async def publish(
    broadcaster: Broadcaster,
    result: FrameResult,
    card: ModelCard,
    response: FrameResponse | None = None,
    owner: str | None = None,
) -> None:
    """Give the frame's result to the stream's subscribers, if any (on the event loop: queues
    are not thread-safe). Without a JSON response yet, renders every map in a worker thread.
    `owner` (the key id that feeds the stream) picks the channel: only its subscribers see it."""
    channel = security.channel(result.stream_id, owner)
    if not broadcaster.has_subscribers(channel):
        return
    if response is None:  # not a client's latency: unobserved
        response = await asyncio.to_thread(render, result, card, OUTPUT_NAMES, 0.0, None)
    broadcaster.publish(channel, result_message(response.model_dump_json()))
