"""Things standing in the street, drawn as small sprites: trees, poles, vehicles, people.

Each sprite is rendered in its own bounding box (vectorised over that box only) and pasted onto
the canvas far-to-near, so nearer things occlude farther ones. A sprite's size is proportional to
`e`, the distance of its foot below the horizon, which is what one-point perspective gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.data.textures import smooth_noise
from models.data.world import PERSON, POLE, VEGETATION, VEHICLE


@dataclass(frozen=True)
class Sprite:
    """A rectangle of pixels at (top, left): `mask` h×w bool, `rgb` h×w×3 float32, `label` h×w uint8."""

    top: int
    left: int
    mask: np.ndarray
    rgb: np.ndarray
    label: np.ndarray
    depth: float  # foot row below the horizon; larger is nearer


def _box(
    foot_x: float, foot_y: float, width: float, height: float
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Pixel grid of a box standing on (foot_x, foot_y): top, left, u in [-0.5, 0.5], v in [0, 1] up."""
    w = max(int(np.ceil(width)) + 2, 2)
    h = max(int(np.ceil(height)) + 1, 2)
    left = int(np.floor(foot_x - w / 2))
    top = int(np.floor(foot_y)) - h + 1
    xs = (np.arange(w, dtype=np.float32) + left + 0.5 - foot_x) / max(width, 1e-3)
    ys = (foot_y - (np.arange(h, dtype=np.float32) + top + 0.5)) / max(height, 1e-3)
    return top, left, xs[None, :], ys[:, None]


def _full(mask: np.ndarray, value: int) -> np.ndarray:
    return np.full(mask.shape, value, dtype=np.uint8)


def tree(rng: np.random.Generator, foot_x: float, foot_y: float, scale: float, e: float) -> Sprite:
    """A street tree, 5–8 m: trunk plus a ragged, leafy crown; `scale` is pixels per metre."""
    height = scale * float(rng.uniform(5.0, 8.0))
    crown_r = float(rng.uniform(0.28, 0.42))  # as a fraction of height
    width = height * crown_r * 2.2
    top, left, u, v = _box(foot_x, foot_y, width, height)
    shape = (v.shape[0], u.shape[1])
    trunk = (np.abs(u) < 0.035 + 0.01 * v) & (v < 0.7)
    cy = 1.0 - crown_r
    ru = u * width / height / crown_r
    rv = (v - cy) / crown_r
    ragged = smooth_noise(rng, shape[0], shape[1], max(shape[0] / 8, 1.0))
    crown = (ru**2 + rv**2) < (0.95 + 0.25 * ragged) ** 2
    mask = trunk | crown
    leaf = smooth_noise(rng, shape[0], shape[1], max(shape[0] / 30, 1.0))
    green = np.array(rng.uniform([0.15, 0.28, 0.08], [0.35, 0.48, 0.22]), dtype=np.float32)
    shade = (0.75 + 0.35 * np.clip(rv * -0.5 + 0.5, 0, 1))[..., None]
    rgb = green * shade * (1.0 + 0.45 * leaf[..., None])
    bark = np.array([0.30, 0.24, 0.18], dtype=np.float32)
    rgb = np.where((trunk & ~crown)[..., None], bark, rgb).astype(np.float32)
    return Sprite(top, left, mask, rgb, _full(mask, VEGETATION), e)


def pole(
    rng: np.random.Generator, foot_x: float, foot_y: float, scale: float, e: float, toward: int
) -> Sprite:
    """A 3–7 m lamp post or sign pole; the arm or sign reaches toward the road (`toward` = ±1)."""
    height = scale * float(rng.uniform(3.0, 7.0))
    thick = max(0.18 * scale, 0.9)
    arm = float(rng.uniform(0.15, 0.35)) * height
    width = 2 * arm + 2 * thick
    top, left, u, v = _box(foot_x, foot_y, width, height)
    px = u * width  # pixels from the axis
    shaft = np.abs(px) < thick / 2 + 0.35
    kind_sign = rng.uniform() < 0.4
    if kind_sign:
        extra = (np.abs(px - toward * thick * 2.5) < thick * 2.5) & (v > 0.78) & (v < 0.9)
        mask = (shaft & (v < 0.9)) | extra
    else:
        extra = (toward * px > 0) & (toward * px < arm) & (np.abs(v - 0.97) < 0.012 + thick / height)
        mask = shaft | extra
    metal = np.array(rng.uniform([0.25, 0.25, 0.25], [0.55, 0.55, 0.58]), dtype=np.float32)
    rgb = np.broadcast_to(metal, (*mask.shape, 3)).astype(np.float32)
    if kind_sign:
        plate = np.array(rng.choice([[0.8, 0.15, 0.1], [0.1, 0.3, 0.75], [0.9, 0.9, 0.9]]), dtype=np.float32)
        rgb = np.where(extra[..., None], plate, rgb).astype(np.float32)
    return Sprite(top, left, mask, rgb, _full(mask, POLE), e)


