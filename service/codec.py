"""Bytes in, bytes out: client images → H×W×3 uint8, uncertainty maps → 8-bit PNG or npz.

Maps travel as 8-bit PNGs on a fixed scale so that frames of a video compare:
confidence on [0, 1], entropies (total, aleatoric, epistemic) on [0, ln C] nats.
A value is `pixel / 255 · (max − min) + min`, exact to half a step (±0.4 %).
"""

from __future__ import annotations

import base64
import io
import json
import math
import struct
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from service.errors import FrameDecodeError, InvalidParameter, UnsupportedMediaType
from service.limits import bomb_refusal, check_image_size
from service.types import OUTPUT_NAMES, ImageArray, OutputName, UncertaintyMaps

IMAGE_TYPES: dict[str, str] = {"image/jpeg": "JPEG", "image/jpg": "JPEG", "image/png": "PNG"}
RAW_TYPE = "application/octet-stream"
NPZ_TYPE = "application/x-npz"
# A pixel counts as uncertain when its total entropy exceeds this fraction of ln C,
# the entropy of the uniform distribution over the C classes.
UNCERTAIN_ENTROPY_FRACTION = 0.5


@dataclass(frozen=True)
class ImageLimits:
    max_pixels: int = 4096 * 4096
    max_side: int = 8192


def media_type(content_type: str | None) -> str:
    """`image/png; q=1` → `image/png`; missing → empty string."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_image(
    data: bytes,
    content_type: str | None,
    *,
    width: int | None = None,
    height: int | None = None,
    limits: ImageLimits = ImageLimits(),
) -> ImageArray:
    """One JPEG, PNG or raw RGB image → H×W×3 uint8 RGB. Raw RGB needs `width` and `height`."""
    kind = media_type(content_type)
    if not data:
        raise FrameDecodeError("the request body is empty; send one JPEG, PNG or raw RGB image")
    if kind == RAW_TYPE:
        return decode_raw_rgb(data, width, height, limits)
    if kind not in IMAGE_TYPES:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type!r}; send image/jpeg, image/png, or "
            f"{RAW_TYPE} with width and height"
        )
    fmt = IMAGE_TYPES[kind]
    try:
        with Image.open(io.BytesIO(data), formats=[fmt]) as image:
            _check_size(image.width, image.height, limits)
            image.load()
            if image.mode == "P" and "transparency" in image.info:
                rgb = image.convert("RGBA").convert("RGB")
            else:
                rgb = image.convert("RGB")
    except Image.DecompressionBombError as exc:  # Pillow's own header check, before ours could run
        raise bomb_refusal(str(exc), limits.max_pixels) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise FrameDecodeError(f"could not decode the body as {fmt}: {exc}") from None
    return np.array(rgb, dtype=np.uint8)  # a writable copy: torch refuses read-only arrays


def decode_raw_rgb(data: bytes, width: int | None, height: int | None, limits: ImageLimits) -> ImageArray:
    """Packed row-major RGB bytes → H×W×3 uint8."""
    if width is None or height is None:
        raise InvalidParameter("raw RGB needs the query parameters width and height")
    _check_size(width, height, limits)
    expected = width * height * 3
    if len(data) != expected:
        raise FrameDecodeError(
            f"raw RGB of {width}×{height} needs {expected} bytes (width·height·3), got {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3).copy()  # writable, own memory


def _check_size(width: int, height: int, limits: ImageLimits) -> None:
    check_image_size(width, height, max_side=limits.max_side, max_pixels=limits.max_pixels)


def parse_outputs(raw: str | Iterable[str] | None) -> tuple[OutputName, ...]:
    """`"mask,entropy"` or a list → validated output names in canonical order; None → all."""
    if raw is None:
        return OUTPUT_NAMES
    names = [n.strip() for n in (raw.split(",") if isinstance(raw, str) else raw)]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in OUTPUT_NAMES]
    if unknown or not names:
        raise InvalidParameter(f"unknown outputs {unknown or names}; choose from {list(OUTPUT_NAMES)}")
    return tuple(n for n in OUTPUT_NAMES if n in names)


def map_scale(name: OutputName, num_classes: int) -> tuple[float, float] | None:
    """The fixed (min, max) a map is quantised on; None for the mask (exact class ids)."""
    if name == "mask":
        return None
    if name == "confidence":
        return (0.0, 1.0)
    return (0.0, math.log(num_classes))


def quantize(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """H×W float → H×W uint8 on [low, high], rounded to the nearest step."""
    scaled = (values.astype(np.float32) - low) * (255.0 / (high - low)) + 0.5
    gray: np.ndarray = np.clip(scaled, 0, 255).astype(np.uint8)
    return gray


def png_bytes(gray: np.ndarray) -> bytes:
    """H×W uint8 → a lossless 8-bit grayscale PNG.

    Written directly rather than through Pillow: every row uses the PNG "Sub" filter
    (difference to the left neighbour, which smooth maps make mostly zeros) and zlib
    level 1. About twice as fast as Pillow's encoder and smaller, on uncertainty maps.
    """
    height, width = gray.shape
    rows = np.empty((height, width + 1), dtype=np.uint8)
    rows[:, 0] = 1  # filter type Sub
    rows[:, 1] = gray[:, 0]
    np.subtract(gray[:, 1:], gray[:, :-1], out=rows[:, 2:])  # wraps modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit, grayscale, no interlace
    return b"".join(
        (
            _PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.data, 1)),
            _chunk(b"IEND", b""),
        )
    )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_maps_png(
    maps: UncertaintyMaps, outputs: Iterable[OutputName], num_classes: int
) -> dict[str, dict[str, Any]]:
    """The chosen maps as `{name: {format, dtype, scale, data: base64 PNG}}`."""
    encoded: dict[str, dict[str, Any]] = {}
    for name in outputs:
        scale = map_scale(name, num_classes)
        values = maps.get(name)
        gray = values.astype(np.uint8) if scale is None else quantize(values, *scale)
        encoded[name] = {
            "format": "png",
            "dtype": "uint8",
            "scale": None if scale is None else {"min": scale[0], "max": scale[1]},
            "data": base64.b64encode(png_bytes(gray)).decode("ascii"),
        }
    return encoded


def encode_npz(maps: UncertaintyMaps, outputs: Iterable[OutputName], meta: Mapping[str, Any]) -> bytes:
    """uint8 mask and float16 maps in one uncompressed npz, `meta` as a JSON string entry."""
    arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(meta))}
    for name in outputs:
        values = maps.get(name)
        arrays[name] = values.astype(np.uint8 if name == "mask" else np.float16)
    out = io.BytesIO()
    np.savez(out, **arrays)  # type: ignore[arg-type]
    return out.getvalue()


def summarize(maps: UncertaintyMaps, classes: tuple[str, ...]) -> dict[str, Any]:
    """Frame-level numbers: mean entropy and epistemic (nats), uncertain and per-class fractions."""
    pixels = maps.mask.size
    counts = np.bincount(maps.mask.ravel(), minlength=len(classes))[: len(classes)]
    threshold = UNCERTAIN_ENTROPY_FRACTION * math.log(len(classes))
    return {
        "mean_entropy": float(maps.entropy.mean()),
        "mean_epistemic": float(maps.epistemic.mean()),
        "uncertain_fraction": float(np.count_nonzero(maps.entropy > threshold)) / pixels,
        "class_fractions": {name: float(c) / pixels for name, c in zip(classes, counts, strict=True)},
    }


def sniff_type(data: bytes) -> str | None:
    """The media type of an image by its magic bytes (WebSocket frames carry no Content-Type)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None
