"""Training of the four shipped nets on synthetic street streams or a CamVid-format folder.

`train(name, ...)` returns the trained net and its `ModelCard`; `streamuq train`
(`main`) writes `<out>/<name>.safetensors` (no pickle) and `<out>/<name>.json`.
Frames are rendered (or read) once into an in-memory pool of H×W frames;
each step draws random crops with horizontal flips. MC dropout is active while
training (it is dropout), cross-entropy ignores label 255, AdamW with a linear
warm-up and cosine decay over the run, measured in steps or in wall-clock minutes.

Usage: `streamuq train --model all --steps 1500 --bf16 --threads 1` (the shipped weights; see
models/weights/README.md for the exact command).
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from models.card import ModelCard
from models.metrics import IGNORE_INDEX, SegmentationMeter
from models.registry import MODEL_CONFIGS, WEIGHTS_DIR, create_model
from models.segnet import SegNet, count_flops, count_parameters

INPUT_SIZE = (192, 256)  # (height, width) the shipped nets are run, validated and costed at
WARMUP = 0.05  # fraction of the run with a linearly rising learning rate


@dataclass(frozen=True)
class FramePool:
    """Labelled frames in memory: frames N×H×W×3 uint8, labels N×H×W uint8 (255 = ignore)."""

    frames: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    source: str

    def __post_init__(self) -> None:
        if self.frames.shape[:3] != self.labels.shape or self.frames.shape[-1] != 3:
            raise ValueError(
                f"frames {tuple(self.frames.shape)} and labels {tuple(self.labels.shape)} differ"
            )

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    def sample(
        self, batch_size: int, crop: tuple[int, int], generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Random crops with random horizontal flips: B×3×h×w float in [0, 1], B×h×w int64 labels."""
        height, width = self.frames.shape[1:3]
        ch, cw = crop
        if ch > height or cw > width:
            raise ValueError(
                f"crop {ch}×{cw} is larger than the {height}×{width} frames; pass a smaller --crop"
            )
        index = torch.randint(0, len(self), (batch_size,), generator=generator)
        top = torch.randint(0, height - ch + 1, (batch_size,), generator=generator)
        left = torch.randint(0, width - cw + 1, (batch_size,), generator=generator)
        flip = torch.rand(batch_size, generator=generator) < 0.5
        images, labels = [], []
        for i, y, x, f in zip(index.tolist(), top.tolist(), left.tolist(), flip.tolist(), strict=True):
            image = self.frames[i, y : y + ch, x : x + cw]
            label = self.labels[i, y : y + ch, x : x + cw]
            if f:
                image, label = image.flip(1), label.flip(1)
            images.append(image)
            labels.append(label)
        return to_input(torch.stack(images)), torch.stack(labels).long()

    def batches(self, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The whole pool in order, as (B×3×H×W float, B×H×W int64) batches."""
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield to_input(self.frames[start:stop]), self.labels[start:stop].long()


def to_input(frames: torch.Tensor) -> torch.Tensor:
    """B×H×W×3 uint8 → B×3×H×W float32 in [0, 1], the nets' input."""
    return frames.permute(0, 3, 1, 2).float().div_(255.0).contiguous()


def synthetic_pool(
    split: str, streams: int, frames: int, stride: int = 1, size: tuple[int, int] = INPUT_SIZE
) -> FramePool:
    """`frames` frames (every `stride`-th) of each of `streams` rendered streams of `split`."""
    from models.data.synthetic import CLASSES, PALETTE, StreamSpec, generate_stream, split_seeds

    all_frames, all_labels = [], []
    for seed in split_seeds(split, streams):
        spec = StreamSpec(seed=seed, num_frames=frames * stride, height=size[0], width=size[1])
        stream = generate_stream(spec)
        all_frames.append(stream.frames[::stride])
        all_labels.append(stream.labels[::stride])
    return FramePool(
        frames=torch.from_numpy(np.concatenate(all_frames)),
        labels=torch.from_numpy(np.concatenate(all_labels)),
        classes=tuple(CLASSES),
        palette=tuple(PALETTE),
        source=f"synthetic:{split}:{streams}x{frames}/{stride}",
    )


def camvid_pools(
    path: Path, size: tuple[int, int] = INPUT_SIZE, val_every: int = 10
) -> tuple[FramePool, FramePool]:
    """Train and val pools from a CamVid-format folder; every `val_every`-th frame (by name) is val."""
    from models.data.camvid import CAMVID11_CLASSES, CAMVID11_PALETTE, load_camvid_folder

    pairs = load_camvid_folder(path, size=size)
    val_pairs = pairs[::val_every]
    train_pairs = [p for i, p in enumerate(pairs) if i % val_every] or val_pairs

    def pool(chosen: list[tuple[np.ndarray, np.ndarray]], split: str) -> FramePool:
        return FramePool(
            frames=torch.from_numpy(np.stack([f for f, _ in chosen])),
            labels=torch.from_numpy(np.stack([lab for _, lab in chosen])),
            classes=tuple(CAMVID11_CLASSES),
            palette=tuple(CAMVID11_PALETTE),
            source=f"camvid:{path}:{split}:{len(chosen)}",
        )

    return pool(train_pairs, "train"), pool(val_pairs, "val")


@dataclass(frozen=True)
class TrainConfig:
    """How a net is trained; stored in its model card. Give `steps` or `minutes`."""

    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 8
    crop: tuple[int, int] = (96, 128)
    lr: float = 4e-3
    weight_decay: float = 1e-4
    seed: int = 0
    mc_samples: int = 4  # stochastic passes for the MC metrics of dropout nets (0: none)
    # bfloat16 autocast for the training passes: ~2× faster on CPUs with AVX512-BF16 or AMX;
    # weights, optimiser state and validation stay float32.
    bf16: bool = False

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.minutes is None):
            raise ValueError(
                f"give exactly one of steps or minutes, got steps={self.steps}, minutes={self.minutes}"
            )
        if (self.steps is not None and self.steps < 1) or (self.minutes is not None and self.minutes <= 0):
            raise ValueError(f"steps must be >= 1 and minutes > 0, got {self.steps}, {self.minutes}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")


