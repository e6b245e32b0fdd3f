"""Latency and overhead of the four modes through the real `Engine`, side by side in one run.

- Per-frame p50/p99 of dnn, vq-dnn, vq-bnn and bnn-30: one engine, one model, the same
  frames; the modes take turns frame by frame, so a change of the machine's load hits all
  of them alike. Latency is the wall time of `await engine.submit(...)` in this process.
- The ratios the engine issue promises: vq-bnn / dnn <= 1.05 and bnn-30 / vq-bnn >= 20.
- torch vs ONNX Runtime (the same measurement, each backend).
- Aggregate frames/s at 1, 4 and 16 concurrent streams (closed loop: each stream sends its
  next frame when the previous result is back), micro-batching off (max_batch_size 1) and on (8).
- The physical reference: model FLOPs / the measured float32 matmul FLOP/s of this CPU.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import report
from models import ModelCard, SegNet, count_flops, load_pretrained
from service import threads
from service.backends import Backend, OnnxBackend, TorchBackend
from service.config import Settings
from service.engine import Engine
from service.types import Mode

ModelLoader = Callable[[str], tuple[SegNet, ModelCard]]
MODES: tuple[Mode, ...] = ("dnn", "vq-dnn", "vq-bnn")


@dataclass(frozen=True)
class LatencyConfig:
    model: str = "unet-ss-mcd"
    frames: int = 80  # timed frames per mode (dnn, vq-dnn, vq-bnn), after `warmup`
    warmup: int = 3
    bnn_frames: int = 8
    bnn_samples: int = 30
    onnx_frames: int = 40
    onnx_bnn_frames: int = 3
    backends: tuple[str, ...] = ("torch", "onnx")
    stream_counts: tuple[int, ...] = (1, 4, 16)
    batch_sizes: tuple[int, ...] = (1, 8)
    throughput_frames: int = 96  # frames per cell of the throughput table, over all streams

    @classmethod
    def quick(cls) -> LatencyConfig:
        return cls(frames=30, bnn_frames=3, onnx_frames=16, onnx_bnn_frames=2, throughput_frames=48)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def make_backend(kind: str, model: SegNet, card: ModelCard, cache_dir: Path | None = None) -> Backend:
    """`cache_dir` None: the server's ONNX cache (exports are keyed by the weights' hash)."""
    if kind == "onnx":
        return OnnxBackend(model, card.input_size, "cpu", cache_dir=cache_dir)
    if kind == "torch":
        return TorchBackend(model, "cpu")
    raise ValueError(f"unknown backend {kind!r}; choose 'torch' or 'onnx'")


def make_engine(backend: Backend, card: ModelCard, model: str, **overrides: Any) -> Engine:
    settings = Settings(model=model, **overrides)
    return Engine(backend, card, settings)


async def mode_latencies(
    engine: Engine, frames: np.ndarray, n: int, warmup: int, bnn_n: int, bnn_samples: int
) -> dict[str, dict[str, list[float]]]:
    """Per mode: wall seconds of each `submit` and the engine's own stage timings; modes interleaved."""
    out: dict[str, dict[str, list[float]]] = {}
    modes: list[tuple[str, Mode, int | None]] = [(m, m, None) for m in MODES]
    bnn_every = max(1, (n + warmup) // max(bnn_n + 1, 1))
    bnn_label = f"bnn-{bnn_samples}"
    for i in range(n + warmup):
        todo = list(modes)
        if bnn_n and i % bnn_every == 0 and len(out.get(bnn_label, {}).get("wall", [])) < bnn_n:
            todo.append((bnn_label, "bnn", bnn_samples))
        for label, mode, samples in todo:
            image = frames[i % len(frames)]
            begin = time.perf_counter()
            result = await engine.submit(f"latency-{label}", image, mode=mode, samples=samples)
            wall = time.perf_counter() - begin
            if i < warmup and label != bnn_label:
                continue
            rec = out.setdefault(label, {"wall": []})
            rec["wall"].append(wall)
            for stage, seconds in result.timings.items():
                rec.setdefault(stage, []).append(seconds)
    return out


async def throughput(
    make: Callable[[int], Engine], streams: int, frames: np.ndarray, total: int
) -> dict[str, float]:
    """Aggregate frames/s of `streams` closed-loop vq-bnn streams, and their per-frame p50/p99 (ms)."""
    engine = make(streams)
    await engine.start()
    per_stream = max(1, total // streams)
    latencies: list[float] = []

    async def feed(j: int, count: int, record: bool) -> None:
        for i in range(count):
            begin = time.perf_counter()
            await engine.submit(f"load-{j}", frames[(i + 7 * j) % len(frames)], mode="vq-bnn")
            if record:
                latencies.append(time.perf_counter() - begin)

    try:
        await asyncio.gather(*(feed(j, 1, False) for j in range(streams)))  # warm every slot
        begin = time.perf_counter()
        await asyncio.gather(*(feed(j, per_stream, True) for j in range(streams)))
        elapsed = time.perf_counter() - begin
    finally:
        await engine.stop()
    return {
        "fps": streams * per_stream / elapsed,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "frames": float(streams * per_stream),
    }


def matmul_flops(n: int = 1024, reps: int = 8) -> float:
    """Best float32 matmul FLOP/s of this CPU with torch's threads: the physical ceiling."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(reps):
        begin = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - begin)
    return 2 * n**3 / best


@dataclass
class LatencyResult:
    config: LatencyConfig
    modes: dict[str, dict[str, dict[str, list[float]]]]  # backend → mode → series
    throughput: list[dict[str, Any]]
    flops: int
    matmul_flops: float
    input_size: tuple[int, int]
    seconds: float

    def p50(self, backend: str, mode: str, key: str = "wall") -> float:
        return 1000 * percentile(self.modes.get(backend, {}).get(mode, {}).get(key, []), 50)

    def p99(self, backend: str, mode: str, key: str = "wall") -> float:
        return 1000 * percentile(self.modes.get(backend, {}).get(mode, {}).get(key, []), 99)

    @property
    def bnn_label(self) -> str:
        return f"bnn-{self.config.bnn_samples}"

    def ratios(self, backend: str = "torch") -> dict[str, float]:
        dnn, vq = self.p50(backend, "dnn"), self.p50(backend, "vq-bnn")
        bnn = self.p50(backend, self.bnn_label)
        return {"vq_over_dnn": vq / dnn, "bnn_over_vq": bnn / vq}


def frames_for(card: ModelCard, count: int = 16) -> np.ndarray:
    """`count` synthetic test frames at the model's input size (H×W×3 uint8 each)."""
    from models.data.synthetic import StreamSpec, generate_stream, split_seeds

    height, width = card.input_size
    spec = StreamSpec(seed=split_seeds("test", 1)[0], num_frames=count, height=height, width=width)
    return np.asarray(generate_stream(spec).frames)


async def run_async(config: LatencyConfig, load: ModelLoader, log: Callable[[str], None]) -> LatencyResult:
    begin = time.perf_counter()
    threads.confine_caller()  # as the server does: only the engines' inference threads compute
    model, card = load(config.model)
    frames = frames_for(card)
    modes: dict[str, dict[str, dict[str, list[float]]]] = {}
    for kind in config.backends:
        backend = make_backend(kind, model, card)
        engine = make_engine(
            backend, card, config.model, max_wait_ms=0.0, bnn_samples=config.bnn_samples, max_batch_size=8
        )
        await engine.start()
        try:
            n = config.frames if kind == "torch" else config.onnx_frames
            bnn_n = config.bnn_frames if kind == "torch" else config.onnx_bnn_frames
            modes[kind] = await mode_latencies(engine, frames, n, config.warmup, bnn_n, config.bnn_samples)
        finally:
            await engine.stop()
        log(f"latency: {kind} modes done in {time.perf_counter() - begin:.0f} s")
    rows: list[dict[str, Any]] = []
    torch_backend = make_backend("torch", model, card)
    for batch in config.batch_sizes:
        for streams in config.stream_counts:

            def make(k: int, batch: int = batch) -> Engine:
                return make_engine(
                    torch_backend, card, config.model, max_batch_size=batch, max_streams=max(k, 4)
                )

            stats = await throughput(make, streams, frames, config.throughput_frames)
            rows.append({"streams": streams, "max_batch_size": batch, **stats})
            log(f"latency: {streams} streams, batch {batch}: {stats['fps']:.1f} frames/s")
    height, width = card.input_size
    flops = count_flops(model, height, width)
    with ThreadPoolExecutor(1, initializer=threads.use_threads, initargs=(0,)) as pool:
        peak = pool.submit(matmul_flops).result()  # with all of torch's threads, like the engines
    return LatencyResult(config, modes, rows, flops, peak, card.input_size, time.perf_counter() - begin)


def run(
    config: LatencyConfig,
    load: ModelLoader = load_pretrained,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> LatencyResult:
    result = asyncio.run(run_async(config, load, log))
    if out_dir is not None:
        report.write(out_dir / "latency.md", markdown(result))
        raw = {"config": asdict(config), **asdict(result), "targets": targets(result)}
        report.write_raw(out_dir / "latency.raw.json", raw)
    return result


# --------------------------------------------------------------------------- tables


def targets(result: LatencyResult) -> list[dict[str, Any]]:
    r = result.ratios("torch")
    return [
        {
            "target": "vq-bnn / dnn per-frame p50 <= 1.05",
            "ours": f"{r['vq_over_dnn']:.3f} ({result.p50('torch', 'vq-bnn'):.1f} / "
            f"{result.p50('torch', 'dnn'):.1f} ms)",
            "met": r["vq_over_dnn"] <= 1.05,
        },
        {
            "target": f"{result.bnn_label} / vq-bnn per-frame p50 >= 20",
            "ours": f"{r['bnn_over_vq']:.1f} ({result.p50('torch', result.bnn_label):.0f} / "
            f"{result.p50('torch', 'vq-bnn'):.1f} ms)",
            "met": r["bnn_over_vq"] >= 20,
        },
    ]


def mode_table(result: LatencyResult) -> str:
    rows = []
    for backend in result.modes:
        for mode in (*MODES, result.bnn_label):
            series = result.modes[backend].get(mode)
            if not series:
                continue
            rows.append(
                [
                    backend,
                    mode,
                    len(series["wall"]),
                    report.fmt(result.p50(backend, mode), 1),
                    report.fmt(result.p99(backend, mode), 1),
                    report.fmt(result.p50(backend, mode, "infer"), 1),
                    report.fmt(result.p50(backend, mode, "update"), 2),
                    report.fmt(1000 / result.p50(backend, mode), 1),
                ]
            )
    headers = ["backend", "mode", "frames", "p50 ms", "p99 ms", "infer p50 ms", "update p50 ms", "frames/s"]
    return report.table(headers, rows, "llrrrrrr")


def backend_table(result: LatencyResult) -> str:
    if "torch" not in result.modes or "onnx" not in result.modes:
        return "(one backend only)"
    rows = []
    for mode in (*MODES, result.bnn_label):
        t, o = result.p50("torch", mode), result.p50("onnx", mode)
        rows.append([mode, report.fmt(t, 1), report.fmt(o, 1), report.fmt(o / t, 2)])
    return report.table(["mode", "torch p50 ms", "ONNX Runtime p50 ms", "ONNX / torch"], rows)


def throughput_table(result: LatencyResult) -> str:
    rows = [
        [
            r["streams"],
            r["max_batch_size"],
            "on" if r["max_batch_size"] > 1 else "off",
            report.fmt(r["fps"], 1),
            report.fmt(r["p50_ms"], 1),
            report.fmt(r["p99_ms"], 1),
            int(r["frames"]),
        ]
        for r in result.throughput
    ]
    headers = [
        "streams",
        "max_batch_size",
        "micro-batching",
        "frames/s (all streams)",
        "p50 ms",
        "p99 ms",
        "frames",
    ]
    return report.table(headers, rows)


def physics_table(result: LatencyResult) -> str:
    ideal_ms = 1000 * result.flops / result.matmul_flops
    dnn_infer = result.p50("torch", "dnn", "infer")
    rows = [
        [
            "model FLOPs / frame",
            f"{result.flops / 1e9:.2f} GFLOP at {result.input_size[0]}×{result.input_size[1]}",
        ],
        ["measured float32 matmul (1024², best of 8)", f"{result.matmul_flops / 1e9:.1f} GFLOP/s"],
        ["ideal time / frame = FLOPs / matmul FLOP/s", f"{ideal_ms:.1f} ms ({1000 / ideal_ms:.0f} frames/s)"],
        ["measured dnn forward (engine `infer` p50)", f"{dnn_infer:.1f} ms"],
        ["fraction of the matmul ceiling reached", f"{ideal_ms / dnn_infer:.0%}"],
    ]
    return report.table(["quantity", "value"], rows, "ll")


def markdown(result: LatencyResult) -> str:
    c = result.config
    parts = [
        "# Latency and overhead",
        "",
        f"Model `{c.model}`, input {result.input_size[0]}×{result.input_size[1]}, synthetic test frames at "
        "that size, in-process `Engine` (max_wait_ms 0 for the per-mode rows). "
        f"Machine: {report.machine_line(threads.LIBRARY_DEFAULT)}. Run time {result.seconds:.0f} s. "
        f"The CPU is shared, so p99 over {c.frames} frames is noisy.",
        "",
        "## Targets",
        "",
        report.table(
            ["target", "ours (torch)", "verdict"],
            [[t["target"], t["ours"], report.verdict(t["met"])] for t in targets(result)],
            "llc",
        ),
        "",
        "## Per-frame latency by mode (one stream each, modes interleaved frame by frame)",
        "",
        mode_table(result),
        "",
        "## torch vs ONNX Runtime",
        "",
        backend_table(result),
        "",
        "## Throughput: concurrent streams, with and without micro-batching (vq-bnn, torch)",
        "",
        throughput_table(result),
        "",
        "## The physical reference",
        "",
        physics_table(result),
        "",
        "## GPU",
        "",
        "No GPU was lent to this task, so the 360×480 and 720×960 GPU table was not taken.",
    ]
    return "\n".join(parts)


def median_ms(values: list[float]) -> float:
    return 1000 * statistics.median(values) if values else float("nan")
