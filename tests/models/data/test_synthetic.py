"""The synthetic street streams: determinism, label/frame alignment, splits, unknown object."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

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
    assert time.perf_counter() - start < 4.0


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
