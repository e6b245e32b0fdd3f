"""The table of shipped models in models/weights/README.md: cost and validation metrics from the cards.

`python -m models.weights_report` times each shipped net on this CPU (torch, batch 1,
2 threads, 192×256) and rewrites the README table from the model cards.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from models.registry import MODEL_CONFIGS, WEIGHTS_DIR, load_pretrained
from models.segnet import SegNet


@torch.no_grad()
def frames_per_second(
    model: SegNet, height: int, width: int, repeats: int = 30, stochastic: bool = False
) -> float:
    """Median-based frames/s of torch inference on one 1×3×height×width frame (at the current threads)."""
    model.eval()
    model.set_stochastic(stochastic)
    images = torch.rand(1, 3, height, width)
    for _ in range(3):
        model(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(images)
        times.append(time.perf_counter() - start)
    model.set_stochastic(False)
    return 1.0 / sorted(times)[len(times) // 2]


def table(weights_dir: Path = WEIGHTS_DIR, threads: int = 2) -> str:
    """Markdown rows: model, params, GFLOPs, CPU frames/s, and the card's val metrics."""
    torch.set_num_threads(threads)
    rows = [
        "| model | params | GFLOPs (192×256) | CPU frames/s | val mIoU | val acc | val NLL | val ECE "
        "| val NLL / ECE, MC mean |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in MODEL_CONFIGS:
        model, card = load_pretrained(name, weights_dir)
        fps = frames_per_second(model, *card.input_size)
        m = card.metrics
        mc_key = next((k[: -len("_nll")] for k in m if k.startswith("mc") and k.endswith("_nll")), None)
        mc = f"{m[mc_key + '_nll']:.3f} / {100 * m[mc_key + '_ece']:.2f} %" if mc_key else "—"
        rows.append(
            f"| `{name}` | {card.params:,} | {card.flops / 1e9:.2f} | {fps:.1f} | {m['miou']:.3f} "
            f"| {m['pixel_accuracy']:.3f} | {m['nll']:.3f} | {100 * m['ece']:.2f} % | {mc} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(table(args.weights, args.threads), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
