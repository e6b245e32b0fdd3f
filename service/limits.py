"""Limits on what a client may send, checked before the work the input would cost.

Image sizes are checked from the header (Pillow's `Image.open` reads only the
header), so a small file that would inflate to gigabytes of pixels is refused
before it is decoded. Compressed bodies are inflated in bounded steps, never past
the body limit. Every refusal names the bad value, the limit and the setting that
raises it.
"""

from __future__ import annotations

import zlib

from service.errors import ImageTooLarge, InvalidParameter, InvalidRequest, PayloadTooLarge

# Inflate in steps of this many bytes so a bomb is caught after one step past the limit, not at the end.
_INFLATE_STEP = 1 << 20


def check_image_size(width: int, height: int, *, max_side: int, max_pixels: int) -> None:
    """Refuse an image of `width`×`height` unless 1 ≤ each side ≤ `max_side` and w·h ≤ `max_pixels`."""
    if width < 1 or height < 1:
        raise InvalidParameter(f"image size {_px(width)}×{_px(height)} must be at least 1×1")
    if max(width, height) > max_side or width * height > max_pixels:
        raise ImageTooLarge(
            f"image {_px(width)}×{_px(height)} is too large; at most {max_side} px a side and "
            f"{max_pixels} px in all (STREAMUQ_MAX_IMAGE_SIDE, STREAMUQ_MAX_IMAGE_PIXELS); "
            "downscale it before sending"
        )


def _px(size: int) -> str:
    """A pixel count for a message; a client's thousand-digit number is shortened."""
    text = str(size)
    return text if len(text) <= 12 else f"{text[:6]}…({len(text)} digits)"


def bomb_refusal(detail: str, max_pixels: int) -> ImageTooLarge:
    """The error for an image whose header Pillow itself refuses as a decompression bomb."""
    return ImageTooLarge(
        f"image refused before decoding: {detail}; this server decodes at most {max_pixels} px "
        "(STREAMUQ_MAX_IMAGE_PIXELS)"
    )


def inflate(body: bytes, encoding: str | None, max_bytes: int) -> bytes:
    """`body` decoded per `Content-Encoding` (gzip, deflate or none), refused past `max_bytes`."""
    kind = (encoding or "").strip().lower()
    if kind in ("", "identity"):
        return body
    if kind not in ("gzip", "deflate"):
        raise InvalidRequest(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")
    # wbits: 16 + MAX_WBITS reads a gzip member, MAX_WBITS a zlib stream (HTTP's "deflate").
    wbits = 16 + zlib.MAX_WBITS if kind == "gzip" else zlib.MAX_WBITS
    out = bytearray()
    rest = body
    try:
        while rest:  # gzip allows several members one after another
            inflater = zlib.decompressobj(wbits)
            chunk = rest
            while True:
                piece = inflater.decompress(chunk, _INFLATE_STEP)
                out += piece
                _check_inflated(len(out), len(body), max_bytes)
                chunk = inflater.unconsumed_tail
                # A full step with no input left may still hold buffered output: ask again.
                if inflater.eof or (not chunk and len(piece) < _INFLATE_STEP):
                    break
            if not inflater.eof:
                raise InvalidRequest(f"the {kind} body ends before its compressed stream does")
            rest = inflater.unused_data if kind == "gzip" else b""
            if inflater.unused_data and kind == "deflate":
                raise InvalidRequest(f"{len(inflater.unused_data)} bytes follow the deflate stream")
    except zlib.error as exc:
        raise InvalidRequest(f"could not {kind}-decompress the body: {exc}") from None
    return bytes(out)


def _check_inflated(size: int, compressed: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise PayloadTooLarge(
            f"the {compressed}-byte compressed body inflates past the limit of {max_bytes} bytes "
            "(STREAMUQ_MAX_BODY_BYTES); send smaller frames"
        )
