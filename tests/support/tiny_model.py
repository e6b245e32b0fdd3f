"""A randomly initialised, very small shipped-shape model on disk: the real loading path, fast on CPU."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from models import ModelCard, create_model

TINY_CLASSES = ("sky", "building", "road", "sidewalk", "tree", "car", "pedestrian", "other")


def write_tiny_weights(
    folder: Path,
    name: str = "unet-ss-mcd",
    input_size: tuple[int, int] = (48, 64),
    num_classes: int = len(TINY_CLASSES),
) -> Path:
    """`name`'s shape with widths 4–8 and its card in `folder` (created); returns `folder`."""
    torch.manual_seed(0)
    classes = TINY_CLASSES[:num_classes]
    model = create_model(name, widths=(4, 4, 8, 8, 8), num_classes=len(classes))
    palette = tuple((32 * i, 255 - 32 * i, (97 * i) % 256) for i in range(len(classes)))
    card = ModelCard(name=name, classes=classes, palette=palette, input_size=input_size, config=model.config)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / f"{name}.safetensors"))
    card.save(folder / f"{name}.json")
    return folder
