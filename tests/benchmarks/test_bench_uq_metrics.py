import math

import numpy as np
import pytest
import torch

from benchmarks import uq_metrics as m


def test_auroc_perfect_and_random_separators() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    assert m.auroc(scores, labels) == pytest.approx(1.0)
    assert m.auroc(scores, ~labels) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    random_scores = rng.random(200_000)
    random_labels = rng.random(200_000) < 0.3
    assert m.auroc(random_scores, random_labels) == pytest.approx(0.5, abs=0.01)


def test_auroc_counts_ties_as_half() -> None:
    assert m.auroc([0.5, 0.5], [False, True]) == pytest.approx(0.5)
    # 1 positive at 0.5, negatives at 0.2 (below) and 0.5 (tie): (1 + 0.5) / 2
    assert m.auroc([0.2, 0.5, 0.5], [False, False, True]) == pytest.approx(0.75)


def test_fpr95_known_case() -> None:
    # 20 positives at 1..20, negatives at 0.5 and 10.5 and 30: the threshold that keeps 19 of 20
    # positives (TPR 0.95) is 2 → negatives 10.5 and 30 are above it → FPR 2/3.
    pos = np.arange(1, 21, dtype=float)
    neg = np.array([0.5, 10.5, 30.0])
    scores = np.concatenate([pos, neg])
    flags = np.concatenate([np.ones(20, bool), np.zeros(3, bool)])
    assert m.fpr_at_95_tpr(scores, flags) == pytest.approx(2 / 3)
    assert m.fpr_at_95_tpr([0.1, 0.2, 0.8, 0.9], [False, False, True, True]) == pytest.approx(0.0)


def test_aurc_known_ranking() -> None:
    # ranked by uncertainty: ok, ok, err, err → risks 0, 0, 1/3, 2/4 → mean 0.2083
    unc = [0.1, 0.2, 0.3, 0.4]
    err = [False, False, True, True]
    assert m.aurc(unc, err) == pytest.approx((0 + 0 + 1 / 3 + 1 / 2) / 4)
    # worst ranking: err, err, ok, ok → risks 1, 1, 2/3, 2/4
    assert m.aurc(unc, [True, True, False, False]) == pytest.approx((1 + 1 + 2 / 3 + 1 / 2) / 4)


def test_aurc_ties_take_expected_value_and_large_bins_are_accurate() -> None:
    # all tied: expected risk at every coverage = error rate
    assert m.aurc([0.5] * 10, [True] * 3 + [False] * 7) == pytest.approx(0.3)
    # a big bin (asymptotic harmonic numbers) against the exact sum
    ok = np.array([500.0, 1000.0])
    err = np.array([100.0, 400.0])
    n0 = np.array([0, 600])
    e0 = np.array([0, 100])
    exact = 0.0
    for b in range(2):
        nb = ok[b] + err[b]
        for j in range(1, int(nb) + 1):
            exact += (e0[b] + j * err[b] / nb) / (n0[b] + j)
    assert m.aurc_from_histograms(ok, err) == pytest.approx(exact / 2000, rel=1e-9)


def test_ece_of_perfectly_calibrated_toy_is_zero() -> None:
    rng = np.random.default_rng(1)
    n = 400_000
    conf = rng.uniform(0.5, 1.0, n)
    correct = rng.random(n) < conf  # correct with probability = confidence
    probs = torch.tensor(np.stack([conf, 1 - conf]), dtype=torch.float32).view(2, 1, n)
    labels = torch.tensor(np.where(correct, 0, 1)).view(1, n)
    acc = m.SegmentationAccumulator(num_classes=2)
    acc.update(probs, labels, entropy=torch.zeros(1, n))
    out = acc.result()
    assert out["ece10"] < 0.005
    assert out["ece15"] < 0.005


def test_ece_of_overconfident_toy() -> None:
    # confidence 0.9 everywhere, 60 % right → ECE 0.3 with any binning
    n = 1000
    probs = torch.tensor([0.9, 0.1]).view(2, 1, 1).expand(2, 1, n)
    labels = torch.tensor([0] * 600 + [1] * 400).view(1, n)
    acc = m.SegmentationAccumulator(num_classes=2)
    acc.update(probs, labels, entropy=torch.zeros(1, n))
    out = acc.result()
    assert out["ece10"] == pytest.approx(0.3)
    assert out["ece15"] == pytest.approx(0.3)
    assert out["acc"] == pytest.approx(0.6)


def test_nll_and_brier_of_known_distribution() -> None:
    # p = (0.7, 0.2, 0.1) on 4 pixels, labels 0, 0, 1, 2
    probs = torch.tensor([0.7, 0.2, 0.1]).view(3, 1, 1).expand(3, 2, 2).contiguous()
    labels = torch.tensor([[0, 0], [1, 2]])
    acc = m.SegmentationAccumulator(num_classes=3)
    acc.update(probs, labels, entropy=torch.zeros(2, 2))
    out = acc.result()
    nll = -(2 * math.log(0.7) + math.log(0.2) + math.log(0.1)) / 4
    assert out["nll"] == pytest.approx(nll)
    sq = 0.49 + 0.04 + 0.01
    brier = (2 * (sq - 2 * 0.7 + 1) + (sq - 2 * 0.2 + 1) + (sq - 2 * 0.1 + 1)) / 4
    assert out["brier"] == pytest.approx(brier)


def test_ignored_and_ood_pixels_leave_in_distribution_metrics() -> None:
    probs = torch.tensor([0.8, 0.2]).view(2, 1, 1).expand(2, 1, 4).contiguous()
    labels = torch.tensor([[0, 1, 255, 0]])
    ood = torch.tensor([[False, False, True, True]])
    acc = m.SegmentationAccumulator(num_classes=2)
    acc.update(probs, labels, entropy=torch.tensor([[0.1, 0.2, 0.6, 0.5]]), ood=ood)
    out = acc.result()
    assert out["pixels"] == 2
    assert out["acc"] == pytest.approx(0.5)
    assert out["ood_auroc_entropy"] == pytest.approx(1.0)
    assert math.isnan(out["ood_auroc_epistemic"])


def test_selective_metrics_hand_example() -> None:
    # 10 pixels, 2 classes. confident (>= 0.9): 6 pixels, 5 right; unconfident: 4 pixels, 2 right.
    conf = np.array([0.95] * 6 + [0.6] * 4)
    pred = np.array([0, 0, 0, 1, 1, 0, 0, 1, 0, 1])
    true = np.array([0, 0, 0, 1, 1, 1, 0, 1, 1, 0])
    probs = np.where(pred == 0, conf, 1 - conf)
    probs_t = torch.tensor(np.stack([probs, 1 - probs]), dtype=torch.float32).view(2, 1, 10)
    acc = m.SegmentationAccumulator(num_classes=2)
    acc.update(probs_t, torch.tensor(true).view(1, 10), entropy=torch.zeros(1, 10))
    out = acc.result()
    assert out["acc90"] == pytest.approx(5 / 6)
    assert out["unc90"] == pytest.approx(2 / 3)  # 3 wrong pixels, 2 of them unconfident
    assert out["freq90"] == pytest.approx(0.6)
    # confident cm: true0→pred0: 3, true1→pred1: 2, true1→pred0: 1 → IoU0 = 3/4, IoU1 = 2/3
    assert out["iou90"] == pytest.approx((3 / 4 + 2 / 3) / 2)
    assert out["acc"] == pytest.approx(0.7)


def test_coarsen_refuses_a_non_divisor() -> None:
    with pytest.raises(ValueError, match="divide"):
        m.coarsen(np.zeros(600), 7)
