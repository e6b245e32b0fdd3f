"""The benchmark figures as PNGs (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from benchmarks.quality import QualityResult

COLOURS = {"DNN": "tab:blue", "VQ-DNN": "tab:cyan", "VQ-BNN": "tab:red"}


def _colour(name: str) -> str:
    return COLOURS.get(name, "tab:green" if name.startswith("BNN") else "tab:gray")


def reliability_diagram(result: QualityResult, path: Path, bins: int = 15) -> Path:
    """Accuracy against confidence for DNN, BNN-N (largest N) and VQ-BNN, without and with smoothing."""
    n = result.config.bnn_max
    smoothings = sorted({m.smoothing for m in result.methods})
    fig, axes = plt.subplots(1, len(smoothings), figsize=(5.2 * len(smoothings), 4.6), squeeze=False)
    for ax, smoothing in zip(axes[0], smoothings, strict=True):
        ax.plot([0, 1], [0, 1], linestyle=":", color="black", label="perfect calibration")
        for name in ("DNN", f"BNN-{n}", "VQ-BNN"):
            method = result.row(name, smoothing)
            conf, acc, count = method.accumulator.reliability(bins)
            keep = count > 0
            ece = method.accumulator.result()["ece15"]
            ax.plot(
                conf[keep],
                acc[keep],
                marker="o",
                color=_colour(name),
                label=f"{name} (ECE-15 {100 * ece:.2f} %)",
            )
        ax.set_xlim(1 / result.methods[0].accumulator.num_classes, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (max probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{'with' if smoothing else 'without'} spatial smoothing ({bins} bins)")
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def nll_vs_fps(result: QualityResult, path: Path) -> Path:
    """Every method: NLL (lower is better) against frames/s (higher is better)."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for method in result.methods:
        nll = method.accumulator.result()["nll"]
        marker = "s" if method.smoothing else "o"
        ax.scatter(method.fps, nll, color=_colour(method.name), marker=marker, s=40)
        ax.annotate(method.label, (method.fps, nll), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("frames/s (log scale, this CPU)")
    ax.set_ylabel("NLL (nats/pixel)")
    ax.set_title("NLL against cost (square: with spatial smoothing)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return _save(fig, path)


def colourize(ids: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """H×W class ids → H×W×3 uint8 colours; ids past the palette (ignore) are black."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = palette
    return table[ids.astype(np.uint8)]


def example_frame(example: dict[str, Any], path: Path) -> Path:
    """One frame: input and labels, then mask / entropy / epistemic of each method, a row each."""
    from models.data.synthetic import PALETTE

    palette = np.asarray(PALETTE, np.uint8)
    maps: dict[str, dict[str, np.ndarray]] = example["maps"]
    rows = len(maps)
    fig, axes = plt.subplots(rows, 4, figsize=(13, 2.6 * rows + 0.4), squeeze=False)
    top = max(float(np.log(8)), 1e-6)
    for r, (name, m) in enumerate(maps.items()):
        first = axes[r][0]
        if r == 0:
            first.imshow(example["frame"])
            first.set_title("input")
        elif r == 1:
            first.imshow(colourize(example["labels"], palette), interpolation="nearest")
            first.contour(example["ood"], levels=[0.5], colors="white", linewidths=1.0)
            first.set_title("labels (black, outlined: unknown object)")
        else:
            first.axis("off")
        axes[r][1].imshow(colourize(m["mask"], palette), interpolation="nearest")
        axes[r][1].set_title(f"{name}: mask")
        axes[r][2].imshow(m["entropy"], cmap="magma", vmin=0, vmax=top)
        axes[r][2].set_title(f"{name}: entropy (0–ln 8 nats)")
        epi = m["epistemic"]
        axes[r][3].imshow(epi, cmap="viridis", vmin=0, vmax=max(float(np.percentile(epi, 99.5)), 1e-6))
        axes[r][3].set_title(f"{name}: epistemic")
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path)


def bars(labels: list[str], values: list[float], path: Path, title: str, ylabel: str) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar(labels, values, color="tab:blue")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=30)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
