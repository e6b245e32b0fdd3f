"""The uncertainty-quality table of the VQ-BNN paper (Park et al., AAAI 2021) on held-out synthetic streams.

Methods, each with and without spatial smoothing (Park & Kim, ICML 2022):

- DNN: one deterministic pass (`unet`, `unet-ss`).
- BNN-N: N MC-dropout passes averaged, N = 1, 2, 5, 10, 30 (`unet-mcd`, `unet-ss-mcd`).
- VQ-DNN: the deterministic pass + the temporal EMA (τ = 1.25 frames).
- VQ-BNN: ONE MC-dropout pass + the temporal EMA.

The VQ methods run the serving code's own pure functions (`service.uncertainty`).
For speed the BNN-N estimates of a frame share their samples (BNN-5 is the mean of
the first 5 of BNN-30's passes) and VQ-BNN uses the first of them: every estimate
is still an unbiased draw of its method. Cost (frames/s) is measured separately,
in the same run, by running each method on its own, one frame at a time.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks import plots, regimes, report
from benchmarks.estimators import (
    Stream,
    TemporalState,
    bnn_maps,
    deterministic_probs,
    mc_probs,
    test_streams,
    to_batch,
)
from benchmarks.uq_metrics import SegmentationAccumulator
from models import SegNet
from service import uncertainty as U

ModelLoader = Callable[[str], SegNet]


@dataclass(frozen=True)
class Family:
    """A deterministic net and its MC-dropout twin, with or without spatial smoothing."""

    smoothing: bool
    dnn: str
    bnn: str


FAMILIES = (Family(False, "unet", "unet-mcd"), Family(True, "unet-ss", "unet-ss-mcd"))
ALL_CORRUPTIONS = ("gaussian_noise", "blur", "fog", "brightness", "contrast", "jpeg")


@dataclass(frozen=True)
class QualityConfig:
    streams: int = 8  # clean held-out test streams
    ood_streams: int = 4  # further test streams with the unknown object
    frames: int = 60
    height: int = 192
    width: int = 256
    samples: tuple[int, ...] = (1, 2, 5, 10, 30)
    tau: float = 1.25  # frames
    tau_sweep: tuple[float, ...] = (0.5, 2.5, 5.0)  # further τ for the VQ methods: no extra passes
    chunk: int = 2  # frames per forward call
    max_batch: int = 32  # images per forward call (MC samples are batched)
    timing_frames: int = 6  # frames each method is timed on (after one warm-up frame)
    shift_corruptions: tuple[str, ...] = ALL_CORRUPTIONS
    shift_severities: tuple[int, ...] = (1, 3, 5)
    shift_streams: int = 2
    shift_frames: int = 20
    families: tuple[Family, ...] = FAMILIES
    seed: int = 0  # torch seed for the dropout masks
    regimes: regimes.RegimeConfig | None = field(default_factory=regimes.RegimeConfig)

    @classmethod
    def quick(cls) -> QualityConfig:
        return cls(
            streams=2,
            ood_streams=1,
            frames=10,
            timing_frames=5,
            shift_corruptions=("gaussian_noise", "fog"),
            shift_streams=1,
            shift_frames=4,
            regimes=regimes.RegimeConfig.quick(),
        )

    @property
    def bnn_max(self) -> int:
        return max(self.samples)


@dataclass
class Method:
    name: str  # "DNN", "BNN-5", "VQ-BNN", ...
    model: str
    smoothing: bool
    passes: int  # forward passes a frame
    temporal: bool
    accumulator: SegmentationAccumulator
    fps: float = float("nan")
    frame_ms: list[float] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name}{' +SS' if self.smoothing else ''}"

    @property
    def has_epistemic(self) -> bool:
        return self.temporal or (self.name.startswith("BNN") and self.passes > 1)


# --------------------------------------------------------------------------- the run


@dataclass
class QualityResult:
    config: QualityConfig
    methods: list[Method]
    shift: list[dict[str, Any]]
    example: dict[str, Any]
    seconds: float
    sweep: dict[tuple[str, bool, float], SegmentationAccumulator] = field(default_factory=dict)
    regimes: list[dict[str, Any]] = field(default_factory=list)

    def row(self, name: str, smoothing: bool) -> Method:
        for m in self.methods:
            if m.name == name and m.smoothing == smoothing:
                return m
        raise KeyError(f"no method {name!r} with smoothing={smoothing}")


def make_methods(config: QualityConfig, family: Family, num_classes: int) -> list[Method]:
    def acc() -> SegmentationAccumulator:
        return SegmentationAccumulator(num_classes)

    s = family.smoothing
    methods = [Method("DNN", family.dnn, s, 1, False, acc()), Method("VQ-DNN", family.dnn, s, 1, True, acc())]
    methods += [Method(f"BNN-{n}", family.bnn, s, n, False, acc()) for n in config.samples]
    methods.append(Method("VQ-BNN", family.bnn, s, 1, True, acc()))
    return methods


def evaluate_family(
    config: QualityConfig,
    family: Family,
    dnn: nn.Module,
    bnn: nn.Module,
    streams: Callable[[], Iterator[Stream]],
    methods: dict[str, Method],
    example_at: tuple[int, int] | None = None,
    sweep: dict[tuple[str, bool, float], SegmentationAccumulator] | None = None,
) -> dict[str, Any]:
    """Feed every frame of every stream to every method's accumulator; returns the example frame's maps."""
    example: dict[str, Any] = {}
    samples = config.bnn_max
    for s_index, stream in enumerate(streams()):
        vq = {"VQ-DNN": TemporalState(config.tau), "VQ-BNN": TemporalState(config.tau)}
        vq_sweep = {(name, tau): TemporalState(tau) for name in vq for tau in config.tau_sweep}
        for start in range(0, stream.frames.shape[0], config.chunk):
            x = to_batch(stream.frames[start : start + config.chunk])
            with torch.inference_mode():
                p_det = deterministic_probs(dnn, x)
                p_mc = mc_probs(bnn, x, samples, config.max_batch)
            for i in range(x.shape[0]):
                t = start + i
                labels = torch.from_numpy(stream.labels[t])
                ood = torch.from_numpy(stream.ood[t]) if stream.unknown_object else None
                outputs: dict[str, tuple[torch.Tensor, U.MapBatch]] = {}
                det = p_det[i : i + 1]
                outputs["DNN"] = (det, U.output_maps(det, U.entropy(det)))
                outputs["VQ-DNN"] = vq["VQ-DNN"].update(det, float(t))
                for n in config.samples:
                    outputs[f"BNN-{n}"] = bnn_maps(p_mc[i, :n])
                outputs["VQ-BNN"] = vq["VQ-BNN"].update(p_mc[i, :1], float(t))
                for (name, tau), state in vq_sweep.items():
                    probs, maps = state.update(det if name == "VQ-DNN" else p_mc[i, :1], float(t))
                    if sweep is not None:
                        key = (name, family.smoothing, tau)
                        sweep.setdefault(key, SegmentationAccumulator(probs.shape[1]))
                        sweep[key].update(probs[0], labels, entropy=maps.entropy[0], ood=ood)
                for name, (probs, maps) in outputs.items():
                    method = methods[name]
                    method.accumulator.update(
                        probs[0],
                        labels,
                        entropy=maps.entropy[0],
                        epistemic=maps.epistemic[0] if method.has_epistemic else None,
                        ood=ood,
                    )
                if example_at == (s_index, t):
                    example = {
                        "frame": stream.frames[t],
                        "labels": stream.labels[t],
                        "ood": stream.ood[t],
                        "maps": {
                            name: {
                                "mask": maps.mask[0].numpy().astype(np.uint8),
                                "entropy": maps.entropy[0].numpy(),
                                "epistemic": maps.epistemic[0].numpy(),
                            }
                            for name, (_, maps) in outputs.items()
                            if name in ("DNN", f"BNN-{samples}", "VQ-BNN")
                        },
                    }
    return example


def time_methods(
    config: QualityConfig, dnn: nn.Module, bnn: nn.Module, frames: np.ndarray, methods: Sequence[Method]
) -> None:
    """Frames/s of each method run on its own, one frame at a time, as a stream would be served.

    The methods take turns frame by frame, so a burst of load on the shared machine hits all
    of them alike; frames/s is 1 / the median frame time.
    """
    states = {m.label: TemporalState(config.tau) for m in methods}
    times: dict[str, list[float]] = {m.label: [] for m in methods}
    for t in range(min(config.timing_frames + 1, frames.shape[0])):
        x = to_batch(frames[t : t + 1])
        for method in methods:
            model = dnn if method.model == methods[0].model else bnn
            state = states[method.label]
            begin = time.perf_counter()
            with torch.inference_mode():
                if method.name in ("DNN", "VQ-DNN"):
                    probs = deterministic_probs(model, x)
                    if method.temporal:
                        state.update(probs, float(t))
                    else:
                        U.output_maps(probs, U.entropy(probs))
                elif method.name == "VQ-BNN":
                    state.update(mc_probs(model, x, 1, config.max_batch)[0], float(t))
                else:
                    bnn_maps(mc_probs(model, x, method.passes, config.max_batch)[0])
            if t > 0:  # the first frame warms up the allocator and caches
                times[method.label].append(time.perf_counter() - begin)
    for method in methods:
        series = times[method.label]
        method.frame_ms = [1000 * s for s in series]
        method.fps = 1.0 / statistics.median(series) if series else float("nan")


def evaluate_shift(config: QualityConfig, load: ModelLoader, num_classes: int) -> list[dict[str, Any]]:
    """NLL and ECE of DNN (both nets), BNN-N and VQ-BNN (smoothing) under each corruption and severity."""
    if not config.shift_corruptions:
        return []
    plain, smooth = config.families[0], config.families[-1]
    dnn_plain, dnn_ss, bnn_ss = load(plain.dnn), load(smooth.dnn), load(smooth.bnn)
    rows: list[dict[str, Any]] = []
    n = config.bnn_max
    for corruption in config.shift_corruptions:
        for severity in config.shift_severities:
            accs = {
                key: SegmentationAccumulator(num_classes)
                for key in ("DNN", "DNN +SS", f"BNN-{n} +SS", "VQ-BNN +SS")
            }
            streams = test_streams(
                config.shift_streams,
                config.shift_frames,
                config.height,
                config.width,
                corruption=corruption,
                severity=severity,
            )
            for stream in streams:
                vq = TemporalState(config.tau)
                for start in range(0, stream.frames.shape[0], config.chunk):
                    x = to_batch(stream.frames[start : start + config.chunk])
                    with torch.inference_mode():
                        p_plain = deterministic_probs(dnn_plain, x)
                        p_ss = deterministic_probs(dnn_ss, x)
                        p_mc = mc_probs(bnn_ss, x, n, config.max_batch)
                    for i in range(x.shape[0]):
                        labels = torch.from_numpy(stream.labels[start + i])
                        out = {
                            "DNN": (p_plain[i : i + 1], None),
                            "DNN +SS": (p_ss[i : i + 1], None),
                            f"BNN-{n} +SS": bnn_maps(p_mc[i]),
                            "VQ-BNN +SS": vq.update(p_mc[i, :1], float(start + i)),
                        }
                        for key, (probs, maps) in out.items():
                            ent = maps.entropy[0] if maps is not None else U.entropy(probs)[0]
                            accs[key].update(probs[0], labels, entropy=ent)
            row: dict[str, Any] = {"corruption": corruption, "severity": severity}
            for key, acc in accs.items():
                res = acc.result()
                row[key] = {"nll": res["nll"], "ece10": res["ece10"], "acc": res["acc"]}
            rows.append(row)
    return rows


def run(
    config: QualityConfig, load: ModelLoader, out_dir: Path | None = None, log: Callable[[str], None] = print
) -> QualityResult:
    """The whole quality benchmark; writes `quality.md` and the plots to `out_dir` when given."""
    torch.manual_seed(config.seed)
    begin = time.perf_counter()
    methods: list[Method] = []
    sweep: dict[tuple[str, bool, float], SegmentationAccumulator] = {}
    example: dict[str, Any] = {}
    num_classes = 0

    def streams() -> Iterator[Stream]:
        yield from test_streams(config.streams, config.frames, config.height, config.width)
        yield from test_streams(
            config.ood_streams,
            config.frames,
            config.height,
            config.width,
            unknown_object=True,
            offset=config.streams,
        )

    for family in config.families:
        dnn, bnn = load(family.dnn), load(family.bnn)
        num_classes = dnn.config.num_classes
        family_methods = make_methods(config, family, num_classes)
        by_name = {m.name: m for m in family_methods}
        example_at = (config.streams, config.frames // 2) if config.ood_streams else (0, config.frames // 2)
        log(f"quality: {len(family_methods)} methods on {'smoothed' if family.smoothing else 'plain'} nets")
        ex = evaluate_family(config, family, dnn, bnn, streams, by_name, example_at, sweep)
        if family.smoothing or not example:
            example = ex
        first = next(test_streams(1, config.timing_frames + 1, config.height, config.width))
        time_methods(config, dnn, bnn, first.frames, family_methods)
        methods += family_methods
        log(f"quality: done in {time.perf_counter() - begin:.0f} s")
    shift = evaluate_shift(config, load, num_classes)
    log(f"quality: shift done in {time.perf_counter() - begin:.0f} s")
    regime_rows = regimes.run(config.regimes, load) if config.regimes is not None else []
    log(f"quality: regimes done in {time.perf_counter() - begin:.0f} s")
    result = QualityResult(config, methods, shift, example, time.perf_counter() - begin, sweep, regime_rows)
    if out_dir is not None:
        write(result, out_dir)
    return result


# --------------------------------------------------------------------------- targets and tables

COLUMNS: tuple[tuple[str, str, bool], ...] = (
    # (result key, header, percent)
    ("nll", "NLL", False),
    ("acc", "Acc", True),
    ("miou", "mIoU", True),
    ("ece10", "ECE-10", True),
    ("ece15", "ECE-15", True),
    ("brier", "Brier", False),
    ("acc90", "Acc-90", True),
    ("unc90", "Unc-90", True),
    ("iou90", "IoU-90", True),
    ("freq90", "Freq-90", True),
    ("aurc", "AURC", False),
    ("auroc_err", "AUROC err", False),
)
OOD_COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("ood_auroc_entropy", "OOD AUROC (entropy)", False),
    ("ood_fpr95_entropy", "FPR95 (entropy)", True),
    ("ood_auroc_epistemic", "OOD AUROC (epistemic)", False),
    ("ood_fpr95_epistemic", "FPR95 (epistemic)", True),
)


def targets(result: QualityResult) -> list[dict[str, Any]]:
    """The issue's target, clause by clause: VQ-BNN +SS vs BNN-30 +SS and vs DNN."""
    n = result.config.bnn_max
    vq = result.row("VQ-BNN", True)
    bnn = result.row(f"BNN-{n}", True)
    dnn = result.row("DNN", False)
    dnn_ss = result.row("DNN", True)
    r_vq, r_bnn, r_dnn, r_dnn_ss = (m.accumulator.result() for m in (vq, bnn, dnn, dnn_ss))
    speedup = vq.fps / bnn.fps if bnn.fps > 0 else float("nan")
    return [
        {
            "target": f"NLL: VQ-BNN +SS < BNN-{n} +SS",
            "ours": f"{r_vq['nll']:.4f} vs {r_bnn['nll']:.4f}",
            "met": r_vq["nll"] < r_bnn["nll"],
        },
        {
            "target": f"ECE-10: VQ-BNN +SS < BNN-{n} +SS",
            "ours": f"{100 * r_vq['ece10']:.2f} % vs {100 * r_bnn['ece10']:.2f} %",
            "met": r_vq["ece10"] < r_bnn["ece10"],
        },
        {
            "target": f"frames/s: VQ-BNN +SS >= 20 × BNN-{n} +SS",
            "ours": f"{vq.fps:.1f} vs {bnn.fps:.2f} ({speedup:.1f}×)",
            "met": bool(speedup >= 20),
        },
        {
            "target": "ECE-10: VQ-BNN +SS <= 0.6 × DNN (`unet`)",
            "ours": f"{100 * r_vq['ece10']:.2f} % vs {100 * r_dnn['ece10']:.2f} % "
            f"({r_vq['ece10'] / r_dnn['ece10']:.2f}×)",
            "met": r_vq["ece10"] <= 0.6 * r_dnn["ece10"],
        },
        {
            "target": "(also) ECE-10: VQ-BNN +SS <= 0.6 × DNN +SS (`unet-ss`)",
            "ours": f"{100 * r_vq['ece10']:.2f} % vs {100 * r_dnn_ss['ece10']:.2f} % "
            f"({r_vq['ece10'] / r_dnn_ss['ece10']:.2f}×)",
            "met": r_vq["ece10"] <= 0.6 * r_dnn_ss["ece10"],
        },
    ]


