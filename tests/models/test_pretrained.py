"""The shipped `unet-ss-mcd` against its own model card, on held-out synthetic test streams."""

from collections.abc import Iterator

import pytest
import torch

from models import load_pretrained
from models.data.synthetic import CLASSES, StreamSpec, generate_stream, split_seeds
from models.train import evaluate, synthetic_pool

# The card's mIoU is measured on val streams; a few test streams scatter around it.
MIOU_MARGIN = 0.05


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared, oversubscribed CPU, two OpenMP threads spin-wait 10× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_pretrained_unet_ss_mcd_reaches_its_card_miou_on_test_streams() -> None:
    model, card = load_pretrained("unet-ss-mcd")
    assert card.classes == CLASSES
    test = synthetic_pool("test", streams=6, frames=6, stride=4)
    metrics = evaluate(model, test)
    assert metrics["miou"] >= card.metrics["miou"] - MIOU_MARGIN, (metrics, card.metrics)
    # Calibration must be measurable: the default model is wrong on at least 5 % of pixels.
    assert metrics["pixel_accuracy"] <= 0.95, metrics


def test_pretrained_cards_agree_with_weights_and_data() -> None:
    for name in ("unet-ss-mcd", "unet-mcd", "unet-ss", "unet"):
        model, card = load_pretrained(name)
        assert card.name == name and card.input_size == (192, 256)
        assert card.params == sum(p.numel() for p in model.parameters())
        assert card.stochastic == name.endswith("mcd")
        assert {"miou", "pixel_accuracy", "nll", "ece"} <= set(card.metrics)
    spec = StreamSpec(seed=split_seeds("test", 1)[0], num_frames=1)
    assert generate_stream(spec).frames.shape == (1, *card.input_size, 3)
