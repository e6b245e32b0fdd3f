from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from models import SegNet, create_model
from models.export import (
    INPUT_NAME,
    OUTPUT_NAME,
    ExportCheckError,
    check_export,
    export_onnx,
    main,
    onnx_filename,
    ort_session,
)

pytestmark = pytest.mark.slow
HEIGHT, WIDTH = 48, 64


def _lively_model(name: str) -> SegNet:
    """A net whose dropout visibly changes the output: default init shrinks activations layer by layer."""
    torch.manual_seed(0)
    model = create_model(name)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight)
    return model.eval()


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One intra-op thread: on a shared, oversubscribed CPU, two OpenMP threads spin-wait 10× slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def mcd_model() -> SegNet:
    return _lively_model("unet-ss-mcd")


@pytest.fixture(scope="module")
def stochastic_onnx(mcd_model: SegNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "s.onnx"
    return export_onnx(mcd_model, path, stochastic=True, height=HEIGHT, width=WIDTH)


@pytest.fixture(scope="module")
def deterministic_onnx(mcd_model: SegNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "d.onnx"
    return export_onnx(mcd_model, path, stochastic=False, height=HEIGHT, width=WIDTH)


def _ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_export_onnx_deterministic_matches_torch_at_other_sizes(
    mcd_model: SegNet, deterministic_onnx: Path
) -> None:
    assert "RandomUniformLike" not in _ops(deterministic_onnx)
    session = ort_session(deterministic_onnx, threads=1)
    for shape in [(1, 3, HEIGHT, WIDTH), (3, 3, 37, 53), (2, 3, 96, 128)]:
        images = torch.rand(shape)
        with torch.no_grad():
            expected = mcd_model(images).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_export_onnx_leaves_callers_model_untouched(mcd_model: SegNet, stochastic_onnx: Path) -> None:
    assert not mcd_model.training
    assert all(not getattr(m, "stochastic", False) for m in mcd_model.modules())


def test_export_onnx_random_op_survives_ort_enable_all(stochastic_onnx: Path, tmp_path: Path) -> None:
    optimized = tmp_path / "optimized.onnx"
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(optimized)
    ort.InferenceSession(str(stochastic_onnx), options, providers=["CPUExecutionProvider"])
    random_ops = [n for n in onnx.load(str(optimized)).graph.node if n.op_type == "RandomUniformLike"]
    assert len(random_ops) == 5  # encoder stages 3, 4, bottleneck and two decoder stages


def test_check_export_stochastic_runs_differ_and_mc_mean_matches(
    mcd_model: SegNet, stochastic_onnx: Path
) -> None:
    check = check_export(mcd_model, stochastic_onnx, stochastic=True, height=HEIGHT, width=WIDTH, threads=1)
    assert check.stochastic_runs_differ
    assert check.mc_noise_ratio is not None and 0.5 < check.mc_noise_ratio <= 1.5
    assert check.mc_mean_abs_diff is not None and check.mc_mean_abs_diff < 0.02


def test_check_export_rejects_a_graph_with_another_dropout_rate(
    mcd_model: SegNet, stochastic_onnx: Path
) -> None:
    # Same weights, dropout 0.1 instead of 0.3: the tolerance must have the power to tell.
    other = SegNet(replace(mcd_model.config, dropout=0.1))
    other.load_state_dict(mcd_model.state_dict())
    with pytest.raises(ExportCheckError, match="sampling noise"):
        check_export(other, stochastic_onnx, stochastic=True, height=HEIGHT, width=WIDTH, threads=1)


def test_export_onnx_refuses_stochastic_without_dropout(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--deterministic"):
        export_onnx(create_model("unet"), tmp_path / "x.onnx", stochastic=True, height=32, width=32)


def test_export_main_writes_and_checks_the_named_flavour(tmp_path: Path) -> None:
    argv = ["--model", "unet", "--deterministic", "--untrained", "--out", str(tmp_path)]
    assert main([*argv, "--height", "32", "--width", "48"]) == 0
    path = tmp_path / onnx_filename("unet", stochastic=False)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert meta["streamuq.stochastic"] == "false"
    assert meta["streamuq.input_size"] == "[32, 48]"
