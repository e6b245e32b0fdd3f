import pytest
import torch

from models import MODEL_CONFIGS, create_model
from models.layers import MCDropout2d, SpatialSmoothing


@pytest.mark.parametrize("size", [(64, 64), (37, 53), (96, 128)])
def test_segnet_logits_have_input_size(size: tuple[int, int]) -> None:
    model = create_model("unet-ss-mcd").eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, *size))
    assert logits.shape == (2, model.config.num_classes, *size)


def test_registry_builds_the_four_shipped_shapes() -> None:
    built = {name: create_model(name) for name in MODEL_CONFIGS}
    assert set(built) == {"unet-ss-mcd", "unet-mcd", "unet-ss", "unet"}
    for name, model in built.items():
        has_smoothing = any(isinstance(m, SpatialSmoothing) for m in model.modules())
        has_dropout = any(isinstance(m, MCDropout2d) for m in model.modules())
        assert has_smoothing == ("-ss" in name), name
        assert has_dropout == name.endswith("mcd"), name


def test_segnet_stochastic_switch_changes_eval_outputs() -> None:
    torch.manual_seed(0)
    model = create_model("unet-ss-mcd").eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.set_stochastic(True)
        assert not torch.equal(model(x), model(x))


def test_create_model_refuses_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet'"):
        create_model("resnet")
