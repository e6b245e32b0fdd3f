"""ONNX export of the segmentation nets, deterministic or with MC dropout kept stochastic.

The graph maps `"images"` (B×3×H×W float32 in [0, 1]; batch, height and width
dynamic) to `"logits"` (B×C×H×W float32). In the stochastic flavour each
`MCDropout2d` draws its mask with `RandomUniformLike`, a random op, not ONNX
`Dropout`: ONNX Runtime's `EliminateDropout` rewrite (on by default) removes
`Dropout` nodes from inference graphs but leaves random ops alone, and neither
torch's exporter nor ORT's constant folding folds a random op. `check_export`
proves it after every export: two ORT runs of the same input differ, and the
mean of many ORT samples matches torch's MC mean.

Usage: `streamuq export --model unet-ss-mcd --both` (writes
`exports/unet-ss-mcd.stochastic.onnx` and `exports/unet-ss-mcd.deterministic.onnx`).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from models.registry import MODEL_CONFIGS, WEIGHTS_DIR, create_model, load_pretrained
from models.segnet import SegNet

INPUT_NAME = "images"
OUTPUT_NAME = "logits"
DEFAULT_OUT = Path("exports")
DEFAULT_HEIGHT, DEFAULT_WIDTH = 192, 256
# Deterministic ORT logits must equal torch's to this absolute tolerance.
DETERMINISTIC_ATOL = 1e-4
# Two Monte-Carlo means of n samples from the same distribution differ, per element,
# by noise of variance (s_a² + s_b²)/n. The RMS of the observed difference divided by
# the RMS of that predicted noise is ~1 when ORT samples the same distribution as torch
# (averaged over ~10⁵ correlated elements it rarely leaves [0.8, 1.2]); a graph that lost
# its dropout, or scaled the kept units wrongly, gives a ratio of several. 1.5 is the bound.
MC_NOISE_RATIO_MAX = 1.5
MC_SAMPLES = 64


class ExportCheckError(RuntimeError):
    """The ONNX Runtime run of an exported graph disagrees with torch."""


def onnx_filename(name: str, *, stochastic: bool) -> str:
    """`unet-ss-mcd.stochastic.onnx` or `unet-ss-mcd.deterministic.onnx`."""
    return f"{name}.{'stochastic' if stochastic else 'deterministic'}.onnx"


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's deprecation chatter and 'torchvision is not installed' log lines."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def _prepared(model: SegNet, stochastic: bool) -> SegNet:
    """An eval-mode copy with MC dropout switched as asked: the caller's model is not touched."""
    if stochastic and not model.is_stochastic_capable:
        raise ValueError(
            f"a stochastic export needs a model with MC dropout (dropout={model.config.dropout}); "
            "export it with stochastic=False (`--deterministic`) or pick a model ending in -mcd"
        )
    prepared = copy.deepcopy(model).cpu().eval()
    prepared.set_stochastic(stochastic)
    return prepared


def export_onnx(model: SegNet, path: Path, *, stochastic: bool, height: int, width: int) -> Path:
    """Write `model` as ONNX to `path` (traced at 1×3×height×width) and return `path`.

    Input `"images"` B×3×H×W float32 in [0, 1], output `"logits"` B×C×H×W; B, H and W
    are dynamic (the net pads to a multiple of 16 inside the graph).
    """
    if height < 16 or width < 16:
        raise ValueError(f"trace size must be at least 16×16, got {height}×{width}")
    prepared = _prepared(model, stochastic)
    example = torch.rand(1, 3, height, width)
    dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with _quiet_exporter():
        program = torch.onnx.export(
            prepared,
            (example,),
            dynamo=True,
            verbose=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_shapes={INPUT_NAME: dims},
        )
    if program is None:  # only the legacy exporter returns None
        raise RuntimeError("torch.onnx.export returned no program; torch >= 2.6 is needed")
    program.save(str(path))
    _add_metadata(path, prepared, stochastic=stochastic, height=height, width=width)
    return path


