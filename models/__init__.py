"""Segmentation nets with spatial smoothing and MC dropout, and everything to make their weights."""

from models.card import ModelCard
from models.config import SegNetConfig
from models.layers import MCDropout2d, SpatialSmoothing
from models.registry import (
    DEFAULT_MODEL,
    MODEL_CONFIGS,
    WEIGHTS_DIR,
    UnknownModelError,
    create_model,
    load_card,
    load_pretrained,
    model_config,
)
from models.segnet import SegNet, count_flops, count_parameters

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_CONFIGS",
    "WEIGHTS_DIR",
    "MCDropout2d",
    "ModelCard",
    "SegNet",
    "SegNetConfig",
    "SpatialSmoothing",
    "UnknownModelError",
    "count_flops",
    "count_parameters",
    "create_model",
    "load_card",
    "load_pretrained",
    "model_config",
]
