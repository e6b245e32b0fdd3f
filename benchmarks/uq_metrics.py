"""Uncertainty metrics that `models.metrics` does not have, as memory-bounded streaming accumulators.

Every pixel of every frame counts (no subsampling); what is kept is a fixed set of
histograms and confusion matrices, so memory does not grow with the number of frames.

- Calibration: ECE with 10 bins (the VQ-BNN paper) and 15 bins (the libraries), from the
  600 confidence bins of `models.metrics.SegmentationMeter`, which both divide exactly.
- Selective prediction at a 90 % confidence cutoff, as defined by the VQ-BNN paper's code
  (Park et al., AAAI 2021): Acc-90 = p(accurate | confident), Unc-90 = p(unconfident |
  inaccurate), IoU-90 = mIoU of the confident pixels, Freq-90 = p(confident), where
  "confident" means max-probability >= 0.9.
- Ranking metrics of a score (entropy, epistemic): misclassification AUROC, AURC
  (area under the risk-coverage curve, Geifman et al. 2019), OOD AUROC and FPR at 95 % TPR.
  They need only the order of scores, so scores are binned on a log scale,
  u = log(1 + s/ε) / log(1 + s_max/ε) with ε = 1e-6 and 4096 bins: each bin spans 0.35 %
  of its score (values below ~1e-6 nats share the first bins). Pixels in one bin count as
  ties (half a point in AUROC; in AURC the expected value under random tie-breaking).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import torch

from models.metrics import IGNORE_INDEX, SegmentationMeter, confusion_matrix, ece_from_bins, miou

CONFIDENCE_BINS = 600  # divisible by 10 and 15: both ECEs come out of one histogram exactly
SCORE_BINS = 4096
SCORE_EPS = 1e-6
CUTOFF = 0.9

FloatArray = npt.NDArray[np.float64]


# --------------------------------------------------------------------------- pure functions


def score_bin_index(scores: torch.Tensor, max_score: float, bins: int = SCORE_BINS) -> torch.Tensor:
    """Scores >= 0 (any shape) → int64 bin ids in [0, bins), monotone in the score (log scale)."""
    scale = math.log1p(max_score / SCORE_EPS)
    u = torch.log1p(scores.double().clamp_min(0.0) / SCORE_EPS) / scale
    return (u * bins).long().clamp_(0, bins - 1)


def auroc_from_histograms(negative: npt.ArrayLike, positive: npt.ArrayLike) -> float:
    """P(score of a positive > score of a negative) + ½·P(tie), from two histograms over the same bins.

    Bins are ordered by increasing score. NaN when either class is empty.
    """
    neg = np.asarray(negative, dtype=np.float64)
    pos = np.asarray(positive, dtype=np.float64)
    n_neg, n_pos = neg.sum(), pos.sum()
    if n_neg == 0 or n_pos == 0:
        return float("nan")
    below = np.cumsum(neg) - neg  # negatives in strictly lower bins
    return float((pos * (below + 0.5 * neg)).sum() / (n_neg * n_pos))


def fpr_at_tpr_from_histograms(negative: npt.ArrayLike, positive: npt.ArrayLike, tpr: float = 0.95) -> float:
    """False-positive rate at the highest threshold whose true-positive rate is >= `tpr`.

    "Positive" means score >= threshold; thresholds are bin edges.
    """
    neg = np.asarray(negative, dtype=np.float64)
    pos = np.asarray(positive, dtype=np.float64)
    n_neg, n_pos = neg.sum(), pos.sum()
    if n_neg == 0 or n_pos == 0:
        return float("nan")
    tpr_at = np.cumsum(pos[::-1])[::-1] / n_pos  # TPR when the threshold is bin k's lower edge
    fpr_at = np.cumsum(neg[::-1])[::-1] / n_neg
    ok = np.nonzero(tpr_at >= tpr - 1e-12)[0]
    return float(fpr_at[ok[-1]])


def _harmonic(n: FloatArray) -> FloatArray:
    """H(n) = Σ_{i<=n} 1/i for integer-valued n >= 0 (exact below 64, asymptotic above)."""
    n = np.asarray(n, dtype=np.float64)
    exact = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 65))])
    small = n < 64
    big = np.where(small, 64.0, n)
    approx = np.log(big) + np.euler_gamma + 1 / (2 * big) - 1 / (12 * big**2) + 1 / (120 * big**4)
    return np.where(small, exact[np.clip(n, 0, 64).astype(np.int64)], approx)


def aurc_from_histograms(correct: npt.ArrayLike, errors: npt.ArrayLike) -> float:
    """Area under the risk-coverage curve, (1/n) Σ_{i=1..n} risk(i), with pixels ranked by increasing score.

    risk(i) is the error rate of the i most certain pixels. Inside one bin the errors are
    spread evenly (the expected risk under random tie-breaking), which for bin b with n_b
    pixels, e_b errors, after N0 pixels and E0 errors sums to
    n_b·r + (E0 − r·N0)·(H(N0 + n_b) − H(N0)) with r = e_b / n_b.
    """
    ok = np.asarray(correct, dtype=np.float64)
    err = np.asarray(errors, dtype=np.float64)
    n_bin = ok + err
    total = n_bin.sum()
    if total == 0:
        return float("nan")
    n0 = np.cumsum(n_bin) - n_bin
    e0 = np.cumsum(err) - err
    rate = np.divide(err, n_bin, out=np.zeros_like(err), where=n_bin > 0)
    area = n_bin * rate + (e0 - rate * n0) * (_harmonic(n0 + n_bin) - _harmonic(n0))
    return float(area[n_bin > 0].sum() / total)


def coarsen(fine: npt.ArrayLike, bins: int) -> FloatArray:
    """Sum a CONFIDENCE_BINS histogram into `bins` equal-width bins (bins must divide it)."""
    fine = np.asarray(fine, dtype=np.float64)
    if fine.shape[-1] % bins:
        raise ValueError(f"{bins} bins do not divide the {fine.shape[-1]}-bin histogram; use a divisor")
    return np.asarray(fine.reshape(*fine.shape[:-1], bins, fine.shape[-1] // bins).sum(axis=-1), np.float64)


def selective_metrics(cm_confident: torch.Tensor, cm_all: torch.Tensor) -> dict[str, float]:
    """Acc-90, Unc-90, IoU-90, Freq-90 from C×C confusion matrices (rows = truth): confident, all pixels.

    IoU-90 is `models.metrics.miou` of the confident pixels (classes present in labels or predictions).
    """
    conf = cm_confident.double().numpy()
    every = cm_all.double().numpy()
    n_conf, n_all = conf.sum(), every.sum()
    wrong_all = n_all - np.trace(every)
    wrong_conf = n_conf - np.trace(conf)
    nan = float("nan")
    return {
        "acc90": float(np.trace(conf) / n_conf) if n_conf else nan,
        "unc90": float((wrong_all - wrong_conf) / wrong_all) if wrong_all else nan,
        "iou90": miou(cm_confident) if n_conf else nan,
        "freq90": float(n_conf / n_all) if n_all else nan,
    }


# --------------------------------------------------------------------------- array conveniences


def auroc(scores: npt.ArrayLike, positives: npt.ArrayLike, max_score: float | None = None) -> float:
    """AUROC of `scores` separating `positives` (bool) from the rest, through the binned path."""
    neg, pos = _split_histograms(scores, positives, max_score)
    return auroc_from_histograms(neg, pos)


def fpr_at_95_tpr(scores: npt.ArrayLike, positives: npt.ArrayLike, max_score: float | None = None) -> float:
    neg, pos = _split_histograms(scores, positives, max_score)
    return fpr_at_tpr_from_histograms(neg, pos, 0.95)


def aurc(uncertainty: npt.ArrayLike, errors: npt.ArrayLike, max_score: float | None = None) -> float:
    """AURC of pixels ranked by increasing `uncertainty`; `errors` bool marks the wrong ones."""
    ok, err = _split_histograms(uncertainty, errors, max_score)
    return aurc_from_histograms(ok, err)


def _split_histograms(
    scores: npt.ArrayLike, flags: npt.ArrayLike, max_score: float | None
) -> tuple[FloatArray, FloatArray]:
    s = torch.as_tensor(np.asarray(scores, dtype=np.float64)).flatten()
    f = torch.as_tensor(np.asarray(flags, dtype=bool)).flatten()
    top = float(s.max()) if max_score is None else max_score
    idx = score_bin_index(s, max(top, SCORE_EPS))
    neg = torch.bincount(idx[~f], minlength=SCORE_BINS).double().numpy()
    pos = torch.bincount(idx[f], minlength=SCORE_BINS).double().numpy()
    return neg, pos


# --------------------------------------------------------------------------- the accumulator


class SegmentationAccumulator:
    """Streaming sums for one method: feed frames with `update`, read every metric with `result`.

    NLL, accuracy, mIoU, Brier and the calibration bins come from `models.metrics.SegmentationMeter`
    (run with CONFIDENCE_BINS bins, coarsened to 10 and 15 here); this class adds what it lacks.
    """

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.max_entropy = math.log(num_classes)
        self.meter = SegmentationMeter(num_classes, bins=CONFIDENCE_BINS)
        self.cm_confident = torch.zeros(num_classes, num_classes, dtype=torch.int64)
        self.entropy_ok = torch.zeros(SCORE_BINS, dtype=torch.int64)
        self.entropy_err = torch.zeros(SCORE_BINS, dtype=torch.int64)
        # OOD histograms per score: row 0 in-distribution pixels, row 1 unknown-object pixels
        self.ood_hist = {
            kind: torch.zeros(2, SCORE_BINS, dtype=torch.int64) for kind in ("entropy", "epistemic")
        }

    @property
    def pixels(self) -> int:
        return self.meter.pixels

    @torch.no_grad()
    def update(
        self,
        probs: torch.Tensor,
        labels: torch.Tensor,
        entropy: torch.Tensor,
        epistemic: torch.Tensor | None = None,
        ood: torch.Tensor | None = None,
    ) -> None:
        """One frame: `probs` C×H×W float, `labels` H×W int (IGNORE_INDEX skipped), maps H×W float.

        `ood` H×W bool marks unknown-object pixels: they are left out of every in-distribution
        metric and are the positives of the OOD metrics (negatives: the frame's valid pixels).
        """
        labels = labels.long()
        valid = labels != IGNORE_INDEX
        if ood is not None:
            valid &= ~ood
            labels = labels.masked_fill(~valid, IGNORE_INDEX)
        if bool(valid.any()):
            self.meter.update(probs.unsqueeze(0), labels.unsqueeze(0))
            conf, pred = probs.max(dim=0)
            y, pred_v = labels[valid], pred[valid]
            correct = pred_v == y
            confident = conf[valid] >= CUTOFF
            self.cm_confident += confusion_matrix(pred_v[confident], y[confident], self.num_classes)
            e_bins = score_bin_index(entropy[valid], self.max_entropy)
            self.entropy_ok += torch.bincount(e_bins[correct], minlength=SCORE_BINS)
            self.entropy_err += torch.bincount(e_bins[~correct], minlength=SCORE_BINS)
        if ood is not None and bool(ood.any()):
            for kind, score in (("entropy", entropy), ("epistemic", epistemic)):
                if score is None:
                    continue
                for row, where in ((0, valid), (1, ood)):
                    idx = score_bin_index(score[where], self.max_entropy)
                    self.ood_hist[kind][row] += torch.bincount(idx, minlength=SCORE_BINS)

    def _bins(self, bins: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = self.meter
        return tuple(torch.from_numpy(coarsen(t.numpy(), bins)) for t in (m.counts, m.conf_sum, m.correct))  # type: ignore[return-value]

    def reliability(self, bins: int = 15) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per bin: mean confidence, accuracy, pixel count (NaN where a bin is empty)."""
        count, conf, correct = (t.numpy() for t in self._bins(bins))
        with np.errstate(invalid="ignore", divide="ignore"):
            return conf / count, correct / count, count

    def result(self) -> dict[str, float]:
        nan = float("nan")
        base = self.meter.compute() if self.pixels else {}
        out = {
            "pixels": float(self.pixels),
            "nll": base.get("nll", nan),
            "acc": base.get("pixel_accuracy", nan),
            "miou": base.get("miou", nan),
            "ece10": ece_from_bins(*self._bins(10)),
            "ece15": ece_from_bins(*self._bins(15)),
            "brier": base.get("brier", nan),
            **selective_metrics(self.cm_confident, self.meter.confusion),
            "aurc": aurc_from_histograms(self.entropy_ok.numpy(), self.entropy_err.numpy()),
            "auroc_err": auroc_from_histograms(self.entropy_ok.numpy(), self.entropy_err.numpy()),
        }
        for kind, hist in self.ood_hist.items():
            h = hist.numpy()
            out[f"ood_auroc_{kind}"] = auroc_from_histograms(h[0], h[1])
            out[f"ood_fpr95_{kind}"] = fpr_at_tpr_from_histograms(h[0], h[1], 0.95)
        return out
