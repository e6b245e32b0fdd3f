import math

import pytest
import torch

from service import uncertainty


def _random_probs(*shape: int, generator: torch.Generator) -> torch.Tensor:
    return (torch.randn(*shape, generator=generator) * 2).softmax(dim=1)


def test_entropy_of_uniform_is_log_classes_and_of_one_hot_is_zero() -> None:
    uniform = torch.full((1, 5, 2, 3), 0.2)
    one_hot = torch.zeros(1, 5, 2, 3)
    one_hot[:, 2] = 1.0
    torch.testing.assert_close(uncertainty.entropy(uniform), torch.full((1, 2, 3), math.log(5)))
    torch.testing.assert_close(uncertainty.entropy(one_hot), torch.zeros(1, 2, 3))
    probs = (torch.randn(2, 6, 4, 4) * 40).softmax(dim=1)  # some entries underflow to exactly 0
    assert (probs == 0).any()
    torch.testing.assert_close(uncertainty.entropy(probs), torch.special.entr(probs).sum(dim=1))


@pytest.mark.parametrize("times", [[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 0.4, 2.5, 2.5, 3.1, 7.0]])
def test_ema_update_equals_direct_weighted_sum_with_paper_weights(times: list[float]) -> None:
    # π_k ∝ exp(-|T - t_k| / τ) with τ = 1.25 frames: the VQ-BNN paper's e^{-0.8|t|}.
    gen = torch.Generator().manual_seed(0)
    tau = 1.25
    probs = [_random_probs(2, 4, 3, 5, generator=gen) for _ in times]
    P = torch.zeros(2, 4, 3, 5)
    A = torch.zeros(2, 3, 5)
    W = torch.zeros(2)
    t_last = torch.zeros(2, dtype=torch.float64)
    for t, p in zip(times, probs, strict=True):
        t_now = torch.full((2,), t, dtype=torch.float64)
        a = uncertainty.decay(t_now, t_last, torch.full((2,), tau, dtype=torch.float64))
        P, A, W = uncertainty.ema_update(P, A, a * W, p, uncertainty.entropy(p))
        t_last = t_now

    last = times[-1]
    weights = torch.tensor([math.exp(-0.8 * abs(last - t)) for t in times])
    weights = weights / weights.sum()
    expected_P = sum(w * p for w, p in zip(weights, probs, strict=True))
    expected_A = sum(w * uncertainty.entropy(p) for w, p in zip(weights, probs, strict=True))
    assert isinstance(expected_P, torch.Tensor) and isinstance(expected_A, torch.Tensor)
    torch.testing.assert_close(P, expected_P, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(A, expected_A, atol=1e-6, rtol=1e-5)
    expected_W = sum(math.exp(-0.8 * (last - t)) for t in times)
    torch.testing.assert_close(W, torch.full((2,), expected_W), atol=1e-5, rtol=1e-5)


def test_ema_update_with_zero_weight_starts_afresh() -> None:
    gen = torch.Generator().manual_seed(1)
    old = _random_probs(3, 4, 2, 2, generator=gen)
    new = _random_probs(3, 4, 2, 2, generator=gen)
    P, A, W = uncertainty.ema_update(old, torch.ones(3, 2, 2), torch.zeros(3), new, uncertainty.entropy(new))
    torch.testing.assert_close(P, new)
    torch.testing.assert_close(A, uncertainty.entropy(new))
    torch.testing.assert_close(W, torch.ones(3))


def test_output_maps_total_is_aleatoric_plus_epistemic_and_epistemic_nonnegative() -> None:
    gen = torch.Generator().manual_seed(2)
    P = torch.zeros(4, 6, 8, 8)
    A = torch.zeros(4, 8, 8)
    W = torch.zeros(4)
    for _ in range(7):
        p = _random_probs(4, 6, 8, 8, generator=gen)
        P, A, W = uncertainty.ema_update(P, A, 0.45 * W, p, uncertainty.entropy(p))
    maps = uncertainty.output_maps(P, A)
    # Jensen: the ensemble's entropy is never below its members' mean entropy.
    assert (uncertainty.entropy(P) - A).min() > -1e-5
    assert (maps.epistemic >= 0).all()
    assert maps.epistemic.max() > 0.01  # disagreeing members: real mutual information
    torch.testing.assert_close(maps.entropy, maps.aleatoric + maps.epistemic, atol=1e-5, rtol=0)
    torch.testing.assert_close(maps.confidence, P.max(dim=1).values)
    assert maps.mask.shape == (4, 8, 8)
    assert torch.equal(maps.mask, P.argmax(dim=1))


def test_total_variation_is_zero_for_equal_and_one_for_disjoint_predictions() -> None:
    a = torch.zeros(2, 3, 4, 4)
    a[:, 0] = 1.0
    b = torch.zeros(2, 3, 4, 4)
    b[:, 2] = 1.0
    torch.testing.assert_close(uncertainty.total_variation(a, a), torch.zeros(2))
    torch.testing.assert_close(uncertainty.total_variation(a, b), torch.ones(2))


def test_softmax_returns_float32_probabilities_from_half_logits() -> None:
    probs = uncertainty.softmax(torch.randn(2, 5, 3, 3).half())
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, 3, 3))


def test_strided_total_variation_sees_a_scene_cut_as_the_full_one_does() -> None:
    torch.manual_seed(3)
    before = torch.rand(2, 4, 64, 96).softmax(dim=1)
    after = torch.rand(2, 4, 64, 96).mul(6).softmax(dim=1)  # another scene: sharper, elsewhere
    full = uncertainty.total_variation(before, after)
    strided = uncertainty.total_variation(before, after, stride=4)
    torch.testing.assert_close(strided, full, atol=0.01, rtol=0)  # 384 of 6144 pixels
    assert bool((full > 0.2).all())  # a real cut, far above the noise of the estimate
