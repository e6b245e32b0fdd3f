"""Helpers for the API tests: a tiny real model on disk and small test images."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from models import ModelCard, create_model

TINY_CLASSES = ("sky", "building", "road", "sidewalk", "tree", "car", "pedestrian", "other")
TINY_PALETTE = tuple((32 * i, 255 - 32 * i, (97 * i) % 256) for i in range(len(TINY_CLASSES)))


def write_tiny_weights(
    folder: Path, name: str = "unet-ss-mcd", input_size: tuple[int, int] = (32, 48)
) -> Path:
    """A randomly initialised, very small `name` with its card in `folder`: a real model, fast on CPU."""
    torch.manual_seed(0)
    model = create_model(name, widths=(4, 4, 8, 8, 8))
    card = ModelCard(
        name=name,
        classes=TINY_CLASSES,
        palette=TINY_PALETTE,
        input_size=input_size,
        config=model.config,
    )
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / f"{name}.safetensors"))
    card.save(folder / f"{name}.json")
    return folder


def png(width: int = 40, height: int = 30, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()
