"""Image corruptions at five severities (after ImageNet-C) for robustness and uncertainty tests.

Severity picks fixed parameters, so a stream corrupted with one (name, severity) is corrupted the
same way in every frame; only the random noise fields differ from frame to frame.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

from models.data.textures import fractal_noise

CORRUPTIONS = ("gaussian_noise", "blur", "fog", "brightness", "contrast", "jpeg")

_NOISE_STD = (6.0, 11.0, 17.0, 25.0, 36.0)  # grey levels
_BLUR_RADIUS = (0.8, 1.4, 2.2, 3.2, 4.5)  # pixels, Gaussian sigma
_FOG_ALPHA = (0.25, 0.38, 0.5, 0.62, 0.74)  # mean opacity of the fog layer
_BRIGHTNESS = (25.0, 45.0, 65.0, 90.0, 120.0)  # added grey levels
_CONTRAST = (0.7, 0.55, 0.42, 0.3, 0.2)  # factor around the mean
_JPEG_QUALITY = (30, 18, 12, 8, 5)


def corrupt(frame: np.ndarray, name: str, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Corrupt an H×W×3 uint8 frame with `name` at `severity` 1..5; returns H×W×3 uint8."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose one of {CORRUPTIONS}")
    if not 1 <= severity <= 5:
        raise ValueError(f"severity must be 1..5, got {severity}")
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be H×W×3 uint8, got {frame.shape} {frame.dtype}")
    i = severity - 1
    x = frame.astype(np.float32)
    if name == "gaussian_noise":
        x = x + rng.normal(0.0, _NOISE_STD[i], size=x.shape).astype(np.float32)
    elif name == "blur":
        img = Image.fromarray(frame).filter(ImageFilter.GaussianBlur(_BLUR_RADIUS[i]))
        return np.asarray(img, dtype=np.uint8).copy()
    elif name == "fog":
        h, w = frame.shape[:2]
        field = fractal_noise(rng, h, w, max(h, w) / 3, 3)
        alpha = np.clip(_FOG_ALPHA[i] * (1.0 + 0.35 * field), 0.0, 1.0)[..., None]
        x = (x * (1.0 - alpha) + 215.0 * alpha).astype(np.float32)
    elif name == "brightness":
        x = x + _BRIGHTNESS[i]
    elif name == "contrast":
        mean = x.mean(axis=(0, 1), keepdims=True)
        x = (x - mean) * _CONTRAST[i] + mean
    else:  # jpeg
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=_JPEG_QUALITY[i])
        return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), dtype=np.uint8).copy()
    out: np.ndarray = np.clip(x, 0.0, 255.0).astype(np.uint8)
    return out
