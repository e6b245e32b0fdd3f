"""MC dropout for serving on the CPU: masks cut from a pre-drawn bank instead of drawn per pass.

`MCDropout2d` draws a fresh uniform for every element of every dropped map and then
spends three more passes on compare, multiply and scale. For the shipped net at
192×256 that is about 410 000 elements a pass, 1–1.5 ms on two CPU cores: a third
of what vq-bnn paid over dnn. `PooledMCDropout` instead multiplies the map, in place,
by a window of a bank of scaled keep masks (0 or 1/(1 − p), Bernoulli(1 − p) each),
the window starting at a fresh random offset every pass: one memory pass.

Why it is still MC dropout: every element of a window is an independent Bernoulli
draw, and two passes read the same bank element at the same position only when
their offsets are equal (about 1 chance in 4 million), so the masks of consecutive
frames, which the temporal ensemble averages over, are independent. Layers of one
pass may read overlapping stretches of the bank at shifted positions; nothing in
the net aligns those, so it is immaterial. Batches too large for the bank (an
N-sample bnn request, big frames) and every non-CPU device draw fresh masks.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from models import MCDropout2d, SegNet

BANK_SIZE = 1 << 22  # 16 MiB of float32 masks: windows up to a quarter of it come from the bank


class MaskBank:
    """`size` scaled keep masks in one float32 vector, and a generator of windows into it.

    The generator is seeded from torch's, so `torch.manual_seed` fixes the masks.
    """

    def __init__(self, p: float, size: int = BANK_SIZE) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout p must be in [0, 1), got {p}")
        self.p = p
        self.size = size
        self.max_window = size // 4
        self._rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        keep = self._rng.random(size, dtype=np.float32) >= p
        self.masks = torch.from_numpy(keep.astype(np.float32) / np.float32(1.0 - p))

    def window(self, numel: int) -> torch.Tensor:
        """`numel` consecutive masks from a random offset (a view: read it, never write it)."""
        if numel > self.max_window:
            raise ValueError(f"a window of {numel} masks is over the bank's limit of {self.max_window}")
        start = int(self._rng.integers(0, self.size - numel + 1))
        return self.masks[start : start + numel]

    def fresh(self, numel: int) -> torch.Tensor:
        """`numel` newly drawn masks, for maps too large for a window."""
        keep = self._rng.random(numel, dtype=np.float32) >= self.p
        return torch.from_numpy(keep).to(torch.float32).div_(1.0 - self.p)


class PooledMCDropout(MCDropout2d):
    """`MCDropout2d` whose CPU masks come from a shared `MaskBank`; it scales its input in place.

    In place is safe inside `SegNet.forward`, where every dropout input is a conv
    block's fresh output, and it saves a 0.6 MB allocation per layer; use it only in
    a copy of the net that serves inference (`with_pooled_dropout`), never for training.
    """

    def __init__(self, bank: MaskBank, stochastic: bool = False) -> None:
        super().__init__(bank.p, stochastic)
        self.bank = bank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return x
        dense = x.is_contiguous() or x.is_contiguous(memory_format=torch.channels_last)
        if x.device.type != "cpu" or x.dtype != torch.float32 or not dense:
            return super().forward(x)
        numel = x.numel()
        masks = self.bank.window(numel) if numel <= self.bank.max_window else self.bank.fresh(numel)
        # x's own strides: element i of the bank meets element i of x's memory, no layout copy.
        return x.mul_(masks.as_strided(x.size(), x.stride()))


def with_pooled_dropout(model: SegNet, bank_size: int = BANK_SIZE) -> SegNet:
    """A copy of `model` whose `MCDropout2d` layers share one `MaskBank` (the caller's net is untouched)."""
    model = copy.deepcopy(model)
    layers = [(name, layer) for name, layer in model.named_modules() if type(layer) is MCDropout2d]
    if not layers:
        return model
    rates = {layer.p for _, layer in layers}
    if len(rates) != 1:
        raise ValueError(f"one mask bank needs one dropout rate, got {sorted(rates)}")
    bank = MaskBank(rates.pop(), bank_size)
    for name, layer in layers:
        parent, _, child = name.rpartition(".")
        pooled = PooledMCDropout(bank, layer.stochastic).train(layer.training)
        setattr(model.get_submodule(parent), child, pooled)
    return model
