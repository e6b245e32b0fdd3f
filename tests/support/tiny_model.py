"""A randomly initialised, very small shipped-shape model on disk: the real loading path, fast on CPU."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from models import ModelCard, SegNet, create_model

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


def informative_tiny_model(name: str = "unet-ss-mcd") -> SegNet:
    """A tiny random net made informative: BatchNorm statistics fitted to random frames, sharper head."""
    torch.manual_seed(0)
    model = create_model(name, widths=(4, 8, 8, 8, 8))
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.momentum = None  # a plain average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(8, 3, 32, 48))
        model.head.weight.mul_(5.0)
    return model.eval()
