"""The model card: everything a server needs to know about a shipped checkpoint, as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from models.config import SegNetConfig


@dataclass(frozen=True)
class ModelCard:
    """Classes, palette, input size and how the weights were made and measured."""

    name: str
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    input_size: tuple[int, int]  # (height, width) the net is run at
    config: SegNetConfig
    ignore_index: int = 255
    params: int = 0
    flops: int = 0
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.classes) != self.config.num_classes or len(self.palette) != len(self.classes):
            raise ValueError(
                f"card {self.name!r}: {len(self.classes)} classes, {len(self.palette)} colours and "
                f"num_classes={self.config.num_classes} must agree"
            )

    @property
    def stochastic(self) -> bool:
        return self.config.dropout > 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelCard:
        config = dict(raw["config"])
        for key in ("widths", "mean", "std"):
            config[key] = tuple(config[key])
        return cls(
            name=raw["name"],
            classes=tuple(raw["classes"]),
            palette=tuple((int(r), int(g), int(b)) for r, g, b in raw["palette"]),
            input_size=(int(raw["input_size"][0]), int(raw["input_size"][1])),
            config=SegNetConfig(**config),
            ignore_index=int(raw.get("ignore_index", 255)),
            params=int(raw.get("params", 0)),
            flops=int(raw.get("flops", 0)),
            training=dict(raw.get("training", {})),
            metrics={k: float(v) for k, v in raw.get("metrics", {}).items()},
        )

    @classmethod
    def load(cls, path: Path) -> ModelCard:
        return cls.from_dict(json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        path.write_text(self.to_json())
