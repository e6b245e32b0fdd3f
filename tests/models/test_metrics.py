import math

import pytest
import torch

from models.metrics import (
    SegmentationMeter,
    brier,
    confusion_matrix,
    ece,
    iou_per_class,
    miou,
    nll,
    pixel_accuracy,
)


def _two_class(confidence: float, correct: int, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """N×2 probs all predicting class 0 with `confidence`; `correct` of the labels are 0."""
    probs = torch.tensor([[confidence, 1 - confidence]]).repeat(total, 1)
    labels = torch.tensor([0] * correct + [1] * (total - correct))
    return probs, labels


def test_ece_of_perfectly_calibrated_toy_is_zero() -> None:
    probs, labels = _two_class(0.8, correct=8, total=10)
    assert ece(probs, labels) == pytest.approx(0.0, abs=1e-6)  # float32 0.8


def test_ece_of_overconfident_toy_is_the_gap() -> None:
    # Two bins: 0.9 confidence all right (gap 0.1), 0.6 confidence half right (gap 0.1); weights 1/2.
    p1, y1 = _two_class(0.9, correct=10, total=10)
    p2, y2 = _two_class(0.6, correct=5, total=10)
    assert ece(torch.cat([p1, p2]), torch.cat([y1, y2])) == pytest.approx(0.1)


def test_nll_of_known_distribution() -> None:
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.5, 0.25, 0.25]])
    labels = torch.tensor([0, 1])
    assert nll(probs, labels) == pytest.approx((math.log(2) + math.log(4)) / 2)


def test_nll_is_finite_for_a_zero_probability() -> None:
    assert nll(torch.tensor([[1.0, 0.0]]), torch.tensor([1])) == pytest.approx(-math.log(1e-12))


def test_brier_of_known_distribution() -> None:
    probs = torch.tensor([[0.8, 0.2], [0.5, 0.5]])
    assert brier(probs, torch.tensor([0, 1])) == pytest.approx((0.08 + 0.5) / 2)


def test_metrics_exclude_ignore_index_on_image_shapes() -> None:
    # 1×2×1×3 probs: pixel 0 right (p=0.9), pixel 1 wrong, pixel 2 ignored.
    probs = torch.tensor([[0.9, 0.2, 0.5], [0.1, 0.8, 0.5]]).reshape(1, 2, 1, 3)
    labels = torch.tensor([[[0, 0, 255]]])
    assert nll(probs, labels) == pytest.approx((-math.log(0.9) - math.log(0.2)) / 2)
    assert pixel_accuracy(probs.argmax(1), labels) == pytest.approx(0.5)


def test_confusion_matrix_counts_rows_true_columns_predicted() -> None:
    pred = torch.tensor([0, 1, 1, 2, 2, 0])
    labels = torch.tensor([0, 1, 2, 2, 255, 1])
    expected = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 1, 1]])
    assert torch.equal(confusion_matrix(pred, labels, num_classes=3), expected)


def test_confusion_matrix_refuses_out_of_range_labels() -> None:
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\)"):
        confusion_matrix(torch.tensor([0]), torch.tensor([5]), num_classes=2)


def test_miou_of_hand_confusion_matrix() -> None:
    confusion = torch.tensor([[3, 1], [2, 4]])
    # IoU_0 = 3 / (3 + 1 + 2), IoU_1 = 4 / (4 + 2 + 1)
    assert miou(confusion) == pytest.approx((3 / 6 + 4 / 7) / 2)


def test_miou_skips_classes_absent_everywhere() -> None:
    confusion = torch.tensor([[2, 0, 0], [0, 0, 0], [0, 0, 1]])
    assert torch.isnan(iou_per_class(confusion)[1])
    assert miou(confusion) == pytest.approx(1.0)


def test_segmentation_meter_streaming_equals_one_shot() -> None:
    generator = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(4, 5, 6, 7, generator=generator) * 2, dim=1)
    labels = torch.randint(0, 5, (4, 6, 7), generator=generator)
    labels[0, :2] = 255
    meter = SegmentationMeter(num_classes=5)
    for i in range(4):
        meter.update(probs[i : i + 1], labels[i : i + 1])
    result = meter.compute()
    assert result["nll"] == pytest.approx(nll(probs, labels))
    assert result["ece"] == pytest.approx(ece(probs, labels))
    assert result["brier"] == pytest.approx(brier(probs, labels))
    assert result["pixel_accuracy"] == pytest.approx(pixel_accuracy(probs.argmax(1), labels))
    assert result["miou"] == pytest.approx(miou(confusion_matrix(probs.argmax(1), labels, 5)))
    assert result["pixels"] == 4 * 6 * 7 - 2 * 7


def test_segmentation_meter_compute_before_update_says_what_to_call() -> None:
    with pytest.raises(RuntimeError, match="call update"):
        SegmentationMeter(num_classes=3).compute()