def learning_rate(base: float, progress: float) -> float:
    """Linear warm-up over the first `WARMUP` of the run, then cosine decay to 0; `progress` in [0, 1]."""
    if progress < WARMUP:
        return base * (progress + 1e-3) / WARMUP
    return base * 0.5 * (1.0 + math.cos(math.pi * min((progress - WARMUP) / (1.0 - WARMUP), 1.0)))


def fit(model: SegNet, pool: FramePool, config: TrainConfig, progress: bool = True) -> list[float]:
    """Train `model` in place on random crops of `pool`; returns the loss of every step."""
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    budget = None if config.minutes is None else config.minutes * 60.0
    total = config.steps if config.steps is not None else None
    bar = tqdm(total=total, disable=not progress, unit="step", dynamic_ncols=True)
    losses: list[float] = []
    start = time.perf_counter()
    # channels-last is oneDNN's fast layout for convolutions on CPU.
    model.to(memory_format=torch.channels_last).train()  # type: ignore[call-overload]
    while True:
        if total is not None:
            done = len(losses) / total
        else:
            assert budget is not None
            done = (time.perf_counter() - start) / budget
        if done >= 1.0:
            break
        lr = learning_rate(config.lr, done)
        for group in optimizer.param_groups:
            group["lr"] = lr
        images, labels = pool.sample(config.batch_size, config.crop, generator)
        images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", lr=f"{lr:.2e}")
    bar.close()
    model.to(memory_format=torch.contiguous_format).eval()  # type: ignore[call-overload]
    return losses


@torch.no_grad()
def evaluate(model: SegNet, pool: FramePool, mc_samples: int = 0, batch_size: int = 8) -> dict[str, float]:
    """Deterministic metrics (dropout off) and, when `mc_samples` > 0, those of the MC-dropout mean."""
    model.eval()
    num_classes = model.config.num_classes
    deterministic = SegmentationMeter(num_classes)
    mc = SegmentationMeter(num_classes)
    for images, labels in pool.batches(batch_size):
        model.set_stochastic(False)
        deterministic.update(torch.softmax(model(images), dim=1), labels)
        if mc_samples > 0 and model.is_stochastic_capable:
            model.set_stochastic(True)
            probs = sum(torch.softmax(model(images), dim=1) for _ in range(mc_samples))
            assert isinstance(probs, torch.Tensor)
            mc.update(probs / mc_samples, labels)
    model.set_stochastic(False)
    metrics = deterministic.compute()
    if mc.pixels:
        metrics |= {f"mc{mc_samples}_{k}": v for k, v in mc.compute().items() if k != "pixels"}
    return metrics


def load_pools(
    data: str | Path = "synthetic",
    *,
    train_streams: int = 160,
    train_frames: int = 12,
    val_streams: int = 6,
    val_frames: int = 8,
) -> tuple[FramePool, FramePool]:
    """(train, val) pools: rendered synthetic streams (every 3rd frame), or a CamVid-format folder."""
    if str(data) == "synthetic":
        pool = synthetic_pool("train", train_streams, train_frames, stride=3)
        return pool, synthetic_pool("val", val_streams, val_frames, stride=3)
    return camvid_pools(Path(data))


