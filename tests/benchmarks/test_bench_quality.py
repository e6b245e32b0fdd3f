import math
from pathlib import Path

import pytest
import torch
from bench_helpers import TINY_QUALITY, tiny_loader

from benchmarks import estimators, quality

TINY = TINY_QUALITY


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[quality.QualityResult, Path]:
    out = tmp_path_factory.mktemp("quality")
    return quality.run(TINY, tiny_loader, out, log=lambda _: None), out


def test_quality_tiny_run_has_every_method_and_column(
    tiny_result: tuple[quality.QualityResult, Path],
) -> None:
    result, _ = tiny_result
    labels = [m.label for m in result.methods]
    for name in ("DNN", "VQ-DNN", "BNN-1", "BNN-2", "BNN-3", "VQ-BNN"):
        assert name in labels
        assert f"{name} +SS" in labels
    for method in result.methods:
        r = method.accumulator.result()
        for key, _, _ in quality.COLUMNS:
            assert math.isfinite(r[key]), (method.label, key)
        assert r["pixels"] > 0
        assert method.fps > 0
        assert math.isfinite(r["ood_auroc_entropy"])
        assert math.isfinite(r["ood_auroc_epistemic"]) == method.has_epistemic
    assert len(result.shift) == 1


def test_quality_tiny_run_writes_tables_and_plots(tiny_result: tuple[quality.QualityResult, Path]) -> None:
    _, out = tiny_result
    text = (out / "quality.md").read_text()
    for _, header, _ in quality.COLUMNS + quality.OOD_COLUMNS:
        assert header in text
    assert "VQ-BNN +SS" in text and "fog" in text and "τ=0.5 NLL" in text
    for png in ("reliability.png", "nll_vs_fps.png", "example_frame.png"):
        assert (out / png).stat().st_size > 1000


def test_bnn_with_one_sample_has_no_epistemic_and_dnn_equals_its_own_entropy() -> None:
    probs = torch.softmax(torch.randn(1, 4, 5, 6), dim=1)
    mean, maps = estimators.bnn_maps(probs)
    torch.testing.assert_close(mean, probs)
    assert float(maps.epistemic.abs().max()) < 1e-6


def test_temporal_state_matches_the_papers_weighted_sum() -> None:
    torch.manual_seed(0)
    frames = [torch.softmax(torch.randn(1, 3, 2, 2), dim=1) for _ in range(5)]
    state = estimators.TemporalState(tau=1.25)
    for t, p in enumerate(frames):
        P, _ = state.update(p, float(t))
    weights = torch.tensor([math.exp(-(4 - k) / 1.25) for k in range(5)])
    expected = sum(w * p for w, p in zip(weights, frames, strict=True)) / weights.sum()
    torch.testing.assert_close(P, expected)
