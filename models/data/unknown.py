"""The out-of-distribution object: a kind of thing never seen in training.

A bright, striped, lumpy blob (think an inflatable animal or an odd traffic obstacle) that drifts
across the road. Its pixels are labelled `IGNORE_INDEX` and flagged in the stream's OOD mask, so
accuracy ignores it while epistemic-uncertainty tests can ask whether the model is unsure there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.data.actors import Sprite
from models.data.world import Geometry

IGNORE_INDEX = 255


@dataclass(frozen=True)
class UnknownObject:
    """Fixed shape, colours and path of one unknown object (drawn once per stream)."""

    colours: np.ndarray  # 2×3 float32, alternating stripe colours
    size: float  # metres across
    aspect: float  # height / width
    stripes: float  # stripes across the body
    lobes: np.ndarray  # 3 × (frequency, amplitude, phase) of the outline's wobble
    depth_frac: float  # foot depth as a fraction of the canvas rows below the horizon
    lateral: float  # starting x slope, in road half-widths
    speed: float  # change of `lateral` per frame


def make_unknown(rng: np.random.Generator) -> UnknownObject:
    """Draw an unknown object; saturated colours no class of the street has."""
    palette = np.array(
        [[1.0, 0.1, 0.85], [0.1, 1.0, 0.3], [1.0, 0.9, 0.0], [0.0, 0.95, 1.0], [1.0, 0.45, 0.0]],
        dtype=np.float32,
    )
    pick = rng.choice(len(palette), size=2, replace=False)
    lobes = np.stack(
        [rng.integers(2, 6, size=3), rng.uniform(0.05, 0.18, size=3), rng.uniform(0, 2 * math.pi, size=3)],
        axis=1,
    ).astype(np.float32)
    return UnknownObject(
        colours=palette[pick],
        size=float(rng.uniform(1.0, 1.8)),
        aspect=float(rng.uniform(0.7, 1.2)),
        stripes=float(rng.uniform(3.0, 7.0)),
        lobes=lobes,
        depth_frac=float(rng.uniform(0.35, 0.75)),
        lateral=float(rng.uniform(-0.6, 0.6)),
        speed=float(rng.uniform(0.004, 0.012)) * float(rng.choice([-1, 1])),
    )


def unknown_sprite(obj: UnknownObject, geo: Geometry, metres: float, t: float) -> Sprite:
    """The object at world time `t` as a sprite labelled IGNORE_INDEX."""
    e = obj.depth_frac * (geo.height - geo.horizon)
    # Bounce between the kerbs: a triangle wave over [-0.7, 0.7] road half-widths.
    s = (obj.lateral + 0.7 + obj.speed * t) % 2.8
    lateral = (s if s < 1.4 else 2.8 - s) - 0.7
    scale = metres * e
    width = obj.size * scale
    height = width * obj.aspect
    foot_x = geo.vanish_x + lateral * geo.road_slope * e
    foot_y = geo.horizon + e
    w = max(math.ceil(width * 1.4) + 2, 3)
    h = max(math.ceil(height * 1.3) + 2, 3)
    left = math.floor(foot_x - w / 2)
    top = math.floor(foot_y) - h + 1
    xs = (np.arange(w, dtype=np.float32) + left + 0.5 - foot_x) / max(width / 2, 1e-3)
    ys = (np.arange(h, dtype=np.float32) + top + 0.5 - (foot_y - height / 2)) / max(height / 2, 1e-3)
    u, v = xs[None, :], ys[:, None]
    angle = np.arctan2(v, u)
    radius = np.ones_like(angle)
    for freq, amp, phase in obj.lobes:
        radius = radius + amp * np.sin(freq * angle + phase + 0.15 * t)
    mask = (u * u + v * v) < radius * radius
    stripe = (np.floor((u + 0.6 * v) * obj.stripes) % 2).astype(np.intp)
    rgb = obj.colours[stripe].astype(np.float32)
    label = np.full(mask.shape, IGNORE_INDEX, dtype=np.uint8)
    return Sprite(top, left, mask, rgb, label, e)
