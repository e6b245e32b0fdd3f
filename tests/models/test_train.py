import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models import SegNet, create_model, load_pretrained
from models.train import (
    FramePool,
    TrainConfig,
    evaluate,
    learning_rate,
    save,
    synthetic_pool,
    train,
)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared, oversubscribed CPU, two OpenMP threads spin-wait 10× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_pool() -> FramePool:
    return synthetic_pool("train", streams=2, frames=3, stride=2, size=(48, 64))


@pytest.fixture(scope="module")
def tiny_val() -> FramePool:
    return synthetic_pool("val", streams=1, frames=2, size=(48, 64))


def test_frame_pool_sample_crops_flips_and_scales(tiny_pool: FramePool) -> None:
    images, labels = tiny_pool.sample(5, (32, 40), torch.Generator().manual_seed(0))
    assert images.shape == (5, 3, 32, 40) and images.dtype == torch.float32
    assert labels.shape == (5, 32, 40) and labels.dtype == torch.int64
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0


def test_frame_pool_sample_refuses_crop_larger_than_frames(tiny_pool: FramePool) -> None:
    with pytest.raises(ValueError, match="smaller --crop"):
        tiny_pool.sample(1, (96, 128), torch.Generator())


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    assert learning_rate(1.0, 0.0) < 0.05
    assert learning_rate(1.0, 0.05) == pytest.approx(1.0)
    assert learning_rate(1.0, 0.5) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.45 / 0.95)))
    assert learning_rate(1.0, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_train_config_wants_steps_or_minutes() -> None:
    with pytest.raises(ValueError, match="exactly one of steps or minutes"):
        TrainConfig()


@pytest.mark.slow
def test_train_short_run_loss_falls(tiny_pool: FramePool, tiny_val: FramePool) -> None:
    model, card = train(
        "unet-ss-mcd",
        steps=20,
        batch_size=4,
        crop=(32, 48),
        lr=1e-2,
        mc_samples=2,
        pools=(tiny_pool, tiny_val),
        progress=False,
    )
    assert card.training["steps_done"] == 20
    assert card.training["loss_end"] < 0.8 * card.training["loss_start"]
    assert not model.training
    assert card.params == sum(p.numel() for p in model.parameters())
    for key in ("miou", "pixel_accuracy", "nll", "ece", "mc2_nll", "mc2_ece"):
        assert math.isfinite(card.metrics[key]), key
    assert card.input_size == (192, 256)


def test_save_writes_safetensors_and_card_that_load_pretrained_reads(tmp_path: Path) -> None:
    from models.card import ModelCard

    torch.manual_seed(0)
    model = create_model("unet").eval()
    card = ModelCard(
        name="unet",
        classes=tuple(f"c{i}" for i in range(8)),
        palette=tuple((i, i, i) for i in range(8)),
        input_size=(192, 256),
        config=model.config,
        metrics={"miou": 0.5},
    )
    weights, _ = save(model, card, tmp_path)
    assert set(load_file(str(weights))) == set(model.state_dict())
    loaded, loaded_card = load_pretrained("unet", tmp_path)
    assert loaded_card == card
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))


def test_evaluate_adds_mc_metrics_only_for_dropout_nets(tiny_val: FramePool) -> None:
    def metrics(name: str) -> dict[str, float]:
        model: SegNet = create_model(name)
        return evaluate(model, tiny_val, mc_samples=2)

    assert "mc2_nll" in metrics("unet-mcd")
    assert "mc2_nll" not in metrics("unet") and "nll" in metrics("unet")


CAMVID_SAMPLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "camvid" / "labelled"


@pytest.mark.skipif(not CAMVID_SAMPLE.is_dir(), reason="the shared CamVid sample is not checked out")
def test_train_main_accepts_a_camvid_folder(tmp_path: Path) -> None:
    from models.train import main

    argv = ["--model", "unet", "--data", str(CAMVID_SAMPLE), "--steps", "2", "--batch-size", "1"]
    assert main([*argv, "--crop", "32x32", "--threads", "1", "--out", str(tmp_path)]) == 0
    _, card = load_pretrained("unet", tmp_path)
    assert card.config.num_classes == 11 and card.classes[0] == "Sky"
    assert card.training["data"].startswith("camvid:")
