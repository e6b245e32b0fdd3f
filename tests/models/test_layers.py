import pytest
import torch

from models.layers import MCDropout2d, SpatialSmoothing


def test_spatial_smoothing_matches_hand_computed_box_blur() -> None:
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]).view(1, 1, 2, 3)
    out = SpatialSmoothing(temperature=10.0)(x)
    t = 10.0 * torch.tanh(x / 10.0)  # all positive, so the ReLU keeps them
    # output[i, j] = mean of the 2×2 window ending at (i, j), zeros outside the map.
    expected = torch.stack(
        [
            torch.stack(
                [t[0, 0, 0, 0] / 4, (t[0, 0, 0, 0] + t[0, 0, 0, 1]) / 4, (t[0, 0, 0, 1] + t[0, 0, 0, 2]) / 4]
            ),
            torch.stack(
                [
                    (t[0, 0, 0, 0] + t[0, 0, 1, 0]) / 4,
                    t[0, 0, :, 0:2].sum() / 4,
                    t[0, 0, :, 1:3].sum() / 4,
                ]
            ),
        ]
    ).view(1, 1, 2, 3)
    assert out.shape == x.shape
    torch.testing.assert_close(out, expected)


def test_spatial_smoothing_clips_and_rectifies() -> None:
    x = torch.tensor([-50.0, 1000.0]).view(1, 1, 1, 2)
    out = SpatialSmoothing(temperature=10.0)(x)
    # -50 → ReLU → 0; 1000 → 10·tanh(100) ≈ 10; windows: [0]/4 and (0 + 10)/4.
    torch.testing.assert_close(out, torch.tensor([0.0, 2.5]).view(1, 1, 1, 2))


def test_mc_dropout_keep_ratio_when_stochastic() -> None:
    torch.manual_seed(0)
    layer = MCDropout2d(p=0.3, stochastic=True).eval()
    out = layer(torch.ones(4, 8, 64, 64))
    kept = (out > 0).float().mean().item()
    assert kept == pytest.approx(0.7, abs=0.01)
    # Inverted dropout keeps the expectation.
    assert out.mean().item() == pytest.approx(1.0, abs=0.02)


def test_mc_dropout_is_identity_when_switched_off_in_eval() -> None:
    layer = MCDropout2d(p=0.5, stochastic=False).eval()
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(layer(x), x)


def test_mc_dropout_switch_is_independent_of_eval() -> None:
    layer = MCDropout2d(p=0.5, stochastic=True)
    layer.eval()
    x = torch.ones(1, 1, 32, 32)
    assert not torch.equal(layer(x), x)


def test_mc_dropout_refuses_bad_rate() -> None:
    with pytest.raises(ValueError, match="p must be in"):
        MCDropout2d(p=1.0)