def _add_metadata(path: Path, model: SegNet, *, stochastic: bool, height: int, width: int) -> None:
    proto = onnx.load(str(path))
    meta = {
        "streamuq.stochastic": json.dumps(stochastic),
        "streamuq.num_classes": str(model.config.num_classes),
        "streamuq.input_size": json.dumps([height, width]),
        "streamuq.dropout": str(model.config.dropout),
        "streamuq.smoothing": json.dumps(model.config.smoothing),
    }
    for key, value in meta.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.save(proto, str(path))


def ort_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU session with every graph optimisation on (ORT_ENABLE_ALL), as a server would run it."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class ExportCheck:
    """What `check_export` measured; `mc_noise_ratio` is None for deterministic graphs.

    `max_abs_diff`: of the logits (deterministic) or of the two MC-mean softmax maps (stochastic).
    """

    max_abs_diff: float
    stochastic_runs_differ: bool | None = None
    mc_noise_ratio: float | None = None
    mc_mean_abs_diff: float | None = None

    def summary(self) -> str:
        if self.mc_noise_ratio is None:
            return f"max |ORT - torch| logits = {self.max_abs_diff:.2e} (<= {DETERMINISTIC_ATOL})"
        return (
            f"two runs differ: {self.stochastic_runs_differ}; MC mean of {MC_SAMPLES} softmax, ORT vs "
            f"torch: mean |Δp| = {self.mc_mean_abs_diff:.2e}, max |Δp| = {self.max_abs_diff:.2e}, "
            f"RMS Δp / sampling noise = {self.mc_noise_ratio:.2f} (<= {MC_NOISE_RATIO_MAX})"
        )


def _softmax_samples(
    run: Callable[[np.ndarray], np.ndarray], images: np.ndarray, samples: int, chunk: int
) -> np.ndarray:
    """`samples` stochastic softmax outputs of one 1×3×H×W image, stacked S×C×H×W."""
    outputs: list[np.ndarray] = []
    done = 0
    while done < samples:
        n = min(chunk, samples - done)
        batch = np.repeat(images, n, axis=0)
        logits = run(batch)
        outputs.append(torch.softmax(torch.from_numpy(np.asarray(logits)), dim=1).numpy())
        done += n
    return np.concatenate(outputs, axis=0)