PAPER_ROWS = (
    # (method, NLL, ECE %, img/s) — Park et al. 2021, CamVid, Bayesian U-Net
    ("DNN (paper, CamVid)", 0.314, 4.31, 10.5),
    ("BNN-30 (paper, CamVid)", 0.276, 3.71, 0.79),
    ("VQ-BNN (paper, CamVid)", 0.253, 2.24, 9.4),
    ("MC dropout, 50 samples (smoothing paper)", 0.298, 4.20, None),
    ("VQ-BNN + smoothing, 1 sample (smoothing paper)", 0.260, 2.71, None),
)


def headline_table(result: QualityResult) -> str:
    """DNN vs BNN-30 vs VQ-BNN, ours beside the papers' CamVid figures."""
    n = result.config.bnn_max
    rows = []
    for name, smoothing in (
        ("DNN", False),
        (f"BNN-{n}", False),
        ("VQ-BNN", False),
        ("DNN", True),
        (f"BNN-{n}", True),
        ("VQ-BNN", True),
    ):
        m = result.row(name, smoothing)
        r = m.accumulator.result()
        rows.append(
            [
                f"{m.label} (ours)",
                report.fmt(r["nll"], 4),
                report.fmt(r["ece10"], 3, True),
                report.fmt(r["acc"], 3, True),
                report.fmt(m.fps, 2),
            ]
        )
    for label, nll, ece, fps in PAPER_ROWS:
        rows.append([label, report.fmt(nll, 3), f"{ece:.2f} %", "—", report.fmt(fps, 2)])
    return report.table(["method", "NLL", "ECE (10 bins)", "pixel acc", "frames/s"], rows)


