"""Procedural noise for the synthetic world: smooth value noise, vectorised, no per-pixel loops."""

from __future__ import annotations

import numpy as np


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Bilinear value noise: H×W float32 in [-1, 1] whose features are about `cell` pixels wide."""
    cell = max(float(cell), 1.0)
    gh = int(np.ceil(height / cell)) + 2
    gw = int(np.ceil(width / cell)) + 2
    grid = rng.uniform(-1.0, 1.0, size=(gh, gw)).astype(np.float32)
    ys = np.arange(height, dtype=np.float32) / cell
    xs = np.arange(width, dtype=np.float32) / cell
    y0 = ys.astype(np.int64)
    x0 = xs.astype(np.int64)
    # Smoothstep weights hide the grid's straight seams.
    fy = ys - y0
    fx = xs - x0
    fy = (fy * fy * (3.0 - 2.0 * fy))[:, None]
    fx = (fx * fx * (3.0 - 2.0 * fx))[None, :]
    a = grid[y0][:, x0]
    b = grid[y0][:, x0 + 1]
    c = grid[y0 + 1][:, x0]
    d = grid[y0 + 1][:, x0 + 1]
    top = a + (b - a) * fx
    bottom = c + (d - c) * fx
    out: np.ndarray = top + (bottom - top) * fy
    return out.astype(np.float32, copy=False)


def fractal_noise(
    rng: np.random.Generator, height: int, width: int, cell: float, octaves: int = 3
) -> np.ndarray:
    """Sum of `octaves` smooth noises, each half the size and weight of the last: H×W float32 ~[-1, 1]."""
    total = np.zeros((height, width), dtype=np.float32)
    weight = 1.0
    norm = 0.0
    for _ in range(octaves):
        total += weight * smooth_noise(rng, height, width, cell)
        norm += weight
        cell /= 2.0
        weight /= 2.0
    out: np.ndarray = total / norm
    return out


def tint(noise: np.ndarray, base: np.ndarray, amount: float) -> np.ndarray:
    """Colour an H×W noise field around an RGB `base` (values in [0, 1]): H×W×3 float32."""
    rgb: np.ndarray = base[None, None, :] * (1.0 + amount * noise[..., None])
    return rgb.astype(np.float32, copy=False)
