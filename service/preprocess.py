"""Frames → model input batch, and model-size maps → each frame's own size, on the device.

Frames of the same size are stacked and resized together; the resize runs on the
inference device (bilinear, antialiased when shrinking). Maps go back bilinear,
the mask by nearest neighbour so class ids stay class ids.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from service.errors import InvalidParameter
from service.types import ImageArray, ImageBatch, MapArray, MaskArray, UncertaintyMaps
from service.uncertainty import MapBatch


def check_frame(image: object) -> None:
    """Refuse anything but an H×W×3 uint8 numpy array, naming what came instead."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        kind = f"{type(image).__name__} of {image.dtype}" if isinstance(image, np.ndarray) else type(image)
        raise InvalidParameter(f"a frame must be an H×W×3 uint8 numpy array, got {kind}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise InvalidParameter(
            f"a frame must be H×W×3 RGB, got shape {image.shape}; convert grey or RGBA frames to RGB"
        )


def group_by_size(sizes: Sequence[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    """Indices of the frames of each distinct (height, width), in order."""
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, size in enumerate(sizes):
        groups[size].append(index)
    return dict(groups)


def to_batch(images: Sequence[ImageArray], size: tuple[int, int], device: torch.device) -> ImageBatch:
    """H×W×3 uint8 frames of any sizes → B×3×h×w float32 in [0, 1] on `device` at `size` (h, w)."""
    groups = group_by_size([(im.shape[0], im.shape[1]) for im in images])
    out = None if len(groups) == 1 else torch.empty(len(images), 3, *size, device=device)
    for (height, width), indices in groups.items():
        stacked = np.stack([images[i] for i in indices]) if len(indices) > 1 else images[indices[0]][None]
        # uint8 crosses to the device (4× fewer bytes than float), the rest happens there.
        x = torch.from_numpy(stacked).to(device).permute(0, 3, 1, 2).float().div_(255.0)
        if (height, width) != size:
            shrink = height > size[0] or width > size[1]
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
            x = x.clamp_(0.0, 1.0)  # antialiasing overshoots a little
        if out is None:  # one size: the group is the batch, in order
            return x
        out[indices] = x
    assert out is not None
    return out


def nearest_indices(src: int, dst: int, device: torch.device) -> torch.Tensor:
    """For each of `dst` output positions, the source index nearest to its centre (dst int64)."""
    centres = (torch.arange(dst, device=device, dtype=torch.float64) + 0.5) * (src / dst)
    return centres.floor().long().clamp_(0, src - 1)


def to_frames(maps: MapBatch, sizes: Sequence[tuple[int, int]]) -> list[UncertaintyMaps]:
    """B maps at the model's size → per frame `UncertaintyMaps` at its (height, width), on the host.

    `maps.mask` B×h×w int64, the others B×h×w float32 on the device; returns H×W
    uint8 masks and H×W float32 maps as numpy arrays.
    """
    h, w = maps.mask.shape[-2:]
    floats = torch.stack([maps.confidence, maps.entropy, maps.aleatoric, maps.epistemic], dim=1)
    mask = maps.mask.to(torch.uint8)
    results: list[UncertaintyMaps | None] = [None] * len(sizes)
    for (height, width), indices in group_by_size(sizes).items():
        index = torch.tensor(indices, device=mask.device)
        group_mask = mask.index_select(0, index)
        group_floats = floats.index_select(0, index)
        if (height, width) != (h, w):
            rows = nearest_indices(h, height, mask.device)
            cols = nearest_indices(w, width, mask.device)
            group_mask = group_mask[:, rows][:, :, cols]
            group_floats = F.interpolate(
                group_floats, size=(height, width), mode="bilinear", align_corners=False
            )
        masks_np: MaskArray = group_mask.cpu().numpy()
        floats_np: MapArray = group_floats.cpu().numpy()
        for k, i in enumerate(indices):
            results[i] = UncertaintyMaps(
                mask=masks_np[k],
                confidence=floats_np[k, 0],
                entropy=floats_np[k, 1],
                aleatoric=floats_np[k, 2],
                epistemic=floats_np[k, 3],
            )
    return [r for r in results if r is not None]
