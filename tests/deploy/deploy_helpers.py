"""Helpers for the deploy tests: a tiny real model on disk."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from models import ModelCard, create_model


def write_tiny_model(folder: Path, name: str = "unet-ss-mcd") -> Path:
    """A randomly initialised, very small `name` and its card: the real loading path, fast on CPU."""
    torch.manual_seed(0)
    classes = ("sky", "road", "car", "other")
    model = create_model(name, widths=(4, 4, 8, 8, 8), num_classes=len(classes))
    palette = tuple((60 * i, 255 - 60 * i, 90) for i in range(len(classes)))
    card = ModelCard(name=name, classes=classes, palette=palette, input_size=(24, 32), config=model.config)
    save_file(model.state_dict(), str(folder / f"{name}.safetensors"))
    card.save(folder / f"{name}.json")
    return folder
