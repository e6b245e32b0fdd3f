"""The static street behind the actors: sky, building facades, road and sidewalks on a canvas.

The canvas is larger than a frame so the camera can pan, zoom and shake over it. Geometry is a
one-point perspective: everything converges to a vanishing point on the horizon, so sizes at a
canvas row grow with its distance `e` below the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.data.textures import fractal_noise, smooth_noise, tint

# Class ids, in the order of synthetic.CLASSES.
SKY, BUILDING, ROAD, SIDEWALK, VEGETATION, VEHICLE, PERSON, POLE = range(8)

# Facade colours: plaster, brick, concrete, sandstone, dark glass, olive paint; some close to the
# sidewalk greys or to vegetation in shade, so the model has real confusions to make.
_FACADES = np.array(
    [
        [0.78, 0.72, 0.62],
        [0.62, 0.36, 0.28],
        [0.55, 0.55, 0.55],
        [0.72, 0.62, 0.45],
        [0.35, 0.40, 0.42],
        [0.66, 0.64, 0.60],
        [0.48, 0.44, 0.36],
        [0.34, 0.40, 0.30],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class Geometry:
    """Where the street lies on the canvas: horizon row, vanishing column, half-width slopes."""

    height: int
    width: int
    horizon: float
    vanish_x: float
    road_slope: float  # road half-width per pixel below the horizon
    walk_slope: float  # outer sidewalk edge per pixel below the horizon
    shade_side: int  # -1 left, +1 right: the side of the street in shadow


def make_geometry(rng: np.random.Generator, height: int, width: int) -> Geometry:
    """Draw a street layout for an H×W canvas."""
    road = float(rng.uniform(0.9, 1.5))
    return Geometry(
        height=height,
        width=width,
        horizon=float(height * rng.uniform(0.36, 0.46)),
        vanish_x=float(width * rng.uniform(0.42, 0.58)),
        road_slope=road,
        walk_slope=road * float(rng.uniform(1.35, 1.75)),
        shade_side=int(rng.choice([-1, 1])),
    )


def render_background(rng: np.random.Generator, geo: Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Paint the static street: (image H×W×3 float32 in [0, 1], labels H×W uint8)."""
    h, w = geo.height, geo.width
    yy = np.arange(h, dtype=np.float32)[:, None] * np.ones((1, w), dtype=np.float32)
    xx = np.ones((h, 1), dtype=np.float32) * np.arange(w, dtype=np.float32)[None, :]
    e = yy - geo.horizon  # rows below the horizon (negative above)
    dx = xx - geo.vanish_x
    d = np.abs(dx)
    side = np.where(dx < 0, -1, 1)
    labels = np.full((h, w), SKY, dtype=np.uint8)
    image = np.zeros((h, w, 3), dtype=np.float32)

    # Sky: a vertical gradient with clouds; overcast streams are grey, close to concrete.
    overcast = rng.uniform() < 0.35
    top = np.array([0.62, 0.64, 0.66] if overcast else [0.30, 0.50, 0.85], dtype=np.float32)
    low = np.array([0.80, 0.80, 0.80] if overcast else [0.70, 0.80, 0.92], dtype=np.float32)
    ramp = np.clip(yy / max(geo.horizon, 1.0), 0.0, 1.0)[..., None]
    clouds = np.clip(fractal_noise(rng, h, w, w / 4, 3) * 1.5 - 0.1, 0.0, 1.0)[..., None]
    image[:] = (top * (1 - ramp) + low * ramp) * (1 - 0.6 * clouds) + 0.9 * 0.6 * clouds

    ground = e > 0
    road = ground & (d < geo.road_slope * e)
    walk = ground & ~road & (d < geo.walk_slope * e)

    # Facades: blocks along the street on a log-depth axis, so far blocks are narrow.
    u = np.log1p(d)
    v = -e / np.maximum(d, 1.0)  # height above the ground line, as a fraction of distance
    density = float(rng.uniform(2.2, 3.2))
    phase = rng.uniform(0, 1, size=2)
    block = np.floor(u * density + np.where(side < 0, phase[0], phase[1])).astype(np.int64)
    block_key = block * 2 + (side > 0)
    n_keys = int(block_key.max()) + 1
    roof = rng.uniform(0.25, 1.3, size=n_keys).astype(np.float32)
    gap = rng.uniform(size=n_keys) < 0.12
    colour_id = rng.integers(0, len(_FACADES), size=n_keys)
    facade_zone = (d >= geo.walk_slope * e) | ~ground
    facade = facade_zone & (v < roof[block_key]) & ~gap[block_key] & (d > 2.0)
    fac_rgb = _FACADES[colour_id[block_key]] * (
        1.0 + rng.uniform(-0.12, 0.12, size=(n_keys, 1)).astype(np.float32)[block_key]
    )
    grain = fractal_noise(rng, h, w, 6.0, 2)[..., None]
    fac_rgb = fac_rgb * (1.0 + 0.10 * grain)
    # Windows on a perspective grid: columns in log depth, floors in height ratio.
    nu = density * float(rng.uniform(3.0, 5.0))
    nv = float(rng.uniform(5.0, 9.0))
    wu = np.modf(u * nu)[0]
    wv = np.modf(np.maximum(v, 0.0) * nv)[0]
    window = (wu > 0.25) & (wu < 0.75) & (wv > 0.35) & (wv < 0.8) & (v > 0.12)
    glass = np.array([0.20, 0.24, 0.28], dtype=np.float32) * (1.0 + 0.3 * grain)
    fac_rgb = np.where(window[..., None], glass, fac_rgb)
    # Hedges and shop awnings at street level: vegetation strips in front of some facades.
    hedge_key = rng.uniform(size=n_keys) < 0.3
    hedge = facade & (v < 0.10) & hedge_key[block_key]
    labels[facade] = BUILDING
    image[facade] = fac_rgb[facade]

    # Distant ground beyond the facades where a gap shows it.
    far_ground = facade_zone & ground & ~facade
    labels[far_ground] = SIDEWALK

    # Road: fine-grained asphalt with perspective lane dashes.
    asphalt = np.array([0.36, 0.36, 0.37], dtype=np.float32) * float(rng.uniform(0.85, 1.15))
    road_rgb = tint(fractal_noise(rng, h, w, 3.0, 2), asphalt, 0.12)
    depth = 1.0 / np.maximum(e, 1.0)
    dash = (np.modf(depth * 60.0 + rng.uniform())[0] < 0.45) & (d < 0.025 * e + 0.5)
    road_rgb = np.where(dash[..., None], np.float32(0.85), road_rgb)
    labels[road] = ROAD
    image[road] = road_rgb[road]

    # Sidewalk: paving slabs a shade lighter (or browner) than the road.
    paving = np.array([0.50, 0.48, 0.46], dtype=np.float32) * float(rng.uniform(0.8, 1.15))
    walk_rgb = tint(fractal_noise(rng, h, w, 4.0, 2), paving, 0.10)
    slab_u = np.modf(depth * 25.0)[0]
    joints = slab_u < 0.08
    walk_rgb = np.where(joints[..., None], walk_rgb * 0.8, walk_rgb)
    curb = ground & (d >= geo.road_slope * e) & (d < geo.road_slope * e * 1.04 + 0.5)
    walk_rgb = np.where(curb[..., None], np.float32(0.68), walk_rgb)
    sel = walk | far_ground
    labels[sel] = SIDEWALK
    image[sel] = walk_rgb[sel]

    # Hedges last: they sit in front of facades.
    green = np.array([0.22, 0.36, 0.16], dtype=np.float32) * float(rng.uniform(0.8, 1.2))
    leaf = fractal_noise(rng, h, w, 3.0, 2) + 0.5 * smooth_noise(rng, h, w, 12.0)
    hedge_rgb = tint(leaf, green, 0.35)
    labels[hedge] = VEGETATION
    image[hedge] = hedge_rgb[hedge]
    return np.clip(image, 0.0, 1.0), labels


def shadow_map(rng: np.random.Generator, geo: Geometry) -> np.ndarray:
    """Brightness factor H×W float32: one side of the street lies in a building's shadow."""
    h, w = geo.height, geo.width
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    e = yy - geo.horizon
    reach = float(rng.uniform(-0.3, 0.9)) * geo.road_slope
    inside = geo.shade_side * (xx - geo.vanish_x) > reach * np.maximum(e, 0.0) - 2.0
    strength = float(rng.uniform(0.45, 0.7))
    out: np.ndarray = np.where(inside, np.float32(strength), np.float32(1.0)).astype(np.float32)
    return out
