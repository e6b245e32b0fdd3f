"""Load against a live server: `streamuq serve` in a subprocess, K streams over WebSocket and HTTP.

Each stream sends real frames (the CamVid-like GIF clips in `../shared/data/camvid/clips/`,
or held-out synthetic streams), JPEG-encoded once beforehand, at a target rate:

- WebSocket: open loop. Frame i leaves at start + i/fps with its capture timestamp i/fps;
  the server answers in order, the newest frame wins when the model falls behind, and
  the answer's `timestamp` says which frame it belongs to. Drops = frames sent − answered.
- HTTP: one POST in flight per stream. A frame whose turn comes while the previous POST
  is still out is skipped (a client-side drop); refused requests (429/503) count as drops.

Latency is end to end at the client: from just before sending the frame's bytes to having
the parsed JSON answer (mask and every map as PNG, the default). All traffic goes to
127.0.0.1, bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from benchmarks import report
from service import threads

CLIPS_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid" / "clips"
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class LoadConfig:
    stream_counts: tuple[int, ...] = (1, 4, 16)
    protocols: tuple[str, ...] = ("ws", "http")
    sources: tuple[str, ...] = ("clips", "synthetic")
    fps: float = 10.0  # target frames/s of each stream
    duration_s: float = 10.0  # sending time of each run
    drain_s: float = 10.0  # how long to wait for the last answers
    engine_frames: int = 40  # in-process engine frames for the reference p50
    jpeg_quality: int = 90
    startup_timeout_s: float = 180.0
    clips_dir: Path = CLIPS_DIR
    model: str = "unet-ss-mcd"
    weights_dir: Path | None = None  # None: the shipped weights

    @classmethod
    def quick(cls) -> LoadConfig:
        return cls(duration_s=4.0, drain_s=6.0, engine_frames=20)


# --------------------------------------------------------------------------- frames


def clip_frames(path: Path, limit: int = 120) -> list[np.ndarray]:
    """The frames of a GIF as H×W×3 uint8 RGB arrays."""
    frames = []
    with Image.open(path) as gif:
        for index in range(min(getattr(gif, "n_frames", 1), limit)):
            gif.seek(index)
            frames.append(np.array(gif.convert("RGB")))  # writable: torch warns on read-only arrays
    return frames


def synthetic_frames(index: int, count: int = 60) -> list[np.ndarray]:
    from models.data.synthetic import StreamSpec, generate_stream, split_seeds

    seed = split_seeds("test", index + 1)[index]
    return list(np.array(generate_stream(StreamSpec(seed=seed, num_frames=count)).frames))


def jpeg(frame: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@dataclass
class FrameSet:
    """Pre-encoded JPEGs per stream source, and the decoded frames for the in-process reference."""

    encoded: dict[str, list[list[bytes]]]  # source → one list of JPEGs per distinct stream
    decoded: dict[str, list[np.ndarray]]  # source → the first stream's frames

    @classmethod
    def load(cls, config: LoadConfig) -> FrameSet:
        encoded: dict[str, list[list[bytes]]] = {}
        decoded: dict[str, list[np.ndarray]] = {}
        for source in config.sources:
            if source == "clips":
                clips = sorted(config.clips_dir.glob("*.gif"))
                if not clips:
                    raise FileNotFoundError(
                        f"no GIF clips in {config.clips_dir}; pass sources=('synthetic',)"
                    )
                streams = [clip_frames(p) for p in clips]
            elif source == "synthetic":
                streams = [synthetic_frames(i) for i in range(2)]
            else:
                raise ValueError(f"unknown frame source {source!r}; choose 'clips' or 'synthetic'")
            encoded[source] = [[jpeg(f, config.jpeg_quality) for f in s] for s in streams]
            decoded[source] = streams[0]
        return cls(encoded, decoded)

    def stream(self, source: str, j: int) -> list[bytes]:
        """Stream j's JPEGs: a clip (round robin), started at an offset so streams differ."""
        clips = self.encoded[source]
        frames = clips[j % len(clips)]
        offset = (5 * (j // len(clips))) % len(frames)
        return frames[offset:] + frames[:offset]


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def live_server(config: LoadConfig, log: Callable[[str], None]) -> Any:
    """`streamuq serve` on a free port of 127.0.0.1; yields its base URL; always stopped."""
    port = free_port()
    env = {**os.environ, "STREAMUQ_MAX_STREAMS": "64"}
    cmd = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--model", config.model, "--device", "cpu", "--log-level", "warning"]
    if config.weights_dir is not None:
        cmd += ["--weights-dir", str(config.weights_dir)]
    url = f"http://127.0.0.1:{port}"
    # stderr to a file, not a pipe: a chatty server must never block on a full pipe
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            deadline = time.monotonic() + config.startup_timeout_s
            while True:
                if proc.poll() is not None:
                    errors.seek(0)
                    tail = errors.read().decode(errors="replace")[-2000:]
                    raise RuntimeError(f"`streamuq serve` exited with {proc.returncode}: {tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/v2/health/ready", timeout=2.0).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"server not ready after {config.startup_timeout_s} s")
                time.sleep(0.5)
            log(f"load: server ready at {url} (pid {proc.pid})")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- the clients


@dataclass
class RunStats:
    protocol: str
    streams: int
    source: str
    sent: int = 0
    answered: int = 0
    drops: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, end to end
    server_total: list[float] = field(default_factory=list)  # seconds, the server's own `total`

    def row(self) -> dict[str, Any]:
        lat = self.latencies

        def q(values: list[float], p: float) -> float:
            return 1000 * float(np.percentile(values, p)) if values else float("nan")

        return {
            "protocol": self.protocol,
            "streams": self.streams,
            "source": self.source,
            "sent": self.sent,
            "answered": self.answered,
            "drops": self.drops,
            "errors": self.errors,
            "fps": self.answered / self.seconds if self.seconds else float("nan"),
            "p50_ms": q(lat, 50),
            "p90_ms": q(lat, 90),
            "p99_ms": q(lat, 99),
            "server_total_p50_ms": q(self.server_total, 50),
        }


async def ws_stream(
    url: str, stream_id: str, frames: list[bytes], config: LoadConfig, stats: RunStats
) -> None:
    import websockets

    n = int(config.duration_s * config.fps)
    sent_at: dict[int, float] = {}
    ws_url = url.replace("http://", "ws://") + f"/v1/streams/{stream_id}/ws"
    async with websockets.connect(ws_url, max_size=None, open_timeout=30) as ws:

        async def send() -> None:
            start = time.perf_counter()
            for i in range(n):
                delay = start + i / config.fps - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await ws.send(json.dumps({"type": "frame", "timestamp": i / config.fps}))
                sent_at[i] = time.perf_counter()
                await ws.send(frames[i % len(frames)])
                stats.sent += 1

        async def receive() -> None:
            accounted = 0
            while accounted < n:
                message = json.loads(await ws.recv())
                now = time.perf_counter()
                if message.get("type") == "result":
                    i = round(float(message["timestamp"]) * config.fps)
                    stats.latencies.append(now - sent_at[i])
                    stats.server_total.append(message["timings_ms"]["total"] / 1000)
                    stats.answered += 1
                    stats.drops += int(message.get("dropped_frames", 0))
                    accounted = i + 1
                elif message.get("type") == "error":
                    stats.errors += 1
                    accounted += 1

        sender = asyncio.create_task(send())
        try:
            await asyncio.wait_for(receive(), config.duration_s + config.drain_s)
        except TimeoutError:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


async def http_stream(
    client: httpx.AsyncClient,
    url: str,
    stream_id: str,
    frames: list[bytes],
    config: LoadConfig,
    stats: RunStats,
) -> None:
    n = int(config.duration_s * config.fps)
    in_flight: asyncio.Task[None] | None = None

    async def post(i: int) -> None:
        begin = time.perf_counter()
        try:
            response = await client.post(
                f"{url}/v1/streams/{stream_id}/frames",
                content=frames[i % len(frames)],
                headers={"content-type": "image/jpeg", "x-session-id": stream_id},
            )
        except httpx.HTTPError:
            stats.errors += 1
            return
        if response.status_code == 200:
            body = response.json()
            stats.latencies.append(time.perf_counter() - begin)
            stats.server_total.append(body["timings_ms"]["total"] / 1000)
            stats.answered += 1
        elif response.status_code in (429, 503):
            stats.drops += 1
        else:
            stats.errors += 1

    start = time.perf_counter()
    for i in range(n):
        delay = start + i / config.fps - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        stats.sent += 1
        if in_flight is not None and not in_flight.done():
            stats.drops += 1  # its turn came while the previous frame was still out
            continue
        in_flight = asyncio.create_task(post(i))
    if in_flight is not None:
        await asyncio.wait_for(in_flight, config.drain_s + 30)


async def drive(
    url: str, protocol: str, streams: int, source: str, frames: FrameSet, config: LoadConfig
) -> RunStats:
    stats = RunStats(protocol, streams, source)
    tag = f"{protocol}-{source}-{streams}-{time.monotonic_ns()}"
    begin = time.perf_counter()
    if protocol == "ws":
        await asyncio.gather(
            *(ws_stream(url, f"{tag}-{j}", frames.stream(source, j), config, stats) for j in range(streams))
        )
        stats.drops = stats.sent - stats.answered - stats.errors  # superseded, or never answered
    elif protocol == "http":
        limits = httpx.Limits(max_connections=streams + 2, max_keepalive_connections=streams + 2)
        async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
            await asyncio.gather(
                *(
                    http_stream(client, url, f"{tag}-{j}", frames.stream(source, j), config, stats)
                    for j in range(streams)
                )
            )
    else:
        raise ValueError(f"unknown protocol {protocol!r}; choose 'ws' or 'http'")
    stats.seconds = time.perf_counter() - begin
    async with httpx.AsyncClient(timeout=10.0) as client:  # free the server's slots
        for j in range(streams):
            with contextlib.suppress(httpx.HTTPError):
                await client.delete(f"{url}/v1/streams/{tag}-{j}")
    return stats


# --------------------------------------------------------------------------- in-process reference


async def engine_reference(config: LoadConfig, frames: list[np.ndarray]) -> list[float]:
    """Wall seconds of `await engine.submit` for the same frames in this process (default settings)."""
    from service.config import Settings
    from service.engine import Engine

    extra: dict[str, Any] = {} if config.weights_dir is None else {"weights_dir": config.weights_dir}
    threads.confine_caller()  # as the server loads its engine (service/app.py)
    engine = Engine.from_settings(Settings(model=config.model, device="cpu", **extra))
    await engine.start()
    out: list[float] = []
    try:
        for i in range(config.engine_frames + 2):
            begin = time.perf_counter()
            await engine.submit("reference", frames[i % len(frames)], mode="vq-bnn")
            if i >= 2:
                out.append(time.perf_counter() - begin)
            # the same pacing as the load runs, so the CPU has the same idle gaps
            await asyncio.sleep(max(0.0, 1 / config.fps - out[-1] if out else 0.0))
    finally:
        await engine.stop()
    return out


@dataclass
class LoadResult:
    config: LoadConfig
    runs: list[dict[str, Any]]
    engine_p50_ms: float
    engine_p99_ms: float
    latency_bench_engine_p50_ms: float | None
    seconds: float

    def one_stream(self, protocol: str, source: str = "clips") -> dict[str, Any] | None:
        for r in self.runs:
            if r["protocol"] == protocol and r["streams"] == 1 and r["source"] == source:
                return r
        return None


def run(
    config: LoadConfig,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
    engine_p50_ms: float | None = None,
) -> LoadResult:
    begin = time.perf_counter()
    frames = FrameSet.load(config)
    reference = asyncio.run(engine_reference(config, frames.decoded[config.sources[0]]))
    log(f"load: in-process engine p50 {1000 * float(np.median(reference)):.1f} ms")
    runs: list[dict[str, Any]] = []
    with live_server(config, log) as url:
        for protocol in config.protocols:
            for source in config.sources:
                for k in config.stream_counts:
                    stats = asyncio.run(drive(url, protocol, k, source, frames, config))
                    runs.append(stats.row())
                    log(
                        f"load: {protocol} {source} K={k}: {runs[-1]['fps']:.1f} frames/s, "
                        f"p50 {runs[-1]['p50_ms']:.0f} ms, drops {stats.drops}"
                    )
    result = LoadResult(
        config,
        runs,
        1000 * float(np.percentile(reference, 50)),
        1000 * float(np.percentile(reference, 99)),
        engine_p50_ms,
        time.perf_counter() - begin,
    )
    if out_dir is not None:
        report.write(out_dir / "load.md", markdown(result))
        raw = {"config": asdict(config), **asdict(result), "targets": targets(result)}
        report.write_raw(out_dir / "load.raw.json", raw)
    return result


# --------------------------------------------------------------------------- tables


def targets(result: LoadResult) -> list[dict[str, Any]]:
    out = []
    source = result.config.sources[0]
    for protocol in result.config.protocols:
        r = result.one_stream(protocol, source)
        if r is None:
            continue
        ratio = r["p50_ms"] / result.engine_p50_ms
        out.append(
            {
                "target": f"{protocol}: end-to-end p50 / in-process engine p50 <= 1.15 (1 stream)",
                "ours": f"{ratio:.2f} ({r['p50_ms']:.1f} / {result.engine_p50_ms:.1f} ms)",
                "met": ratio <= 1.15,
            }
        )
        spread = r["p99_ms"] / r["p50_ms"]
        out.append(
            {
                "target": f"{protocol}: end-to-end p99 / p50 <= 1.3 (1 stream)",
                "ours": f"{spread:.2f} ({r['p99_ms']:.1f} / {r['p50_ms']:.1f} ms)",
                "met": spread <= 1.3,
            }
        )
    return out


def runs_table(result: LoadResult) -> str:
    c = result.config
    headers = ["protocol", "source", "streams", "target frames/s", "achieved frames/s", "p50 ms", "p90 ms"]
    headers += ["p99 ms", "server total p50 ms", "sent", "answered", "drops", "errors"]
    rows = [
        [
            r["protocol"],
            r["source"],
            r["streams"],
            report.fmt(c.fps * r["streams"], 0),
            report.fmt(r["fps"], 1),
            report.fmt(r["p50_ms"], 1),
            report.fmt(r["p90_ms"], 1),
            report.fmt(r["p99_ms"], 1),
            report.fmt(r["server_total_p50_ms"], 1),
            r["sent"],
            r["answered"],
            r["drops"],
            r["errors"],
        ]
        for r in result.runs
    ]
    return report.table(headers, rows, "lll" + "r" * (len(headers) - 3))


def markdown(result: LoadResult) -> str:
    c = result.config
    reference = (
        " (the latency benchmark's in-process vq-bnn p50 in the same run: "
        f"{result.latency_bench_engine_p50_ms:.1f} ms)"
        if result.latency_bench_engine_p50_ms is not None
        else ""
    )
    parts = [
        "# Load against a live server",
        "",
        f"`streamuq serve --model {c.model}` (torch, CPU, default settings: vq-bnn, max_batch_size 8) in a "
        f"subprocess on 127.0.0.1, driven by this process. Each stream sends {c.fps:g} frames/s for "
        f"{c.duration_s:g} s: the GIF clips of `shared/data/camvid/clips` (240×180) or held-out synthetic "
        f"streams (256×192), JPEG quality {c.jpeg_quality}; answers carry the mask and every map as PNG "
        "(the default). Client and server share "
        f"the machine's 2 cores. Machine: {report.machine_line(threads.LIBRARY_DEFAULT)}. "
        f"Run time {result.seconds:.0f} s.",
        "",
        f"In-process engine reference (same model, same frames, `Engine.from_settings`, vq-bnn, paced at "
        f"{c.fps:g} frames/s): p50 {result.engine_p50_ms:.1f} ms, "
        f"p99 {result.engine_p99_ms:.1f} ms{reference}.",
        "",
        "## Targets",
        "",
        report.table(
            ["target", "ours", "verdict"],
            [[t["target"], t["ours"], report.verdict(t["met"])] for t in targets(result)],
            "llc",
        ),
        "",
        "## Runs",
        "",
        runs_table(result),
        "",
        "End-to-end latency is measured at the client, from sending a frame to the parsed JSON answer. "
        "`server total` is the server's own `timings_ms.total` (decode + queue + infer + update + encode). "
        "Drops: WebSocket frames superseded by a newer one (newest wins) or never answered; HTTP frames "
        "skipped because the previous POST of the stream was still out, or refused with 429/503.",
    ]
    return "\n".join(parts)
