"""Hyperparameters of the segmentation nets: plain frozen dataclasses, no pydantic."""

from __future__ import annotations

from dataclasses import dataclass

# ImageNet statistics: the net normalises its [0, 1] input with them internally.
DEFAULT_MEAN = (0.485, 0.456, 0.406)
DEFAULT_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class SegNetConfig:
    """Shape of a U-Net: `widths` are the channels of the 5 stages (4 downsamplings)."""

    num_classes: int = 8
    widths: tuple[int, int, int, int, int] = (12, 24, 48, 64, 96)
    smoothing: bool = True
    smoothing_temperature: float = 10.0
    dropout: float = 0.0
    in_channels: int = 3
    mean: tuple[float, float, float] = DEFAULT_MEAN
    std: tuple[float, float, float] = DEFAULT_STD

    def __post_init__(self) -> None:
        if len(self.widths) != 5 or min(self.widths) < 1:
            raise ValueError(f"widths must be 5 positive channel counts, got {self.widths}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
