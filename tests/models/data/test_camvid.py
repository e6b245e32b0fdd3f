"""The CamVid-format loader, on the shared sample frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.data.camvid import (
    CAMVID11_CLASSES,
    CAMVID11_PALETTE,
    CAMVID32,
    decode_label,
    load_camvid_folder,
    load_camvid_pair,
)

SAMPLE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "camvid"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"CamVid sample not at {SAMPLE}")


def test_camvid_tables_are_consistent() -> None:
    assert CAMVID11_CLASSES == (
        "Sky",
        "Building",
        "Pole",
        "Road",
        "Pavement",
        "Tree",
        "SignSymbol",
        "Fence",
        "Car",
        "Pedestrian",
        "Bicyclist",
    )
    assert len(CAMVID11_PALETTE) == 11 and len(set(CAMVID11_PALETTE)) == 11
    assert len(CAMVID32) == 32 and len({c for _, c, _ in CAMVID32}) == 32
    assert {g for _, _, g in CAMVID32 if g is not None} == set(CAMVID11_CLASSES)


def test_decode_label_maps_groups_and_void() -> None:
    rgb = np.array(
        [[[128, 128, 128], [128, 0, 192], [64, 128, 192]], [[0, 0, 0], [1, 2, 3], [192, 192, 0]]],
        dtype=np.uint8,
    )
    ids = decode_label(rgb)
    names = ["Sky", "Road", "Car"], [None, None, "Tree"]
    expected = [[255 if n is None else CAMVID11_CLASSES.index(n) for n in row] for row in names]
    np.testing.assert_array_equal(ids, np.array(expected, dtype=np.uint8))


@needs_sample
def test_every_label_colour_in_the_sample_is_known() -> None:
    known = {c for _, c, _ in CAMVID32}
    for path in sorted((SAMPLE / "labelled").glob("*_L.png")):
        rgb = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3).astype(np.int64)
        packed = np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2])
        present = {(int(k) >> 16, (int(k) >> 8) & 255, int(k) & 255) for k in packed}
        assert present <= known, f"{path.name}: unknown colours {present - known}"


@needs_sample
def test_load_camvid_pair_full_size() -> None:
    d = SAMPLE / "labelled"
    image, label = load_camvid_pair(d / "0001TP_007170.png", d / "0001TP_007170_L.png")
    assert image.shape == (720, 960, 3) and image.dtype == np.uint8
    assert label.shape == (720, 960) and label.dtype == np.uint8
    values = set(np.unique(label).tolist())
    assert values <= set(range(11)) | {255}
    assert 255 in values  # the sample has Void pixels
    fractions = np.bincount(label.ravel(), minlength=256) / label.size
    # Sane for a street: lots of road and sky, some void, no class all over the frame.
    assert fractions[CAMVID11_CLASSES.index("Road")] > 0.1
    assert fractions[CAMVID11_CLASSES.index("Sky")] > 0.1
    assert 0.01 < fractions[255] < 0.15
    assert fractions.max() < 0.5


@needs_sample
def test_load_camvid_pair_resized_lines_up_with_the_sequence_frame() -> None:
    d = SAMPLE / "labelled"
    seq = np.asarray(Image.open(SAMPLE / "seq" / "0001TP_007170.png").convert("RGB"))
    image, label = load_camvid_pair(d / "0001TP_007170.png", d / "0001TP_007170_L.png", size=(360, 480))
    assert seq.shape == (360, 480, 3)
    assert image.shape == seq.shape and label.shape == seq.shape[:2]
    # The resized labelled frame is the same picture as the sequence frame.
    diff = np.abs(image.astype(np.float32) - seq.astype(np.float32)).mean()
    assert diff < 12.0
    # And the label sits on it: sky is brighter than road in the sequence frame.
    grey = seq.astype(np.float32).mean(axis=2)
    sky, road = CAMVID11_CLASSES.index("Sky"), CAMVID11_CLASSES.index("Road")
    assert grey[label == sky].mean() > grey[label == road].mean() + 30
    assert np.argwhere(label == sky)[:, 0].mean() < np.argwhere(label == road)[:, 0].mean()


@needs_sample
def test_load_camvid_folder_pairs_every_labelled_frame() -> None:
    pairs = load_camvid_folder(SAMPLE / "labelled", size=(96, 128))
    assert len(pairs) == 3
    for image, label in pairs:
        assert image.shape == (96, 128, 3) and label.shape == (96, 128)


def test_load_camvid_folder_without_labels_fails(tmp_path: Path) -> None:
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match=r"_L\.png"):
        load_camvid_folder(tmp_path)


def test_load_camvid_folder_finds_labels_in_sibling_folder(tmp_path: Path) -> None:
    # The CamVid release layout: train/x.png with train_labels/x_L.png.
    (tmp_path / "train").mkdir()
    (tmp_path / "train_labels").mkdir()
    Image.new("RGB", (8, 6), (10, 20, 30)).save(tmp_path / "train" / "x.png")
    label = np.zeros((6, 8, 3), dtype=np.uint8)
    label[:3] = (128, 128, 128)  # sky on top, void below
    Image.fromarray(label).save(tmp_path / "train_labels" / "x_L.png")
    [(image, ids)] = load_camvid_folder(tmp_path / "train")
    assert image.shape == (6, 8, 3)
    assert (ids[:3] == CAMVID11_CLASSES.index("Sky")).all() and (ids[3:] == 255).all()