def main_table(result: QualityResult) -> str:
    headers = ["method", "net", "passes", "frames/s"] + [h for _, h, _ in COLUMNS]
    rows = []
    for m in result.methods:
        r = m.accumulator.result()
        rows.append(
            [m.label, f"`{m.model}`", m.passes, report.fmt(m.fps, 2)]
            + [report.fmt(r[k], 4 if not pct else 3, pct) for k, _, pct in COLUMNS]
        )
    return report.table(headers, rows)


def ood_table(result: QualityResult) -> str:
    headers = ["method"] + [h for _, h, _ in OOD_COLUMNS]
    rows = []
    for m in result.methods:
        r = m.accumulator.result()
        rows.append([m.label] + [report.fmt(r[k], 3, pct) for k, _, pct in OOD_COLUMNS])
    return report.table(headers, rows)


def sweep_table(result: QualityResult) -> str:
    """The VQ methods at several τ (same frames, same passes): how much temporal mixing helps."""
    rows = []
    for smoothing in sorted({m.smoothing for m in result.methods}):
        for name in ("VQ-DNN", "VQ-BNN"):
            base = result.row(name, smoothing)
            accs = {result.config.tau: base.accumulator}
            accs.update(
                {tau: acc for (n, s, tau), acc in result.sweep.items() if n == name and s == smoothing}
            )
            single = result.row("DNN" if name == "VQ-DNN" else "BNN-1", smoothing).accumulator.result()
            row = [base.label, report.fmt(single["nll"], 4), report.fmt(single["ece10"], 3, True)]
            for tau in sorted(accs):
                r = accs[tau].result()
                row += [report.fmt(r["nll"], 4), report.fmt(r["ece10"], 3, True)]
            rows.append(row)
    taus = sorted({result.config.tau, *result.config.tau_sweep})
    headers = ["method", "no temporal NLL", "no temporal ECE"]
    headers += [f"τ={tau:g} {m}" for tau in taus for m in ("NLL", "ECE")]
    return report.table(headers, rows)


