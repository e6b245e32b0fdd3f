from pathlib import Path

import pytest
import torch
from tiny_model import informative_tiny_model

from service.backends import OnnxBackend, TorchBackend, resolve_device

SIZE = (32, 48)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


_model = informative_tiny_model


# Exporting with torch's dynamo exporter takes tens of seconds on a shared CPU.
onnx_slow = pytest.mark.slow


@pytest.fixture(scope="module")
def onnx_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[TorchBackend, OnnxBackend, Path]:
    pytest.importorskip("models.export")
    cache = tmp_path_factory.mktemp("onnx")
    model = _model()
    return TorchBackend(model), OnnxBackend(model, SIZE, cache_dir=cache), cache


def test_torch_backend_returns_probabilities_on_its_device() -> None:
    backend = TorchBackend(_model())
    x = torch.rand(2, 3, *SIZE)
    probs = backend.forward(x, stochastic=False)
    plain = TorchBackend(_model(), channels_last=False).forward(x, stochastic=False)
    torch.testing.assert_close(probs, plain, atol=1e-5, rtol=1e-4)
    assert probs.shape == (2, 8, *SIZE) and probs.dtype == torch.float32
    assert probs.device == backend.device
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2, *SIZE))


def test_torch_backend_stochastic_only_when_asked() -> None:
    backend = TorchBackend(_model())
    x = torch.rand(1, 3, *SIZE)
    assert torch.equal(backend.forward(x, False), backend.forward(x, False))
    assert not torch.equal(backend.forward(x, True), backend.forward(x, True))
    assert torch.equal(backend.forward(x, False), backend.forward(x, False))  # switched back off


def test_resolve_device_refuses_cuda_without_cuda() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(RuntimeError, match="CUDA is not available; use 'cpu'"):
            resolve_device("cuda")


@onnx_slow
def test_onnx_backend_matches_torch_deterministic(onnx_pair: tuple[TorchBackend, OnnxBackend, Path]) -> None:
    torch_backend, onnx_backend, _ = onnx_pair
    x = torch.rand(3, 3, *SIZE, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        onnx_backend.forward(x, False), torch_backend.forward(x, False), atol=1e-5, rtol=1e-4
    )


@onnx_slow
def test_onnx_backend_stochastic_matches_torch_in_distribution(
    onnx_pair: tuple[TorchBackend, OnnxBackend, Path],
) -> None:
    torch_backend, onnx_backend, _ = onnx_pair
    torch.manual_seed(1)
    x = torch.rand(1, 3, *SIZE).expand(64, -1, -1, -1)  # 64 samples of one frame in one pass
    ort_samples = onnx_backend.forward(x, True)
    torch_samples = torch_backend.forward(x, True)
    assert not torch.equal(ort_samples[0], ort_samples[1])  # dropout survived the export
    assert not torch.equal(onnx_backend.forward(x[:1], True), onnx_backend.forward(x[:1], True))
    deterministic = torch_backend.forward(x[:1], False)[0]
    spread = (torch_samples - torch_samples.mean(0)).pow(2).mean().sqrt()
    gap = (ort_samples.mean(0) - torch_samples.mean(0)).pow(2).mean().sqrt()
    # Two 64-sample means of one distribution differ by about sqrt(2/64)·spread ≈ 0.18·spread.
    assert gap < 0.3 * spread
    assert (ort_samples.mean(0) - deterministic).pow(2).mean().sqrt() > gap  # samples really vary


@onnx_slow
def test_onnx_backend_exports_once_into_its_cache(onnx_pair: tuple[TorchBackend, OnnxBackend, Path]) -> None:
    _, _, cache = onnx_pair
    files = sorted(cache.glob("*.onnx"))
    assert [f.name.rsplit("-", 1)[-1] for f in files] == ["det.onnx", "mcd.onnx"]
    stamps = [f.stat().st_mtime_ns for f in files]
    OnnxBackend(_model(), SIZE, cache_dir=cache)  # same weights: reuses the files
    assert [f.stat().st_mtime_ns for f in files] == stamps


@pytest.mark.cuda
@needs_cuda
def test_torch_backend_fp16_cuda_close_to_cpu() -> None:
    model = _model()
    x = torch.rand(2, 3, *SIZE)
    cpu = TorchBackend(model).forward(x, False)
    gpu = TorchBackend(_model(), "cuda")
    assert gpu.half and gpu.memory_format == torch.channels_last
    probs = gpu.forward(x.cuda(), False)
    assert probs.is_cuda and probs.dtype == torch.float32
    torch.testing.assert_close(probs.cpu(), cpu, atol=5e-3, rtol=0)


@pytest.mark.cuda
@needs_cuda
def test_onnx_backend_cuda_keeps_probabilities_on_the_device(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime has no CUDA provider (install onnxruntime-gpu)")
    pytest.importorskip("models.export")
    x = torch.rand(2, 3, *SIZE)
    cpu = TorchBackend(_model()).forward(x, False)
    backend = OnnxBackend(_model(), SIZE, "cuda", cache_dir=tmp_path)
    probs = backend.forward(x.cuda(), False)
    assert probs.is_cuda
    torch.testing.assert_close(probs.cpu(), cpu, atol=1e-4, rtol=1e-3)
    stochastic = backend.forward(x.cuda(), True)
    assert stochastic.is_cuda and not torch.equal(stochastic, backend.forward(x.cuda(), True))
