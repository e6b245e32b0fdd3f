"""Segmentation accuracy and calibration metrics: pure functions and a streaming meter.

Inputs are torch tensors: probabilities B×C×H×W (or N×C) that sum to 1 over C,
labels B×H×W (or N) int class ids where `ignore_index` (255) marks pixels that
count nowhere. The functions compute one batch; `SegmentationMeter` accumulates
sufficient statistics (sums, a confusion matrix, ECE bin totals) over batches,
so a test set of millions of pixels never has to sit in memory at once.
ECE is a fraction in [0, 1] (multiply by 100 for the papers' percentages).
"""

from __future__ import annotations

import torch

IGNORE_INDEX = 255
# Probabilities are clamped here before the log: a confidently wrong pixel costs
# -log(1e-12) ≈ 27.6 nats instead of infinity.
_EPS = 1e-12


def flatten_valid(
    probs: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor]:
    """B×C×H×W (or N×C) probs and B×H×W (or N) labels → N'×C probs, N' labels of the valid pixels."""
    if probs.dim() == 4:
        probs = probs.permute(0, 2, 3, 1).reshape(-1, probs.shape[1])
    elif probs.dim() != 2:
        raise ValueError(f"probs must be B×C×H×W or N×C, got shape {tuple(probs.shape)}")
    labels = labels.reshape(-1)
    if labels.numel() != probs.shape[0]:
        raise ValueError(
            f"{labels.numel()} labels for {probs.shape[0]} pixels: labels must be B×H×W (or N) "
            f"matching probs {tuple(probs.shape)}"
        )
    valid = labels != ignore_index
    return probs[valid], labels[valid].long()


def _flatten_pred(pred: torch.Tensor, labels: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, ...]:
    pred, labels = pred.reshape(-1).long(), labels.reshape(-1).long()
    if pred.numel() != labels.numel():
        raise ValueError(f"pred has {pred.numel()} pixels but labels {labels.numel()}: shapes must match")
    valid = labels != ignore_index
    return pred[valid], labels[valid]


def nll(probs: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> float:
    """Mean negative log-likelihood (nats) of the true class over valid pixels."""
    p, y = flatten_valid(probs, labels, ignore_index)
    return float(_nll_sum(p, y) / max(y.numel(), 1))


def _nll_sum(p: torch.Tensor, y: torch.Tensor) -> float:
    picked = p.gather(1, y[:, None]).squeeze(1).double()
    return float(-picked.clamp_min(_EPS).log().sum())


def brier(probs: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> float:
    """Mean over valid pixels of Σ_c (p_c − 1[c = y])², in [0, 2]."""
    p, y = flatten_valid(probs, labels, ignore_index)
    return float(_brier_sum(p, y) / max(y.numel(), 1))


def _brier_sum(p: torch.Tensor, y: torch.Tensor) -> float:
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).to(torch.float64)
    return float(((p.double() - onehot) ** 2).sum())


def calibration_bins(
    probs: torch.Tensor, labels: torch.Tensor, bins: int = 10, ignore_index: int = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per confidence bin (equal width on [0, 1]): pixel count, confidence sum, correct count; float64."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    p, y = flatten_valid(probs, labels, ignore_index)
    confidence, pred = p.max(dim=1)
    index = (confidence.double() * bins).long().clamp(0, bins - 1)
    counts = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, torch.ones_like(index).double())
    conf_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, confidence.double())
    correct = torch.zeros(bins, dtype=torch.float64).index_add_(0, index, (pred == y).double())
    return counts, conf_sum, correct


def ece_from_bins(counts: torch.Tensor, conf_sum: torch.Tensor, correct: torch.Tensor) -> float:
    """Σ_b (n_b / N) · |accuracy_b − confidence_b| from accumulated bin totals."""
    total = float(counts.sum())
    if total == 0:
        return 0.0
    return float((conf_sum - correct).abs().sum() / total)


def ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10, ignore_index: int = IGNORE_INDEX) -> float:
    """Expected calibration error of the top-class confidence, `bins` equal-width bins, as a fraction."""
    return ece_from_bins(*calibration_bins(probs, labels, bins, ignore_index))


def pixel_accuracy(pred: torch.Tensor, labels: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> float:
    """Fraction of valid pixels whose predicted class id (B×H×W or N) equals the label."""
    p, y = _flatten_pred(pred, labels, ignore_index)
    return float((p == y).double().sum() / max(y.numel(), 1))


def confusion_matrix(
    pred: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """C×C int64 counts, rows = true class, columns = predicted class, over valid pixels."""
    p, y = _flatten_pred(pred, labels, ignore_index)
    if y.numel() and (int(y.max()) >= num_classes or int(y.min()) < 0):
        raise ValueError(
            f"labels must be in [0, {num_classes}) or {ignore_index}, got {sorted(set(y.tolist()))}"
        )
    flat = y * num_classes + p.clamp(0, num_classes - 1)
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """C float64 IoUs, TP / (TP + FP + FN); NaN for a class absent from both labels and predictions."""
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    return torch.where(union > 0, tp / union.clamp_min(1), torch.full_like(tp, float("nan")))


def miou(confusion: torch.Tensor) -> float:
    """Mean IoU over the classes present in labels or predictions of a C×C confusion matrix."""
    return float(iou_per_class(confusion).nanmean())


class SegmentationMeter:
    """Accumulates mIoU, pixel accuracy, NLL, Brier and ECE over batches of probabilities.

    `update(probs, labels)` with probs B×C×H×W (or N×C) and labels B×H×W (or N);
    `compute()` returns `{"miou", "pixel_accuracy", "nll", "brier", "ece", "pixels"}`.
    """

    def __init__(self, num_classes: int, bins: int = 10, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.bins = bins
        self.ignore_index = ignore_index
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.counts = torch.zeros(bins, dtype=torch.float64)
        self.conf_sum = torch.zeros(bins, dtype=torch.float64)
        self.correct = torch.zeros(bins, dtype=torch.float64)
        self.nll_sum = 0.0
        self.brier_sum = 0.0
        self.pixels = 0

    @torch.no_grad()
    def update(self, probs: torch.Tensor, labels: torch.Tensor) -> None:
        probs, labels = probs.detach().cpu(), labels.detach().cpu()
        if probs.shape[-3 if probs.dim() == 4 else -1] != self.num_classes:
            raise ValueError(f"probs have shape {tuple(probs.shape)} but the meter counts {self.num_classes}")
        p, y = flatten_valid(probs, labels, self.ignore_index)
        self.confusion += confusion_matrix(p.argmax(dim=1), y, self.num_classes, self.ignore_index)
        counts, conf_sum, correct = calibration_bins(p, y, self.bins, self.ignore_index)
        self.counts += counts
        self.conf_sum += conf_sum
        self.correct += correct
        self.nll_sum += _nll_sum(p, y)
        self.brier_sum += _brier_sum(p, y)
        self.pixels += y.numel()

    def compute(self) -> dict[str, float]:
        if self.pixels == 0:
            raise RuntimeError("SegmentationMeter.compute() before any labelled pixel: call update() first")
        return {
            "miou": miou(self.confusion),
            "pixel_accuracy": float(self.confusion.diag().sum()) / self.pixels,
            "nll": self.nll_sum / self.pixels,
            "brier": self.brier_sum / self.pixels,
            "ece": ece_from_bins(self.counts, self.conf_sum, self.correct),
            "pixels": float(self.pixels),
        }
