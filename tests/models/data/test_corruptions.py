"""Corruptions: strength grows with severity, seeded determinism, consistency across a stream."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from models.data.corruptions import CORRUPTIONS, corrupt
from models.data.synthetic import StreamSpec, generate_stream


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return generate_stream(StreamSpec(seed=2_000_003, num_frames=1)).frames[0]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(255.0**2 / max(mse, 1e-10))


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupt_psnr_falls_with_severity(clean: np.ndarray, name: str) -> None:
    psnr = [_psnr(clean, corrupt(clean, name, s, np.random.default_rng(0))) for s in range(1, 6)]
    assert all(a > b for a, b in itertools.pairwise(psnr)), psnr
    assert psnr[0] < 45.0  # even severity 1 visibly changes the frame
    assert psnr[-1] < 28.0


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupt_is_deterministic_and_keeps_shape(clean: np.ndarray, name: str) -> None:
    a = corrupt(clean, name, 3, np.random.default_rng(7))
    b = corrupt(clean, name, 3, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    assert a.shape == clean.shape and a.dtype == np.uint8


def test_corrupt_rejects_bad_arguments(clean: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(clean, "snow", 1, rng)
    with pytest.raises(ValueError, match="severity"):
        corrupt(clean, "fog", 6, rng)
    with pytest.raises(ValueError, match="uint8"):
        corrupt(clean.astype(np.float32), "fog", 1, rng)


def test_corrupted_stream_keeps_labels_and_is_consistent() -> None:
    spec = StreamSpec(seed=2_000_004, num_frames=8, height=96, width=128, corruption="contrast", severity=4)
    a, b = generate_stream(spec), generate_stream(spec)
    np.testing.assert_array_equal(a.frames, b.frames)
    plain = generate_stream(dataclasses.replace(spec, corruption=None, severity=0))
    np.testing.assert_array_equal(a.labels, plain.labels)
    # The same strength in every frame: per-frame PSNR against the clean stream barely varies.
    psnr = np.array([_psnr(p, c) for p, c in zip(plain.frames, a.frames, strict=True)])
    assert psnr.max() - psnr.min() < 3.0
    # Contrast is squeezed in every frame.
    assert all(c.std() < 0.6 * p.std() for p, c in zip(plain.frames, a.frames, strict=True))


def test_stronger_stream_corruption_is_further_from_clean() -> None:
    base = StreamSpec(seed=2_000_005, num_frames=3, height=96, width=128)
    plain = generate_stream(base)
    psnr = []
    for severity in (1, 3, 5):
        s = generate_stream(dataclasses.replace(base, corruption="gaussian_noise", severity=severity))
        psnr.append(_psnr(plain.frames, s.frames))
    assert psnr[0] > psnr[1] > psnr[2]