_CAR_COLOURS = np.array(
    [
        [0.75, 0.75, 0.77],
        [0.15, 0.15, 0.16],
        [0.40, 0.40, 0.42],
        [0.65, 0.10, 0.10],
        [0.12, 0.22, 0.50],
        [0.90, 0.90, 0.88],
        [0.30, 0.34, 0.30],
        [0.85, 0.70, 0.15],
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class VehicleLook:
    """Fixed appearance of one vehicle across frames."""

    colour: np.ndarray  # RGB float32
    aspect: float  # height / width
    cabin: bool  # car with a cabin (else van / truck box)


def vehicle_look(rng: np.random.Generator) -> VehicleLook:
    """Draw a vehicle's paint and body style."""
    colour = _CAR_COLOURS[rng.integers(0, len(_CAR_COLOURS))] * float(rng.uniform(0.85, 1.1))
    cabin = bool(rng.uniform() < 0.7)
    aspect = float(rng.uniform(0.75, 0.95)) if cabin else float(rng.uniform(1.0, 1.3))
    return VehicleLook(colour.astype(np.float32), aspect, cabin)


def vehicle(look: VehicleLook, foot_x: float, foot_y: float, width: float, e: float) -> Sprite:
    """A car, van or truck seen from behind or in front, standing on (foot_x, foot_y)."""
    height = width * look.aspect
    top, left, u, v = _box(foot_x, foot_y, width, height)
    au = np.abs(u)
    body_top = 0.55 if look.cabin else 0.97
    body = (au < 0.5) & (v > 0.06) & (v < body_top)
    wheels = (au > 0.28) & (au < 0.46) & (v <= 0.06)
    mask = body | wheels
    paint = look.colour * (0.85 + 0.3 * v)[..., None] * np.ones_like(u)[..., None]
    rgb = np.broadcast_to(paint, (*mask.shape, 3)).astype(np.float32).copy()
    if look.cabin:
        slope = 0.5 - 0.18 * (v - 0.55) / 0.4
        cabin = (au < slope) & (v >= 0.55) & (v < 0.95)
        glass = (au < slope - 0.06) & (v >= 0.6) & (v < 0.9)
        mask = mask | cabin
        rgb[glass] = (0.18, 0.22, 0.27)
    else:
        glass = (au < 0.42) & (v > 0.62) & (v < 0.88)
        rgb[glass] = (0.2, 0.23, 0.27)
    lights = (au > 0.36) & (au < 0.47) & (v > 0.33) & (v < 0.42)
    rgb[lights] = (0.85, 0.15, 0.1)
    # Dark flanks and sill give every body an outline, even a grey car on grey asphalt.
    rgb[body & ((au > 0.45) | (v < 0.1))] *= 0.55
    rgb[wheels] = (0.06, 0.06, 0.06)
    plate = (au < 0.1) & (v > 0.16) & (v < 0.24)
    rgb[plate] = (0.9, 0.9, 0.85)
    return Sprite(top, left, mask, rgb, _full(mask, VEHICLE), e)


@dataclass(frozen=True)
class PersonLook:
    """Fixed clothing of one pedestrian across frames."""

    shirt: np.ndarray
    trousers: np.ndarray
    skin: np.ndarray


def person_look(rng: np.random.Generator) -> PersonLook:
    """Draw a pedestrian's clothes and skin tone."""
    shirt = rng.uniform(0.05, 0.9, size=3).astype(np.float32)
    trousers = rng.uniform(0.05, 0.45, size=3).astype(np.float32)
    skin = np.array([0.85, 0.65, 0.5], dtype=np.float32) * float(rng.uniform(0.4, 1.05))
    return PersonLook(shirt, trousers, skin)


def person(look: PersonLook, foot_x: float, foot_y: float, height: float, stride: float, e: float) -> Sprite:
    """A walking pedestrian; `stride` in [-1, 1] swings the legs."""
    width = height * 0.42
    top, left, u, v = _box(foot_x, foot_y, width, height)
    swing = 0.10 * stride
    leg_l = np.abs(u + 0.1 - swing * (0.47 - v)) < 0.08
    leg_r = np.abs(u - 0.1 + swing * (0.47 - v)) < 0.08
    legs = (leg_l | leg_r) & (v < 0.47)
    torso = (np.abs(u) < 0.26 - 0.05 * (v - 0.45) / 0.35) & (v >= 0.45) & (v < 0.82)
    head = ((u * width / height) ** 2 + (v - 0.91) ** 2) < 0.075**2
    mask = legs | torso | head
    rgb = np.zeros((*mask.shape, 3), dtype=np.float32)
    rgb[legs] = look.trousers
    rgb[torso] = look.shirt
    rgb[head] = look.skin
    return Sprite(top, left, mask, rgb, _full(mask, PERSON), e)


def paste(image: np.ndarray, labels: np.ndarray, sprite: Sprite) -> None:
    """Draw `sprite` onto image (H×W×3 float32) and labels (H×W uint8) in place, clipped to the canvas."""
    h, w = labels.shape
    y0, x0 = max(sprite.top, 0), max(sprite.left, 0)
    y1 = min(sprite.top + sprite.mask.shape[0], h)
    x1 = min(sprite.left + sprite.mask.shape[1], w)
    if y1 <= y0 or x1 <= x0:
        return
    sy = slice(y0 - sprite.top, y1 - sprite.top)
    sx = slice(x0 - sprite.left, x1 - sprite.left)
    m = sprite.mask[sy, sx]
    image[y0:y1, x0:x1][m] = sprite.rgb[sy, sx][m]
    labels[y0:y1, x0:x1][m] = sprite.label[sy, sx][m]
