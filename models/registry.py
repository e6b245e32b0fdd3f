"""The four shipped models by name: `create_model(name)` and `load_pretrained(name)`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from models.card import ModelCard
from models.config import SegNetConfig
from models.segnet import SegNet

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_MODEL = "unet-ss-mcd"
# MC-dropout rate of the stochastic models. The Bayesian SegNet used 0.5 on a far
# wider net; on our small net 0.5 costs too much accuracy, 0.3 keeps samples diverse.
MC_DROPOUT = 0.3


def _unet_ss_mcd(**overrides: Any) -> SegNetConfig:
    return replace(SegNetConfig(smoothing=True, dropout=MC_DROPOUT), **overrides)


def _unet_mcd(**overrides: Any) -> SegNetConfig:
    return replace(SegNetConfig(smoothing=False, dropout=MC_DROPOUT), **overrides)


def _unet_ss(**overrides: Any) -> SegNetConfig:
    return replace(SegNetConfig(smoothing=True, dropout=0.0), **overrides)


def _unet(**overrides: Any) -> SegNetConfig:
    return replace(SegNetConfig(smoothing=False, dropout=0.0), **overrides)


MODEL_CONFIGS: dict[str, Callable[..., SegNetConfig]] = {
    "unet-ss-mcd": _unet_ss_mcd,
    "unet-mcd": _unet_mcd,
    "unet-ss": _unet_ss,
    "unet": _unet,
}


class UnknownModelError(ValueError):
    """A model name that is not in the registry."""


def model_config(name: str, **overrides: Any) -> SegNetConfig:
    try:
        builder = MODEL_CONFIGS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; choose one of {sorted(MODEL_CONFIGS)}") from None
    return builder(**overrides)


def create_model(name: str = DEFAULT_MODEL, **overrides: Any) -> SegNet:
    """A randomly initialised net of the named shape; `overrides` replace config fields."""
    return SegNet(model_config(name, **overrides))


def load_card(name: str = DEFAULT_MODEL, weights_dir: Path = WEIGHTS_DIR) -> ModelCard:
    path = _weights_path(name, weights_dir, ".json")
    return ModelCard.load(path)


def load_pretrained(
    name: str = DEFAULT_MODEL, weights_dir: Path = WEIGHTS_DIR, device: str | torch.device = "cpu"
) -> tuple[SegNet, ModelCard]:
    """The shipped net in eval mode on `device`, and its card. Weights are safetensors: no pickle."""
    card = load_card(name, weights_dir)
    model = SegNet(card.config)
    model.load_state_dict(load_file(str(_weights_path(name, weights_dir, ".safetensors"))))
    return model.eval().to(device), card


def _weights_path(name: str, weights_dir: Path, suffix: str) -> Path:
    model_config(name)  # refuses unknown names before touching the file system
    path = (weights_dir / f"{name}{suffix}").resolve()
    if path.parent != weights_dir.resolve():
        raise UnknownModelError(f"model name {name!r} escapes the weights folder {weights_dir}")
    if not path.is_file():
        raise FileNotFoundError(
            f"no weights for {name!r}: {path} is missing; run `streamuq train --model {name}`"
        )
    return path
