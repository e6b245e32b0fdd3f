"""Inference backends: one interface, `forward(images, stochastic) -> probabilities on the device`.

`TorchBackend` runs the `SegNet` in inference mode (channels-last and fp16 on
CUDA, optionally `torch.compile`d). `OnnxBackend` runs two ONNX Runtime
sessions, a deterministic and a stochastic export (MC dropout as explicit
random ops, so ORT's dropout elimination cannot remove it); on CUDA it binds
inputs and outputs to device memory so probabilities never cross the host.
Both are driven from one inference thread; neither is thread-safe.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from models import ModelCard, SegNet
from service import uncertainty
from service.config import Settings
from service.fast_dropout import with_pooled_dropout
from service.types import ImageBatch, ProbBatch

log = logging.getLogger(__name__)

DEFAULT_ONNX_CACHE = Path.home() / ".cache" / "streamuq" / "onnx"


class Backend(Protocol):
    """Anything that turns a B×3×h×w batch into B×C×h×w probabilities on `device`."""

    name: str
    device: torch.device
    num_classes: int
    stochastic_capable: bool

    def forward(self, images: ImageBatch, stochastic: bool) -> ProbBatch:
        """B×3×h×w float32 in [0, 1] on `device` → B×C×h×w float32 probabilities on `device`."""
        ...


def resolve_device(device: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without CUDA is an error that says so."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} asked for but CUDA is not available; use 'cpu' or 'auto'")
    return torch.device(device)


def build_backend(settings: Settings, model: SegNet, card: ModelCard) -> Backend:
    """The backend `settings` ask for (torch or onnx, on auto/cpu/cuda) around `model`."""
    device = resolve_device(settings.device)
    if settings.backend == "onnx":
        return OnnxBackend(
            model, card.input_size, device, cache_dir=settings.onnx_cache_dir, threads=settings.threads
        )
    return TorchBackend(model, device, compile=settings.compile)


class TorchBackend:
    """A `SegNet` in eval mode; MC dropout switched on per call for stochastic passes.

    `half` defaults to True on CUDA (fp16 weights and inputs, float32 probabilities out).
    """

    name = "torch"

    def __init__(
        self,
        model: SegNet,
        device: torch.device | str = "cpu",
        *,
        half: bool | None = None,
        channels_last: bool = True,
        compile: bool = False,
    ) -> None:
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.half = cuda if half is None else half
        # Channels-last is faster for these convs on both: cuDNN tensor cores and oneDNN on the CPU
        # (about 30 % on a CPU core for the shipped net at 192×256).
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.dtype = torch.float16 if self.half else torch.float32
        model = with_pooled_dropout(model).eval().to(self.device, dtype=self.dtype)
        self.model = model.to(memory_format=self.memory_format)  # type: ignore[call-overload]
        self.num_classes = model.config.num_classes
        self.stochastic_capable = model.is_stochastic_capable
        self._run: Any = torch.compile(model) if compile else model

    @torch.inference_mode()
    def forward(self, images: ImageBatch, stochastic: bool) -> ProbBatch:
        """B×3×h×w float32 in [0, 1] on the device → B×C×h×w float32 probabilities on the device."""
        self.model.set_stochastic(stochastic)
        try:
            x = images.to(self.dtype).contiguous(memory_format=self.memory_format)
            logits: torch.Tensor = self._run(x)
        finally:
            self.model.set_stochastic(False)
        return uncertainty.softmax(logits).contiguous()


class OnnxBackend:
    """Two ONNX Runtime sessions (deterministic, stochastic) on the CPU or CUDA provider.

    `deterministic_path` / `stochastic_path` are ONNX files with input "images"
    B×3×H×W float32 and output "logits"; missing ones are exported from `model`
    into `cache_dir` on first use (keyed by the weights' hash and the input size).
    """

    name = "onnx"

    def __init__(
        self,
        model: SegNet,
        input_size: tuple[int, int],
        device: torch.device | str = "cpu",
        *,
        deterministic_path: Path | None = None,
        stochastic_path: Path | None = None,
        cache_dir: Path | None = None,
        threads: int = 0,
    ) -> None:
        import onnxruntime as ort

        self.device = torch.device(device)
        self.num_classes = model.config.num_classes
        self.stochastic_capable = model.is_stochastic_capable
        self.input_size = input_size
        cache = cache_dir or DEFAULT_ONNX_CACHE
        if deterministic_path is None:
            deterministic_path = _cached_export(model, cache, stochastic=False, input_size=input_size)
        if stochastic_path is None and self.stochastic_capable:
            stochastic_path = _cached_export(model, cache, stochastic=True, input_size=input_size)

        if self.device.type == "cuda":
            # CPU as the fallback for any node the CUDA provider lacks.
            providers: list[Any] = [
                ("CUDAExecutionProvider", {"device_id": self.device.index or 0}),
                "CPUExecutionProvider",
            ]
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError(
                    "ONNX Runtime has no CUDAExecutionProvider; install onnxruntime-gpu "
                    "(pip install 'streamuq[gpu]') or use device 'cpu'"
                )
        else:
            providers = ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        # Spinning pool threads would fight the inference thread's torch team for the cores
        # (the pre- and post-processing is torch): ORT ran 2.1× torch's dnn time with it, 1.1× without.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self._sessions = {False: ort.InferenceSession(str(deterministic_path), options, providers=providers)}
        if stochastic_path is not None:
            self._sessions[True] = ort.InferenceSession(str(stochastic_path), options, providers=providers)

    def forward(self, images: ImageBatch, stochastic: bool) -> ProbBatch:
        """B×3×h×w float32 in [0, 1] on the device → B×C×h×w float32 probabilities on the device."""
        session = self._sessions.get(stochastic)
        if session is None:
            raise RuntimeError("stochastic forward asked for, but the model has no MC dropout")
        images = images.float().contiguous()
        if self.device.type == "cuda":
            logits = self._run_on_device(session, images)
        else:
            (out,) = session.run(["logits"], {"images": images.numpy()})
            logits = torch.from_numpy(out)
        return uncertainty.softmax(logits).contiguous()

    def _run_on_device(self, session: Any, images: torch.Tensor) -> torch.Tensor:
        # IO binding to torch-owned CUDA memory: no host round trip for inputs or outputs.
        batch, _, height, width = images.shape
        logits = torch.empty(batch, self.num_classes, height, width, device=self.device)
        binding = session.io_binding()
        index = self.device.index or 0
        binding.bind_input("images", "cuda", index, np.float32, tuple(images.shape), images.data_ptr())
        binding.bind_output("logits", "cuda", index, np.float32, tuple(logits.shape), logits.data_ptr())
        torch.cuda.current_stream(self.device).synchronize()  # ORT runs on its own stream
        session.run_with_iobinding(binding)
        return logits


def weights_digest(model: SegNet) -> str:
    """A short hash of the model's config and weights: names the cached ONNX files."""
    digest = hashlib.sha256(repr(model.config).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _cached_export(model: SegNet, cache_dir: Path, *, stochastic: bool, input_size: tuple[int, int]) -> Path:
    from models.export import export_onnx

    height, width = input_size
    kind = "mcd" if stochastic else "det"
    path = cache_dir / f"{weights_digest(model)}-{height}x{width}-{kind}.onnx"
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        log.info("exporting %s ONNX model to %s", kind, path)
        # The exporter traces on the CPU in float32; the caller's model is left as it is.
        cpu_model = copy.deepcopy(model).float().cpu()
        export_onnx(cpu_model, path, stochastic=stochastic, height=height, width=width)
    return path