def train(
    name: str,
    *,
    data: str | Path = "synthetic",
    steps: int | None = None,
    minutes: float | None = None,
    batch_size: int = 8,
    crop: tuple[int, int] = (96, 128),
    seed: int = 0,
    lr: float = 4e-3,
    bf16: bool = False,
    mc_samples: int = 4,
    pools: tuple[FramePool, FramePool] | None = None,
    progress: bool = True,
) -> tuple[SegNet, ModelCard]:
    """Train the named net from scratch, measure it on the val pool, and describe it in a card.

    `pools` (train, val) reuses frames already in memory (e.g. across the four nets);
    otherwise they are made from `data` with `load_pools`.
    """
    config = TrainConfig(
        steps=steps,
        minutes=minutes,
        batch_size=batch_size,
        crop=crop,
        lr=lr,
        seed=seed,
        mc_samples=mc_samples,
        bf16=bf16,
    )
    pool, val = pools if pools is not None else load_pools(data)
    torch.manual_seed(config.seed)
    model = create_model(name, num_classes=len(pool.classes))
    started = time.perf_counter()
    losses = fit(model, pool, config, progress)
    wall = time.perf_counter() - started
    metrics = evaluate(model, val, config.mc_samples)
    tail = max(len(losses) // 10, 1)
    card = ModelCard(
        name=name,
        classes=pool.classes,
        palette=pool.palette,
        input_size=INPUT_SIZE,
        config=model.config,
        params=count_parameters(model),
        flops=count_flops(model, *INPUT_SIZE),
        training={
            **asdict(config),
            "data": pool.source,
            "val_data": val.source,
            "steps_done": len(losses),
            "wall_seconds": round(wall, 1),
            "loss_start": float(np.mean(losses[:tail])),
            "loss_end": float(np.mean(losses[-tail:])),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
        },
        metrics=metrics,
    )
    return model, card


def save(model: SegNet, card: ModelCard, out: Path) -> tuple[Path, Path]:
    """Write `<out>/<name>.safetensors` and `<out>/<name>.json`."""
    out.mkdir(parents=True, exist_ok=True)
    weights = out / f"{card.name}.safetensors"
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(weights), metadata={"name": card.name, "format": "pt"})
    card_path = out / f"{card.name}.json"
    card.save(card_path)
    return weights, card_path


def _crop(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"crop must look like 96x128, got {text!r}") from None
    if height < 16 or width < 16:
        raise argparse.ArgumentTypeError(f"crop must be at least 16x16, got {text!r}")
    return height, width


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="streamuq train", description="Train a shipped segmentation net.")
    parser.add_argument("--model", default="unet-ss-mcd", help=f"one of {sorted(MODEL_CONFIGS)} or 'all'")
    parser.add_argument("--data", default="synthetic", help="'synthetic' or a CamVid-format folder")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="optimiser steps (default 1500)")
    budget.add_argument("--minutes", type=float, help="wall-clock budget per model instead of steps")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--crop", type=_crop, default=(96, 128), help="training crop HxW (default 96x128)")
    parser.add_argument("--lr", type=float, default=4e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="folder for .safetensors + .json")
    parser.add_argument("--train-streams", type=int, default=160, help="synthetic streams in the pool")
    parser.add_argument("--train-frames", type=int, default=12, help="frames kept per synthetic stream")
    parser.add_argument("--val-streams", type=int, default=6)
    parser.add_argument("--val-frames", type=int, default=8, help="frames kept per val stream")
    parser.add_argument("--mc-samples", type=int, default=4, help="MC-dropout passes for the mc metrics")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast while training (fast CPUs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    names = list(MODEL_CONFIGS) if args.model == "all" else [args.model]
    for name in names:
        create_model(name)  # refuses an unknown name before minutes of rendering
    steps = args.steps if args.steps is not None or args.minutes is not None else 1500
    print(f"preparing data from {args.data} ...", flush=True)
    pools = load_pools(
        args.data,
        train_streams=args.train_streams,
        train_frames=args.train_frames,
        val_streams=args.val_streams,
        val_frames=args.val_frames,
    )
    print(f"{len(pools[0])} training frames, {len(pools[1])} validation frames", flush=True)
    for name in names:
        model, card = train(
            name,
            data=args.data,
            steps=None if args.minutes is not None else steps,
            minutes=args.minutes,
            batch_size=args.batch_size,
            crop=args.crop,
            seed=args.seed,
            lr=args.lr,
            bf16=args.bf16,
            mc_samples=args.mc_samples,
            pools=pools,
        )
        weights, card_path = save(model, card, args.out)
        shown = {
            k: round(v, 4) for k, v in card.metrics.items() if k in ("miou", "pixel_accuracy", "nll", "ece")
        }
        print(
            f"{name}: {weights} ({weights.stat().st_size / 1e6:.1f} MB), {card_path}; val {shown}", flush=True
        )
    return 0
