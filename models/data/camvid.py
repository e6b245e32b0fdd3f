"""Loader for CamVid-format folders: RGB frames with RGB colour-coded `_L.png` labels.

Labels use the 32-class CamVid palette (`label_colors.txt` of the dataset); they are mapped to
the usual 11 classes of SegNet / the VQ-BNN paper, with everything else (and Void) set to 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

VOID = 255

# The 32 CamVid classes with their label colours, and the 11-class group each belongs to
# (None: ignored as void), as in the SegNet / MATLAB CamVid grouping.
CAMVID32: tuple[tuple[str, tuple[int, int, int], str | None], ...] = (
    ("Animal", (64, 128, 64), "Pedestrian"),
    ("Archway", (192, 0, 128), "Building"),
    ("Bicyclist", (0, 128, 192), "Bicyclist"),
    ("Bridge", (0, 128, 64), "Building"),
    ("Building", (128, 0, 0), "Building"),
    ("Car", (64, 0, 128), "Car"),
    ("CartLuggagePram", (64, 0, 192), "Pedestrian"),
    ("Child", (192, 128, 64), "Pedestrian"),
    ("Column_Pole", (192, 192, 128), "Pole"),
    ("Fence", (64, 64, 128), "Fence"),
    ("LaneMkgsDriv", (128, 0, 192), "Road"),
    ("LaneMkgsNonDriv", (192, 0, 64), "Road"),
    ("Misc_Text", (128, 128, 64), "SignSymbol"),
    ("MotorcycleScooter", (192, 0, 192), "Bicyclist"),
    ("OtherMoving", (128, 64, 64), "Car"),
    ("ParkingBlock", (64, 192, 128), "Pavement"),
    ("Pedestrian", (64, 64, 0), "Pedestrian"),
    ("Road", (128, 64, 128), "Road"),
    ("RoadShoulder", (128, 128, 192), "Pavement"),
    ("Sidewalk", (0, 0, 192), "Pavement"),
    ("SignSymbol", (192, 128, 128), "SignSymbol"),
    ("Sky", (128, 128, 128), "Sky"),
    ("SUVPickupTruck", (64, 128, 192), "Car"),
    ("TrafficCone", (0, 0, 64), "Pole"),
    ("TrafficLight", (0, 64, 64), "SignSymbol"),
    ("Train", (192, 64, 128), "Car"),
    ("Tree", (128, 128, 0), "Tree"),
    ("Truck_Bus", (192, 128, 192), "Car"),
    ("Tunnel", (64, 0, 64), "Building"),
    ("VegetationMisc", (192, 192, 0), "Tree"),
    ("Void", (0, 0, 0), None),
    ("Wall", (64, 192, 0), "Building"),
)

CAMVID11_CLASSES: tuple[str, ...] = (
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
# Each group drawn in the 32-class colour of its namesake (Pavement: Sidewalk's).
CAMVID11_PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128),
    (128, 0, 0),
    (192, 192, 128),
    (128, 64, 128),
    (0, 0, 192),
    (128, 128, 0),
    (192, 128, 128),
    (64, 64, 128),
    (64, 0, 128),
    (64, 64, 0),
    (0, 128, 192),
)


def _colour_keys() -> tuple[np.ndarray, np.ndarray]:
    """Sorted packed RGB keys of the 32 colours and the 11-class id (or VOID) of each."""
    keys = np.array([(r << 16) | (g << 8) | b for _, (r, g, b), _ in CAMVID32], dtype=np.int64)
    ids = np.array(
        [VOID if group is None else CAMVID11_CLASSES.index(group) for _, _, group in CAMVID32], dtype=np.uint8
    )
    order = np.argsort(keys)
    return keys[order], ids[order]


_KEYS, _IDS = _colour_keys()


def decode_label(rgb: np.ndarray) -> np.ndarray:
    """Map an H×W×3 uint8 CamVid colour label to H×W uint8 11-class ids; unknown colours → 255."""
    packed = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    pos = np.clip(np.searchsorted(_KEYS, packed), 0, len(_KEYS) - 1)
    out: np.ndarray = np.where(_KEYS[pos] == packed, _IDS[pos], np.uint8(VOID)).astype(np.uint8)
    return out


def load_camvid_pair(
    image_path: str | Path, label_path: str | Path, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Read a frame and its colour label: (H×W×3 uint8, H×W uint8 with 255 = void).

    `size` is (height, width) to resize both to: bilinear for the frame, nearest-neighbour for
    the label (applied to class ids, so no colour is ever blended into a wrong class).
    """
    image = Image.open(image_path).convert("RGB")
    label_img = Image.open(label_path).convert("RGB")
    if image.size != label_img.size and size is None:
        raise ValueError(
            f"{image_path} is {image.size} but {label_path} is {label_img.size} (W×H); pass size=(H, W)"
        )
    ids = decode_label(np.asarray(label_img))
    if size is not None:
        height, width = size
        image = image.resize((width, height), Image.Resampling.BILINEAR)
        ids = np.asarray(Image.fromarray(ids).resize((width, height), Image.Resampling.NEAREST))
    return np.asarray(image, dtype=np.uint8).copy(), np.ascontiguousarray(ids, dtype=np.uint8)


def _label_for(image: Path) -> Path | None:
    """The `_L.png` label of a frame: beside it, or in a sibling `<folder>_labels` (CamVid layout)."""
    name = f"{image.stem}_L.png"
    for candidate in (image.with_name(name), image.parent.with_name(f"{image.parent.name}_labels") / name):
        if candidate.is_file():
            return candidate
    return None


def load_camvid_folder(
    path: str | Path, size: tuple[int, int] | None = None
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Every frame in `path` that has a `_L.png` label, as (H×W×3 uint8, H×W uint8) pairs, by name."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"CamVid folder {folder} does not exist")
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for image in sorted(folder.iterdir()):
        if image.suffix.lower() not in (".png", ".jpg", ".jpeg") or image.stem.endswith("_L"):
            continue
        label = _label_for(image)
        if label is not None:
            pairs.append(load_camvid_pair(image, label, size))
    if not pairs:
        raise FileNotFoundError(f"no frame in {folder} has a `<name>_L.png` label next to it")
    return pairs
