"""Layers that make a segmentation net cheap to ensemble.

`SpatialSmoothing` is the blur block of N. Park and S. Kim, "Blurs Behave Like
Ensembles: Spatial Smoothings to Improve Accuracy, Uncertainty, and Robustness",
ICML 2022: placed before every downsampling step it averages neighbouring
feature-map points, an ensemble over space that stabilises MC-dropout feature
maps. `MCDropout2d` is dropout whose randomness at inference is an explicit
switch (Gal and Ghahramani, 2016), not a side effect of `model.train()`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SpatialSmoothing(nn.Module):
    """`t·tanh(x/t) → ReLU → 2×2 box blur (stride 1)`, shape-preserving.

    Input and output: B×C×H×W float. The blur is `AvgPool2d(2, stride=1,
    padding=1)`, which yields (H+1)×(W+1); the last row and column are cropped so
    that output[i, j] is the mean of the 2×2 window ending at (i, j).
    """

    def __init__(self, temperature: float = 10.0, kernel_size: int = 2) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if kernel_size != 2:
            raise ValueError(f"only the paper's 2×2 blur is supported, got kernel_size={kernel_size}")
        self.temperature = temperature
        self.kernel_size = kernel_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.relu(self.temperature * torch.tanh(x / self.temperature))
        x = F.avg_pool2d(x, self.kernel_size, stride=1, padding=1)
        return x[..., :height, :width]

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, kernel_size={self.kernel_size}"


class MCDropout2d(nn.Module):
    """Element-wise dropout on B×C×H×W maps, stochastic when training or when switched on.

    `stochastic=True` keeps the dropout active in `eval()` mode: that is what
    MC-dropout inference needs, and `model.eval()` must not silently turn it off.
    The mask is drawn with `torch.rand_like`, which exports to ONNX as
    `RandomUniformLike`: ONNX Runtime's `EliminateDropout` rewrite does not touch it,
    so an exported stochastic graph stays stochastic.
    """

    def __init__(self, p: float, stochastic: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = p
        self.stochastic = stochastic

    @property
    def active(self) -> bool:
        return self.p > 0.0 and (self.training or self.stochastic)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        keep = (torch.rand_like(x) >= self.p).to(x.dtype)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}, stochastic={self.stochastic}"


def set_stochastic(module: nn.Module, stochastic: bool) -> int:
    """Switch every `MCDropout2d` inside `module`; returns how many were switched."""
    switched = 0
    for layer in module.modules():
        if isinstance(layer, MCDropout2d):
            layer.stochastic = stochastic
            switched += 1
    return switched
