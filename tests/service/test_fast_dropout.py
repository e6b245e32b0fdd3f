import pytest
import torch
from tiny_model import informative_tiny_model

from models import MCDropout2d
from service.fast_dropout import MaskBank, PooledMCDropout, with_pooled_dropout


def _maps(shape: tuple[int, ...] = (4, 16, 64, 64)) -> torch.Tensor:
    return (torch.rand(shape) + 0.5).contiguous(memory_format=torch.channels_last)


def test_bank_masks_are_scaled_bernoulli_keeps() -> None:
    torch.manual_seed(0)
    bank = MaskBank(0.3, size=1 << 16)
    values = bank.masks.unique().tolist()
    assert values == [0.0, pytest.approx(1 / 0.7)]
    assert abs((bank.masks != 0).float().mean().item() - 0.7) < 0.006  # 65 536 draws: sd 0.0018


def test_pooled_dropout_keeps_mc_dropouts_distribution_and_layout() -> None:
    torch.manual_seed(0)
    layer = PooledMCDropout(MaskBank(0.3, size=1 << 20), stochastic=True).eval()
    x = _maps()
    out = layer(x.clone())
    kept = out != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # 65 536 draws: sd 0.0018
    torch.testing.assert_close(out[kept], x[kept] / 0.7, rtol=1e-6, atol=0)
    assert out.is_contiguous(memory_format=torch.channels_last)  # no layout change for the next conv
    assert torch.equal(PooledMCDropout(MaskBank(0.3, 1024)).eval()(x), x)  # off: the identity


def test_masks_of_successive_passes_are_independent() -> None:
    # The temporal ensemble averages passes: the same window twice would make it a no-op.
    torch.manual_seed(1)
    layer = PooledMCDropout(MaskBank(0.3, size=1 << 20), stochastic=True).eval()
    x = _maps((1, 16, 64, 64))
    first, second = layer(x.clone()) != 0, layer(x.clone()) != 0
    assert not torch.equal(first, second)
    both = (first & second).float().mean().item()
    assert abs(both - 0.49) < 0.02  # independent keeps: 0.7²; the same mask would give 0.7


def test_maps_larger_than_a_window_get_fresh_masks() -> None:
    torch.manual_seed(2)
    bank = MaskBank(0.5, size=4096)  # windows up to 1024 elements
    x = _maps((2, 8, 16, 16))  # 4096 elements: drawn afresh, not cut from the bank
    out = PooledMCDropout(bank, stochastic=True).eval()(x.clone())
    assert abs((out != 0).float().mean().item() - 0.5) < 0.04  # 4096 draws: sd 0.008
    with pytest.raises(ValueError, match="over the bank's limit"):
        bank.window(1025)


def test_half_precision_maps_use_mc_dropout_itself() -> None:
    layer = PooledMCDropout(MaskBank(0.3, size=1 << 16), stochastic=True).eval()
    x = _maps((1, 8, 16, 16)).half()
    before = x.clone()
    out = layer(x)
    assert out.dtype == torch.float16
    assert torch.equal(x, before)  # MCDropout2d's path: out of place, unlike the bank's
    assert 0.5 < (out != 0).float().mean().item() < 0.9  # 2048 draws of keep 0.7


def test_with_pooled_dropout_swaps_layers_shares_a_bank_and_follows_torch_seed() -> None:
    model = informative_tiny_model()
    torch.manual_seed(7)
    fast = with_pooled_dropout(model)
    torch.manual_seed(7)
    again = with_pooled_dropout(model)
    pooled = [m for m in fast.modules() if isinstance(m, PooledMCDropout)]
    assert len(pooled) == 5 and len({id(m.bank) for m in pooled}) == 1
    assert not any(isinstance(m, PooledMCDropout) for m in model.modules())  # the original is untouched
    x = torch.rand(2, 3, 32, 48)
    fast.set_stochastic(True)
    again.set_stochastic(True)
    with torch.no_grad():
        assert torch.equal(fast(x), again(x))
        fast.set_stochastic(False)
        torch.testing.assert_close(fast(x), model(x))  # deterministic: the same net


def test_one_bank_needs_one_dropout_rate() -> None:
    net = torch.nn.Sequential(MCDropout2d(0.3), MCDropout2d(0.5))
    with pytest.raises(ValueError, match="one dropout rate"):
        with_pooled_dropout(net)  # type: ignore[arg-type]