def check_export(
    model: SegNet,
    path: Path,
    *,
    stochastic: bool,
    height: int,
    width: int,
    samples: int = MC_SAMPLES,
    seed: int = 0,
    threads: int = 0,
) -> ExportCheck:
    """Run the exported graph in ONNX Runtime (ORT_ENABLE_ALL) against torch; raise if they disagree.

    Deterministic: logits equal within `DETERMINISTIC_ATOL` on a 2×3×height×width batch.
    Stochastic (on one 1×3×height×width image): two ORT runs differ, and the mean of
    `samples` ORT softmax outputs matches torch's MC mean of `samples` within
    `MC_NOISE_RATIO_MAX` times the sampling noise of the two means. `threads`: ORT
    intra-op threads (0: ORT's default, one per core).
    """
    generator = torch.Generator().manual_seed(seed)
    session = ort_session(path, threads)
    prepared = _prepared(model, stochastic)
    if not stochastic:
        images = torch.rand(2, 3, height, width, generator=generator)
        with torch.no_grad():
            expected = prepared(images).numpy()
        got = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: images.numpy()})[0])
        diff = float(np.abs(got - expected).max())
        if got.shape != expected.shape or diff > DETERMINISTIC_ATOL:
            raise ExportCheckError(
                f"{path}: ORT logits {got.shape} differ from torch {expected.shape} by {diff:.2e} "
                f"(> {DETERMINISTIC_ATOL}); re-export with a current torch/onnxruntime"
            )
        return ExportCheck(max_abs_diff=diff)

    image = torch.rand(1, 3, height, width, generator=generator)
    first = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: image.numpy()})[0])
    second = np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: image.numpy()})[0])
    differ = not np.array_equal(first, second)
    if not differ:
        raise ExportCheckError(
            f"{path}: two ORT runs of the stochastic graph are identical: the dropout mask was "
            "removed or constant-folded; export with stochastic=True from a model with dropout > 0"
        )

    def run_ort(batch: np.ndarray) -> np.ndarray:
        return np.asarray(session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0])

    def run_torch(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits: np.ndarray = prepared(torch.from_numpy(batch)).numpy()
        return logits

    chunk = 16
    ort_probs = _softmax_samples(run_ort, image.numpy(), samples, chunk)
    torch_probs = _softmax_samples(run_torch, image.numpy(), samples, chunk)
    delta = ort_probs.mean(axis=0) - torch_probs.mean(axis=0)
    noise_var = (ort_probs.var(axis=0, ddof=1) + torch_probs.var(axis=0, ddof=1)) / samples
    ratio = float(np.sqrt(np.mean(delta**2)) / max(np.sqrt(np.mean(noise_var)), 1e-12))
    check = ExportCheck(
        max_abs_diff=float(np.abs(delta).max()),
        stochastic_runs_differ=differ,
        mc_noise_ratio=ratio,
        mc_mean_abs_diff=float(np.abs(delta).mean()),
    )
    if ratio > MC_NOISE_RATIO_MAX:
        raise ExportCheckError(
            f"{path}: the MC mean of {samples} ORT samples is off torch's by {ratio:.2f}× the "
            f"sampling noise (> {MC_NOISE_RATIO_MAX}): the exported dropout samples another "
            "distribution; check MCDropout2d's export"
        )
    return check


def _parse_size(text: str) -> int:
    value = int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"size must be >= 16, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamuq export", description="Export a model to ONNX and check it with ONNX Runtime."
    )
    parser.add_argument("--model", default="unet-ss-mcd", help=f"one of {sorted(MODEL_CONFIGS)} or 'all'")
    flavour = parser.add_mutually_exclusive_group()
    flavour.add_argument("--stochastic", dest="flavour", action="store_const", const="stochastic")
    flavour.add_argument("--deterministic", dest="flavour", action="store_const", const="deterministic")
    flavour.add_argument("--both", dest="flavour", action="store_const", const="both")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default exports/)")
    parser.add_argument("--height", type=_parse_size, default=DEFAULT_HEIGHT)
    parser.add_argument("--width", type=_parse_size, default=DEFAULT_WIDTH)
    parser.add_argument("--weights", type=Path, default=WEIGHTS_DIR, help="folder of .safetensors + .json")
    parser.add_argument(
        "--untrained", action="store_true", help="export a randomly initialised net (no weights needed)"
    )
    return parser


def _flavours(model: SegNet, requested: str | None, explicit: bool) -> list[bool]:
    """Which flavours to export: the default is stochastic for MC-dropout nets, else deterministic."""
    if requested == "both":
        return [False, True] if model.is_stochastic_capable else [False]
    if requested == "stochastic":
        if not model.is_stochastic_capable and not explicit:
            return []  # `--model all --stochastic` skips the DNN baselines
        return [True]
    if requested == "deterministic":
        return [False]
    return [model.is_stochastic_capable]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    names = sorted(MODEL_CONFIGS) if args.model == "all" else [args.model]
    for name in names:
        if args.untrained:
            torch.manual_seed(0)
            model = create_model(name)
        else:
            model, _ = load_pretrained(name, args.weights)
        for stochastic in _flavours(model, args.flavour, explicit=args.model != "all"):
            path = args.out / onnx_filename(name, stochastic=stochastic)
            export_onnx(model, path, stochastic=stochastic, height=args.height, width=args.width)
            check = check_export(model, path, stochastic=stochastic, height=args.height, width=args.width)
            print(f"{path}: {check.summary()}")
    return 0
