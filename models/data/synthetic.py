"""Labelled synthetic street video: the training and test data of the shipped models.

No real multi-class labelled video can be downloaded here, so streams are rendered: a street in
one-point perspective (sky, facades, road, sidewalks, hedges), trees and poles, vehicles and
pedestrians moving independently and occluding each other, seen by a camera that pans, zooms and
shakes, under changing light, with motion blur and sensor noise. Labels are rendered from the same
geometry, so they line up with the frames pixel for pixel. Everything is deterministic given the
`StreamSpec`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.data import actors
from models.data.corruptions import CORRUPTIONS, corrupt
from models.data.unknown import IGNORE_INDEX, make_unknown, unknown_sprite
from models.data.world import SKY, make_geometry, render_background, shadow_map

__all__ = [
    "CLASSES",
    "IGNORE_INDEX",
    "PALETTE",
    "SPLITS",
    "StreamSpec",
    "VideoStream",
    "generate_stream",
    "split_seeds",
]

CLASSES: tuple[str, ...] = ("sky", "building", "road", "sidewalk", "vegetation", "vehicle", "person", "pole")
# CamVid-like colours (label_colors.txt: Sky, Building, Road, Sidewalk, Tree, Car, Pedestrian, Column_Pole).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128),
    (128, 0, 0),
    (128, 64, 128),
    (0, 0, 192),
    (128, 128, 0),
    (64, 0, 128),
    (64, 64, 0),
    (192, 192, 128),
)
SPLITS = ("train", "val", "test")
_SPLIT_BASE = {"train": 0, "val": 1_000_000, "test": 2_000_000}
_SPLIT_SIZE = 1_000_000

# Independent random streams per purpose, so options never change the default rendering.
_RNG_WORLD, _RNG_UNKNOWN, _RNG_CORRUPT = 0, 1, 2


@dataclass(frozen=True)
class StreamSpec:
    """Everything that determines a stream; `generate_stream(spec)` is a pure function of it."""

    seed: int
    num_frames: int = 60
    height: int = 192
    width: int = 256
    unknown_object: bool = False  # add an object of a kind never seen in training
    corruption: str | None = None  # one of CORRUPTIONS, consistent across the stream
    severity: int = 0  # 1..5 when corruption is set
    # World time between frames. The default moves like ~10 fps street video (labels change on
    # 6–17 % of pixels a frame); 1/3 renders the same world at ~30 fps, like the CamVid
    # sequences the VQ-BNN paper's τ = 1.25 frames was chosen for.
    frame_time: float = 1.0

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.height < 16 or self.width < 16:
            raise ValueError(f"need num_frames >= 1 and height, width >= 16, got {self}")
        if not 0.0 < self.frame_time <= 10.0:
            raise ValueError(f"frame_time must be in (0, 10] world-time units a frame, got {self.frame_time}")
        if self.corruption is None:
            if self.severity != 0:
                raise ValueError(f"severity {self.severity} given without a corruption; set corruption too")
        else:
            if self.corruption not in CORRUPTIONS:
                raise ValueError(f"unknown corruption {self.corruption!r}; choose one of {CORRUPTIONS}")
            if not 1 <= self.severity <= 5:
                raise ValueError(f"severity must be 1..5 with a corruption, got {self.severity}")


@dataclass(frozen=True)
class VideoStream:
    """A rendered stream: frames T×H×W×3 uint8, labels T×H×W uint8, ood T×H×W bool."""

    spec: StreamSpec
    frames: np.ndarray
    labels: np.ndarray  # class ids; IGNORE_INDEX on the unknown object
    ood: np.ndarray  # True on the unknown object


def split_seeds(split: str, count: int) -> list[int]:
    """`count` seeds of `split`; the ranges of train, val and test never overlap."""
    if split not in _SPLIT_BASE:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    if not 0 <= count <= _SPLIT_SIZE:
        raise ValueError(f"count must be in 0..{_SPLIT_SIZE}, got {count}")
    base = _SPLIT_BASE[split]
    return list(range(base, base + count))


@dataclass(frozen=True)
class _Walker:
    """A moving actor: lateral slope `lateral` (x = vanish_x + lateral·e) and depth e on a log scale."""

    lateral: float
    lateral_speed: float  # change of `lateral` per frame (people crossing the road)
    log_e: float
    log_speed: float  # change of log e per frame (approaching > 0)
    look: actors.VehicleLook | actors.PersonLook
    size: float  # metres: vehicle width or person height
    phase: float


def _walkers(rng: np.random.Generator, road: float, walk: float) -> list[_Walker]:
    out: list[_Walker] = []
    for _ in range(int(rng.integers(2, 6))):
        out.append(
            _Walker(
                road * float(rng.uniform(-0.72, 0.72)),
                0.0,
                float(rng.uniform(1.5, 5.0)),
                float(rng.uniform(0.01, 0.05)) * float(rng.choice([-1, 1])),
                actors.vehicle_look(rng),
                float(rng.uniform(1.7, 2.3)),
                0.0,
            )
        )
    for _ in range(int(rng.integers(3, 10))):
        crossing = rng.uniform() < 0.25
        side = float(rng.choice([-1, 1]))
        lateral = side * float(rng.uniform(road * 1.05, walk * 0.95))
        out.append(
            _Walker(
                float(rng.uniform(-walk, walk)) if crossing else lateral,
                float(rng.uniform(0.01, 0.03)) * side * road if crossing else 0.0,
                float(rng.uniform(1.8, 5.0)),
                0.0 if crossing else float(rng.uniform(0.003, 0.015)) * float(rng.choice([-1, 1])),
                actors.person_look(rng),
                float(rng.uniform(1.55, 1.9)),
                float(rng.uniform(0, 2 * math.pi)),
            )
        )
    return out


def _wrap(value: float, lo: float, hi: float) -> float:
    return lo + (value - lo) % (hi - lo)


def generate_stream(spec: StreamSpec) -> VideoStream:
    """Render the stream described by `spec` (deterministic): see `VideoStream` for the shapes."""
    rng = np.random.default_rng([spec.seed, _RNG_WORLD])
    t_count, h, w = spec.num_frames, spec.height, spec.width
    ch, cw = round(h * 1.3), round(w * 1.6)
    geo = make_geometry(rng, ch, cw)
    background, bg_labels = render_background(rng, geo)
    shade = shadow_map(rng, geo)
    shade = np.where(bg_labels == SKY, np.float32(1.0), shade)
    metres = geo.road_slope / 3.3  # pixels per metre per row below the horizon: road is 6.6 m wide
    e_max = ch - geo.horizon

    # Static street furniture, rendered once.
    statics: list[actors.Sprite] = []
    for _ in range(int(rng.integers(3, 10))):
        e = float(np.exp(rng.uniform(np.log(6.0), np.log(e_max * 1.1))))
        lat = float(rng.choice([-1, 1])) * geo.walk_slope * float(rng.uniform(0.75, 0.95))
        statics.append(actors.tree(rng, geo.vanish_x + lat * e, geo.horizon + e, metres * e, e))
    for _ in range(int(rng.integers(2, 7))):
        e = float(np.exp(rng.uniform(np.log(6.0), np.log(e_max * 1.1))))
        side = int(rng.choice([-1, 1]))
        lat = side * geo.road_slope * float(rng.uniform(1.04, 1.15))
        statics.append(actors.pole(rng, geo.vanish_x + lat * e, geo.horizon + e, metres * e, e, -side))
    walkers = _walkers(rng, geo.road_slope, geo.walk_slope)
    log_lo, log_hi = math.log(3.0), math.log(e_max * 1.25)

    # Camera path: smooth pan and zoom toward the vanishing point, plus per-frame shake.
    zoom_amp = float(rng.uniform(0.0, 0.35))
    zoom_period = float(rng.uniform(40, 120))
    zoom_phase = float(rng.uniform(0, 2 * math.pi))
    pan_amp = float(rng.uniform(0.2, 1.0)) * max((cw - w) / 2 - 4, 0.0)
    pan_period = float(rng.uniform(50, 160))
    pan_phase = float(rng.uniform(0, 2 * math.pi))
    # Tiny frames leave no room to tilt; the draw is still made so other draws stay put.
    cy0 = float(rng.uniform(h / 2 + 3, max(ch - h / 2 - 3, h / 2 + 3)))
    shake_std = float(rng.uniform(0.2, 2.0))
    gain0 = float(rng.uniform(0.6, 1.2))
    gain_amp = float(rng.uniform(0.0, 0.25))
    gain_period = float(rng.uniform(30, 90))
    gain_phase = float(rng.uniform(0, 2 * math.pi))
    tint = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    noise_std = float(rng.uniform(3.0, 9.0))
    unknown = make_unknown(np.random.default_rng([spec.seed, _RNG_UNKNOWN])) if spec.unknown_object else None
    corrupt_rng = np.random.default_rng([spec.seed, _RNG_CORRUPT]) if spec.corruption else None

    def pose(t: float, shake: np.ndarray) -> tuple[float, float, float]:
        z = 1.0 + zoom_amp * (0.5 - 0.5 * math.cos(2 * math.pi * t / zoom_period + zoom_phase))
        cx = cw / 2 + pan_amp * math.sin(2 * math.pi * t / pan_period + pan_phase) + float(shake[0])
        cy = cy0 + float(shake[1])
        return cx, cy, z

    frames = np.empty((t_count, h, w, 3), dtype=np.uint8)
    labels = np.empty((t_count, h, w), dtype=np.uint8)
    rows0 = np.arange(h, dtype=np.float32) + 0.5 - h / 2
    cols0 = np.arange(w, dtype=np.float32) + 0.5 - w / 2
    dt = spec.frame_time
    # The shake is an AR(1) process in world time: over dt its memory is 0.6^dt, and the
    # innovation keeps its stationary spread. dt = 1 takes the literal constants (bit-identical).
    shake_memory = 0.6 if dt == 1.0 else 0.6**dt
    shake_innovation = shake_std if dt == 1.0 else shake_std * math.sqrt((1 - 0.36**dt) / (1 - 0.36))
    prev = pose(-dt, np.zeros(2))
    shake_prev = np.zeros(2)
    for frame_index in range(t_count):
        t = frame_index * dt if dt != 1.0 else frame_index
        shake = shake_memory * shake_prev + rng.normal(0.0, shake_innovation, size=2)
        shake_prev = shake
        canvas = background.copy()
        canvas_labels = bg_labels.copy()
        sprites = list(statics)
        for wk in walkers:
            log_e = _wrap(wk.log_e + wk.log_speed * t, log_lo, log_hi)
            e = math.exp(log_e)
            lateral = _wrap(wk.lateral + wk.lateral_speed * t, -geo.walk_slope, geo.walk_slope)
            fx, fy = geo.vanish_x + lateral * e, geo.horizon + e
            if isinstance(wk.look, actors.VehicleLook):
                sprites.append(actors.vehicle(wk.look, fx, fy, wk.size * metres * e, e))
            else:
                stride = math.sin(wk.phase + 0.5 * t)
                sprites.append(actors.person(wk.look, fx, fy, wk.size * metres * e, stride, e))
        if unknown is not None:
            sprites.append(unknown_sprite(unknown, geo, metres, t))
        for sprite in sorted(sprites, key=lambda s: s.depth):
            actors.paste(canvas, canvas_labels, sprite)
        canvas *= shade[..., None]

        cx, cy, z = pose(float(t), shake)
        # Motion blur: average a few views along the camera's motion during the exposure.
        vx, vy = cx - prev[0], cy - prev[1]
        blur = 0.5 * math.hypot(vx, vy) * z
        n = min(int(blur) + 1, 5)
        acc = np.zeros((h, w, 3), dtype=np.float32)
        for k in range(n):
            f = 0.5 * (k / (n - 1) - 0.5) if n > 1 else 0.0
            ri = np.clip(np.floor(cy + f * vy + rows0 / z), 0, ch - 1).astype(np.intp)
            ci = np.clip(np.floor(cx + f * vx + cols0 / z), 0, cw - 1).astype(np.intp)
            acc += canvas[ri[:, None], ci[None, :]]
        # Labels at the mid-exposure pose, which the blurred views straddle.
        ri = np.clip(np.floor(cy + rows0 / z), 0, ch - 1).astype(np.intp)
        ci = np.clip(np.floor(cx + cols0 / z), 0, cw - 1).astype(np.intp)
        labels[frame_index] = canvas_labels[ri[:, None], ci[None, :]]
        prev = (cx, cy, z)

        gain = gain0 * (1.0 + gain_amp * math.sin(2 * math.pi * t / gain_period + gain_phase))
        img = acc * (255.0 * gain / n) * tint
        img += rng.normal(0.0, noise_std, size=img.shape).astype(np.float32)
        frame = np.clip(img, 0.0, 255.0).astype(np.uint8)
        if corrupt_rng is not None and spec.corruption is not None:
            frame = corrupt(frame, spec.corruption, spec.severity, corrupt_rng)
        frames[frame_index] = frame
    ood = labels == IGNORE_INDEX
    return VideoStream(spec=spec, frames=frames, labels=labels, ood=ood)