def shift_table(result: QualityResult) -> str:
    if not result.shift:
        return "(not run)"
    keys = [k for k in result.shift[0] if k not in ("corruption", "severity")]
    headers = ["corruption", "severity"] + [f"{k} {m}" for k in keys for m in ("NLL", "ECE")]
    rows = []
    for row in result.shift:
        rows.append(
            [row["corruption"], row["severity"]]
            + [report.fmt(row[k][m], 3, m == "ece10") for k in keys for m in ("nll", "ece10")]
        )
    # the mean over corruptions, per severity
    for severity in result.config.shift_severities:
        at = [r for r in result.shift if r["severity"] == severity]
        rows.append(
            ["**mean**", severity]
            + [
                report.fmt(float(np.mean([r[k][m] for r in at])), 3, m == "ece10")
                for k in keys
                for m in ("nll", "ece10")
            ]
        )
    return report.table(headers, rows, "l" + "r" * (len(headers) - 1))


def markdown(result: QualityResult) -> str:
    c = result.config
    total_frames = (c.streams + c.ood_streams) * c.frames
    parts = [
        "# Uncertainty quality",
        "",
        f'Held-out synthetic test streams (`split_seeds("test")`): {c.streams} clean streams + '
        f"{c.ood_streams} with the unknown object, {c.frames} frames each at {c.height}×{c.width} "
        f"({total_frames} frames; every valid pixel counts, unknown-object pixels are left out of the "
        f"in-distribution metrics). τ = {c.tau} frames. Machine: {report.machine_line()}. "
        f"Run time {result.seconds:.0f} s.",
        "",
        "## Target",
        "",
        report.table(
            ["target", "ours", "verdict"],
            [[t["target"], t["ours"], report.verdict(t["met"])] for t in targets(result)],
            "llc",
        ),
        "",
        "## Headline, beside the papers (CamVid; theirs are a different dataset and net)",
        "",
        headline_table(result),
        "",
        "## All methods",
        "",
        main_table(result),
        "",
        "NLL in nats/pixel. ECE with 10 (paper) and 15 (libraries) equal-width confidence bins. "
        "Acc-90 = p(correct | confidence >= 0.9), Unc-90 = p(confidence < 0.9 | wrong), IoU-90 = mIoU of the "
        "pixels with confidence >= 0.9, Freq-90 = p(confidence >= 0.9) (the VQ-BNN paper's definitions). "
        "AURC (lower is better) and misclassification AUROC rank pixels by predictive entropy. "
        "Frames/s: each method alone, one frame at a time, methods taking turns frame by frame, median of "
        f"{c.timing_frames} frames, same run. Ranking metrics use a 4096-bin log-scale histogram of the "
        "score (0.35 % relative resolution); ties count half.",
        "",
        "## Unknown object (OOD) detection",
        "",
        f"Pixels of the unknown object (positives) vs valid pixels of the same {c.ood_streams} streams. "
        "DNN and BNN-1 have no epistemic term (—).",
        "",
        ood_table(result),
        "",
        "## Temporal decay τ (frames)",
        "",
        'The same frames and forward passes, the VQ update run at several τ; "no temporal" is the '
        "single pass it starts from (DNN for VQ-DNN, BNN-1 for VQ-BNN). a = exp(-1/τ) per frame.",
        "",
        sweep_table(result) if result.sweep else "(not run)",
        "",
        "## Under shift",
        "",
        f"{c.shift_streams} stream(s) × {c.shift_frames} frames per corruption and severity.",
        "",
        shift_table(result),
        "",
        "## When does the temporal ensemble pay?",
        "",
        *_regimes_section(result),
        "## Plots",
        "",
        "![reliability](reliability.png)",
        "",
        "![NLL vs cost](nll_vs_fps.png)",
        "",
        "![one frame](example_frame.png)",
    ]
    return "\n".join(parts)


