"""A small U-Net for semantic segmentation, with optional spatial smoothing and MC dropout.

Encoder: 5 stages of two 3×3 conv–BN–ReLU, 4 downsamplings (max-pool 2×2), a
`SpatialSmoothing` block before each downsampling when `smoothing` is on.
Decoder: bilinear upsampling, skip concatenation, two 3×3 conv–BN–ReLU.
`MCDropout2d` sits after the deeper encoder stages (3, 4, bottleneck) and the
deeper decoder stages, as in the Bayesian SegNet / U-Net (Kendall et al., 2017).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.config import SegNetConfig
from models.layers import MCDropout2d, SpatialSmoothing, set_stochastic

DOWNSAMPLINGS = 4
_MULTIPLE = 2**DOWNSAMPLINGS


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def _maybe_dropout(p: float, deep: bool) -> nn.Module:
    return MCDropout2d(p) if deep and p > 0 else nn.Identity()


class SegNet(nn.Module):
    """B×3×H×W float in [0, 1] → B×C×H×W logits, for any H and W (padded and cropped inside)."""

    def __init__(self, config: SegNetConfig) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)

        self.encoders = nn.ModuleList(
            [_conv_block(config.in_channels if i == 0 else w[i - 1], w[i]) for i in range(5)]
        )
        # Stage i >= 2 counts as "deep": stages 3, 4 and the bottleneck in 1-based terms.
        self.encoder_dropout = nn.ModuleList([_maybe_dropout(config.dropout, i >= 2) for i in range(5)])
        self.downsample = nn.ModuleList(
            [
                nn.Sequential(
                    SpatialSmoothing(config.smoothing_temperature) if config.smoothing else nn.Identity(),
                    nn.MaxPool2d(2),
                )
                for _ in range(DOWNSAMPLINGS)
            ]
        )
        # Decoder stage j goes from level 4-j up to level 3-j.
        self.decoders = nn.ModuleList(
            [_conv_block(w[4 - j] + w[3 - j], w[3 - j]) for j in range(DOWNSAMPLINGS)]
        )
        self.decoder_dropout = nn.ModuleList(
            [_maybe_dropout(config.dropout, j < 2) for j in range(DOWNSAMPLINGS)]
        )
        self.head = nn.Conv2d(w[0], config.num_classes, 1)

    def set_stochastic(self, stochastic: bool) -> None:
        """Turn MC dropout on or off for inference, independent of train()/eval()."""
        set_stochastic(self, stochastic)

    @property
    def is_stochastic_capable(self) -> bool:
        return self.config.dropout > 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        height, width = images.shape[-2:]
        pad_h = (-height) % _MULTIPLE
        pad_w = (-width) % _MULTIPLE
        x = (images - self.mean) / self.std
        # Unconditional (a no-op pad when already a multiple): a Python branch on the size
        # would make torch.export specialise the ONNX graph to one padding.
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")

        skips: list[torch.Tensor] = []
        for level in range(5):
            x = self.encoder_dropout[level](self.encoders[level](x))
            if level < DOWNSAMPLINGS:
                skips.append(x)
                x = self.downsample[level](x)
        for j in range(DOWNSAMPLINGS):
            skip = skips[3 - j]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = self.decoder_dropout[j](self.decoders[j](torch.cat([x, skip], dim=1)))
        logits: torch.Tensor = self.head(x)
        return logits[..., :height, :width]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, height: int, width: int) -> int:
    """Floating-point operations of one forward pass (2 per multiply-add), by torch's counter."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, height, width, device=device))
    model.train(was_training)
    return int(counter.get_total_flops())
