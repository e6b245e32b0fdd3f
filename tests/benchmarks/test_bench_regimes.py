import math

import numpy as np
import pytest
import torch
from bench_helpers import tiny_loader

from benchmarks import regimes


def test_sharpening_one_pass_equals_dividing_its_logits() -> None:
    logits = torch.randn(2, 5, 4, 6)
    probs = logits.softmax(dim=1)
    torch.testing.assert_close(regimes.sharpen(probs, 0.6), (logits / 0.6).softmax(dim=1))
    assert regimes.sharpen(probs, 1.0) is probs
    samples = torch.randn(3, 5, 4, 6).softmax(dim=-3)  # S×C×H×W: the class dimension is -3 too
    torch.testing.assert_close(regimes.sharpen(samples, 0.5).sum(dim=1), torch.ones(3, 4, 6))


def test_sharpening_makes_a_pass_more_confident() -> None:
    probs = torch.randn(1, 5, 8, 8).softmax(dim=1)
    assert bool((regimes.sharpen(probs, 0.6).amax(dim=1) >= probs.amax(dim=1) - 1e-6).all())


def test_label_change_counts_pixels_valid_in_both_frames() -> None:
    labels = np.array([[[0, 1], [2, 255]], [[0, 3], [255, 255]]], dtype=np.uint8)
    # valid in both: (0,0) same, (0,1) changed; (1,0) and (1,1) have 255 in one frame
    assert regimes.label_change(labels) == pytest.approx(0.5)


def test_run_fills_every_cell_of_the_grid() -> None:
    config = regimes.RegimeConfig(
        streams=1, frames=3, height=32, width=48, samples=2, temperatures=(1.0, 0.5), frame_times=(1.0, 0.5)
    )
    rows = regimes.run(config, tiny_loader)
    assert [(r["frame_time"], r["temperature"]) for r in rows] == [
        (1.0, 1.0),
        (1.0, 0.5),
        (0.5, 1.0),
        (0.5, 0.5),
    ]
    for row in rows:
        assert 0.0 <= row["label_change"] <= 1.0
        for method in regimes.METHODS:
            assert all(math.isfinite(row[method][k]) for k in ("nll", "ece10", "acc"))
    # sharpening changes nothing but confidence: accuracy is the same, NLL is not
    for plain, sharp in ((rows[0], rows[1]), (rows[2], rows[3])):
        assert plain["DNN"]["acc"] == pytest.approx(sharp["DNN"]["acc"])
        assert plain["DNN"]["nll"] != pytest.approx(sharp["DNN"]["nll"])
    table = regimes.table(rows, config.samples)
    assert "BNN-2 NLL" in table and table.count("\n") == len(rows) + 1