def _regimes_section(result: QualityResult) -> list[str]:
    r = result.config.regimes
    if r is None or not result.regimes:
        return ["(not run)", ""]
    return [
        f"`{r.dnn}` and `{r.bnn}`, {r.streams} clean test streams × {r.frames} frames, τ = {r.tau} frames. "
        "T < 1 sharpens every pass, softmax(log p / T): the same nets made overconfident, as the "
        "papers' single passes were (their DNN's ECE was 4.3 %). Frame time 1/3 renders the same "
        "worlds at 3× the frame rate: a third of the motion a frame. See `benchmarks/regimes.py`.",
        "",
        regimes.table(result.regimes, r.samples),
        "",
    ]


def write(result: QualityResult, out_dir: Path) -> None:
    report.write(out_dir / "quality.md", markdown(result))
    plots.reliability_diagram(result, out_dir / "reliability.png")
    plots.nll_vs_fps(result, out_dir / "nll_vs_fps.png")
    if result.example:
        plots.example_frame(result.example, out_dir / "example_frame.png")
    report.write_raw(out_dir / "quality.raw.json", raw(result))


def raw(result: QualityResult) -> dict[str, Any]:
    return {
        "config": asdict(result.config),
        "seconds": result.seconds,
        "methods": [
            {
                "label": m.label,
                "model": m.model,
                "passes": m.passes,
                "fps": m.fps,
                "frame_ms": m.frame_ms,
                **m.accumulator.result(),
            }
            for m in result.methods
        ],
        "shift": result.shift,
        "regimes": result.regimes,
        "targets": targets(result),
        "headline": headline_table(result),
    }


def finite(x: float) -> bool:
    return not (math.isnan(x) or math.isinf(x))
