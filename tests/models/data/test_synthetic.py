"""The synthetic street streams: determinism, label/frame alignment, splits, unknown object."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.data.corruptions import CORRUPTIONS
from models.data.synthetic import (
    CLASSES,
    IGNORE_INDEX,
    PALETTE,
    SPLITS,
    StreamSpec,
    generate_stream,
    split_seeds,
)

SHORT = {"num_frames": 6, "height": 96, "width": 128}


def test_classes_and_palette_match() -> None:
    assert CLASSES == ("sky", "building", "road", "sidewalk", "vegetation", "vehicle", "person", "pole")
    assert len(PALETTE) == len(CLASSES)
    assert len(set(PALETTE)) == len(PALETTE)
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in PALETTE)


def test_generate_stream_shapes_and_dtypes() -> None:
    s = generate_stream(StreamSpec(seed=3, **SHORT))
    assert s.frames.shape == (6, 96, 128, 3) and s.frames.dtype == np.uint8
    assert s.labels.shape == (6, 96, 128) and s.labels.dtype == np.uint8
    assert s.ood.shape == (6, 96, 128) and s.ood.dtype == np.bool_
    assert int(s.labels.max()) < len(CLASSES)
    assert not s.ood.any()


def test_generate_stream_is_deterministic() -> None:
    spec = StreamSpec(seed=11, **SHORT)
    a, b = generate_stream(spec), generate_stream(spec)
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_generate_stream_differs_between_seeds() -> None:
    a = generate_stream(StreamSpec(seed=1, **SHORT))
    b = generate_stream(StreamSpec(seed=2, **SHORT))
    assert not np.array_equal(a.frames, b.frames)
    assert (a.labels != b.labels).mean() > 0.1


def test_generate_stream_is_fast() -> None:
    start = time.perf_counter()
    generate_stream(StreamSpec(seed=5))
    # 60 frames at 192×256; budget is 2 s on one core, leave room for a shared, busy CI machine.
    assert time.perf_counter() - start < 8.0


def test_split_seeds_are_disjoint() -> None:
    seeds = {split: set(split_seeds(split, 5000)) for split in SPLITS}
    assert all(len(s) == 5000 for s in seeds.values())
    assert not seeds["train"] & seeds["val"]
    assert not seeds["train"] & seeds["test"]
    assert not seeds["val"] & seeds["test"]
    assert split_seeds("test", 3) == split_seeds("test", 3)


def test_split_seeds_rejects_unknown_split() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        split_seeds("holdout", 3)


def test_stream_spec_rejects_bad_corruption() -> None:
    with pytest.raises(ValueError, match="unknown corruption"):
        StreamSpec(seed=0, corruption="rain", severity=2)
    with pytest.raises(ValueError, match="severity"):
        StreamSpec(seed=0, corruption="fog", severity=0)
    with pytest.raises(ValueError, match="without a corruption"):
        StreamSpec(seed=0, severity=3)


def test_unknown_object_is_ood_and_ignored() -> None:
    spec = StreamSpec(seed=4, unknown_object=True, **SHORT)
    s = generate_stream(spec)
    assert s.ood.any()
    np.testing.assert_array_equal(s.ood, s.labels == IGNORE_INDEX)
    plain = generate_stream(dataclasses.replace(spec, unknown_object=False))
    # Outside the object, the stream is the one without it.
    np.testing.assert_array_equal(s.labels[~s.ood], plain.labels[~s.ood])
    assert not plain.ood.any()


def _within_class_spread(frame: np.ndarray, labels: np.ndarray) -> float:
    """Pixel-weighted mean colour variance inside each class: low when labels sit on their pixels."""
    x = frame.reshape(-1, 3).astype(np.float64)
    lab = labels.ravel()
    total = 0.0
    for c in np.unique(lab):
        sel = x[lab == c]
        total += sel.var(axis=0).sum() * len(sel)
    return total / len(lab)


def test_labels_line_up_with_frames() -> None:
    s = generate_stream(StreamSpec(seed=21, num_frames=4))
    for t in range(len(s.frames)):
        aligned = _within_class_spread(s.frames[t], s.labels[t])
        for dy, dx in [(0, 3), (0, -3), (3, 0), (-3, 0)]:
            shifted = np.roll(s.labels[t], (dy, dx), axis=(0, 1))
            assert aligned < 0.97 * _within_class_spread(s.frames[t], shifted), (t, dy, dx)


def test_label_changes_come_with_pixel_changes() -> None:
    # Where the label of a pixel changes between frames (something moved over it), its colour
    # changes far more than where the label stays.
    s = generate_stream(StreamSpec(seed=8, num_frames=10))
    diff = np.abs(s.frames[1:].astype(np.float32) - s.frames[:-1].astype(np.float32)).mean(axis=3)
    changed = s.labels[1:] != s.labels[:-1]
    assert changed.mean() > 0.001
    assert diff[changed].mean() > 2.0 * diff[~changed].mean()


def test_sky_is_at_the_top_and_road_at_the_bottom() -> None:
    for seed in split_seeds("val", 3):
        s = generate_stream(StreamSpec(seed=seed, num_frames=3))
        rows = np.indices(s.labels.shape)[1]
        sky, road = CLASSES.index("sky"), CLASSES.index("road")
        assert rows[s.labels == sky].mean() < 0.4 * s.labels.shape[1]
        assert rows[s.labels == road].mean() > 0.6 * s.labels.shape[1]
        assert not (s.labels[:, -1] == sky).any()


def test_class_colours_differ() -> None:
    s = generate_stream(StreamSpec(seed=2_000_001, num_frames=5))
    f = s.frames.astype(np.float32)
    mean = {name: f[s.labels == i].mean(axis=0) for i, name in enumerate(CLASSES) if (s.labels == i).any()}
    assert mean["sky"].sum() > mean["road"].sum() + 60  # sky is bright, asphalt dark
    g = mean["vegetation"]
    assert g[1] > g[0] and g[1] > g[2]  # foliage is green
    # Some pairs are meant to be close (asphalt vs a grey facade in shade); most must not be.
    pairs = [(a, b) for a in mean for b in mean if a < b]
    apart = [np.abs(mean[a] - mean[b]).sum() > 15 for a, b in pairs]
    assert np.mean(apart) > 0.75


def test_every_class_appears_across_a_few_streams() -> None:
    seen = np.zeros(len(CLASSES), dtype=bool)
    for seed in split_seeds("train", 4):
        s = generate_stream(StreamSpec(seed=seed, num_frames=2))
        seen |= np.bincount(s.labels.ravel(), minlength=len(CLASSES))[: len(CLASSES)] > 0
    assert seen.all()


def test_default_rendering_is_frozen() -> None:
    # The shipped models are trained and tested on the default rendering: it must not drift.
    # Tolerances leave room for float rounding across CPUs, not for a changed world.
    s = generate_stream(StreamSpec(seed=0, num_frames=5))
    fractions = np.bincount(s.labels.ravel(), minlength=8) / s.labels.size
    expected = [0.0639, 0.1096, 0.1072, 0.0436, 0.5229, 0.1514, 0.0012, 0.0002]
    np.testing.assert_allclose(fractions, expected, atol=0.002)
    np.testing.assert_allclose(s.frames.reshape(-1, 3).mean(axis=0), [43.61, 51.43, 40.43], atol=0.5)


def test_unknown_object_looks_unlike_any_class() -> None:
    s = generate_stream(StreamSpec(seed=2_000_009, num_frames=5, unknown_object=True))
    assert (s.ood.mean(axis=(1, 2)) > 0.01).all()
    f = s.frames.astype(np.float32)
    # Saturated stripes: the object's pixels are far more colourful than the street's.
    saturation = f.max(axis=3) - f.min(axis=3)
    assert saturation[s.ood].mean() > 2.0 * saturation[~s.ood].mean()
    assert set(np.unique(s.labels[s.ood]).tolist()) == {IGNORE_INDEX}
    assert IGNORE_INDEX not in np.unique(s.labels[~s.ood])


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 3_000_000),
    frames=st.integers(1, 3),
    height=st.integers(16, 80),
    width=st.integers(16, 120),
    unknown=st.booleans(),
    corruption=st.sampled_from([None, *CORRUPTIONS]),
)
def test_generate_stream_any_spec_is_well_formed(
    seed: int, frames: int, height: int, width: int, unknown: bool, corruption: str | None
) -> None:
    spec = StreamSpec(seed, frames, height, width, unknown, corruption, 0 if corruption is None else 3)
    s = generate_stream(spec)
    assert s.frames.shape == (frames, height, width, 3) and s.frames.dtype == np.uint8
    assert s.labels.shape == (frames, height, width) and s.ood.shape == s.labels.shape
    assert set(np.unique(s.labels).tolist()) <= set(range(len(CLASSES))) | {IGNORE_INDEX}
    np.testing.assert_array_equal(s.ood, s.labels == IGNORE_INDEX)
    if not unknown:
        assert not s.ood.any()


def test_shorter_stream_is_a_prefix_of_a_longer_one() -> None:
    # Frame t never depends on how many frames follow it, with or without the options.
    plain = StreamSpec(seed=9, num_frames=3, height=64, width=80)
    odd = dataclasses.replace(plain, unknown_object=True, corruption="gaussian_noise", severity=2)
    for spec in (plain, odd):
        short = generate_stream(spec)
        long = generate_stream(dataclasses.replace(spec, num_frames=7))
        np.testing.assert_array_equal(short.frames, long.frames[:3])
        np.testing.assert_array_equal(short.labels, long.labels[:3])


def test_generate_stream_frame_time_slows_the_world_per_frame() -> None:
    # A third of the world time between frames: fewer labels change from one frame to the next.
    seed = split_seeds("test", 1)[0]
    default = generate_stream(StreamSpec(seed=seed, num_frames=12))
    fast_camera = generate_stream(StreamSpec(seed=seed, num_frames=12, frame_time=1 / 3))
    default_change = float((default.labels[1:] != default.labels[:-1]).mean())
    fine_change = float((fast_camera.labels[1:] != fast_camera.labels[:-1]).mean())
    assert fine_change < 0.6 * default_change
    # Same world: the first frame's labels agree almost everywhere (only the shake differs).
    assert float((default.labels[0] == fast_camera.labels[0]).mean()) > 0.9


def test_stream_spec_refuses_nonpositive_frame_time() -> None:
    with pytest.raises(ValueError, match="frame_time"):
        StreamSpec(seed=0, frame_time=0.0)
