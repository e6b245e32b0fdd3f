"""Bounded soak against a live server: many streams, churn, bad requests mixed in, memory watched.

`python -m benchmarks.soak` starts `streamuq serve` on 127.0.0.1 (a tiny random model
unless `--shipped`), then drives it for a fixed number of frames:

- HTTP workers POST frames to a pool of streams (each stream keeps one mode), now and
  then DELETE a stream (it is re-created by its next frame) or run a KServe sequence;
- WebSocket sessions push a burst of frames without waiting; the newest frame wins, so
  every frame must come back as a result, as a count in a later result's
  `dropped_frames`, or as an error message: nothing may go missing;
- a share of requests is deliberately bad (corrupt or oversized images, decompression
  bombs, bad ids, modes and timestamps, garbage KServe bodies, unknown streams...), and
  each must be refused with a 4xx.

It passes when no request saw a 5xx or went unanswered, no WebSocket frame was lost,
every bad request was refused, and the server's resident memory (VmRSS from
/proc/<pid>/status) grew by at most `--rss-bound-mib` from the end of the warm-up (the
first half of the frames) to the end; `rss_by_tenth` shows the whole curve. All traffic
goes to 127.0.0.1, bounded in count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import io
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
MODEL = "unet-ss-mcd"
MODES = ("vq-bnn", "vq-dnn", "dnn", "bnn")


@dataclass(frozen=True)
class SoakConfig:
    frames: int = 4000  # frames sent in all (HTTP + WebSocket + KServe), bad requests not counted
    streams: int = 24  # HTTP stream ids in the pool
    workers: int = 6  # concurrent HTTP clients
    ws_sessions: int = 2  # concurrent WebSocket pushers
    ws_share: float = 0.3  # share of the frames sent over WebSocket
    kserve_share: float = 0.05
    bad_share: float = 0.1  # bad requests per frame sent
    delete_share: float = 0.03  # stream deletions (churn) per frame sent
    # Memory is compared from the end of this share of the frames: by then every batch size, mode
    # mix, state slot and worker thread has been used (with the shipped model RSS steps up once,
    # ~75 MiB at a random point of the first 40 %, then stays flat).
    warmup_share: float = 0.5
    rss_bound_mib: float = 48.0
    seed: int = 0


@dataclass
class SoakReport:
    frames_sent: int = 0
    http_requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: int = 0  # 5xx
    lost: int = 0  # HTTP requests without an answer; WebSocket frames neither answered nor counted
    bad_sent: int = 0
    bad_accepted: list[str] = field(default_factory=list)  # bad requests answered 2xx
    ws_frames: int = 0
    ws_results: int = 0
    ws_dropped: int = 0  # newest-wins drops counted in results
    ws_errors: int = 0
    refused_overload: int = 0  # 429 and 503 answers
    deletes: int = 0
    rss_start_mib: float = 0.0
    rss_warm_mib: float = 0.0
    rss_end_mib: float = 0.0
    rss_max_mib: float = 0.0
    rss_by_tenth: list[float] = field(default_factory=list)  # RSS after each tenth of the frames
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def rss_growth_mib(self) -> float:
        return self.rss_end_mib - self.rss_warm_mib

    def passed(self, config: SoakConfig) -> bool:
        return (
            self.server_errors == 0
            and self.lost == 0
            and not self.bad_accepted
            and not self.problems
            and self.rss_growth_mib <= config.rss_bound_mib
        )

    def summary(self, config: SoakConfig) -> dict[str, Any]:
        out = asdict(self)
        out["statuses"] = {str(k): v for k, v in sorted(self.statuses.items())}
        out["bad_accepted"] = self.bad_accepted[:10]
        out["rss_growth_mib"] = round(self.rss_growth_mib, 1)
        out["rss_bound_mib"] = config.rss_bound_mib
        out["passed"] = self.passed(config)
        return out


# --------------------------------------------------------------------------- inputs


def _encode(image: np.ndarray, fmt: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format=fmt)
    return out.getvalue()


def make_frames(rng: np.random.Generator, count: int = 12) -> list[tuple[bytes, str]]:
    """Small PNG and JPEG frames of a few sizes: (bytes, content type)."""
    frames = []
    for i in range(count):
        height, width = [(48, 64), (72, 96), (120, 160)][i % 3]
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1)
        noise = rng.integers(0, 40, (height, width, 3))
        image = np.clip(base + noise, 0, 255).astype(np.uint8)
        fmt = "PNG" if i % 2 == 0 else "JPEG"
        frames.append((_encode(image, fmt), f"image/{fmt.lower()}"))
    return frames


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A PNG header declaring width×height over a few bytes of pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)),
            _png_chunk(b"IEND", b""),
        )
    )


GZIP_BOMB = gzip.compress(b" " * (32 << 20))  # 32 MiB of spaces in ~32 kB


def _post(url: str, body: bytes, content_type: str | None = None, **params: Any) -> dict[str, Any]:
    headers = {} if content_type is None else {"Content-Type": content_type}
    return {"method": "POST", "url": url, "content": body, "headers": headers, "params": params}


def _infer(body: Any, **headers: str) -> dict[str, Any]:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"method": "POST", "url": f"/v2/models/{MODEL}/infer", "content": content, "headers": headers}


def bad_requests(frame: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Named httpx request arguments that must each be refused with a 4xx."""
    v1 = "/v1/streams/soak-bad/frames"
    png, raw = "image/png", "application/octet-stream"
    image = {"name": "IMAGE", "datatype": "UINT8"}
    return [
        ("corrupt-png", _post(v1, frame[:40], png)),
        ("random-bytes", _post(v1, os.urandom(300), "image/jpeg")),
        ("gif", _post(v1, b"GIF89a....", "image/gif")),
        ("no-type", _post(v1, frame)),
        ("bomb-png", _post(v1, bomb_png(30000, 30000), png)),
        ("big-png", _post(v1, bomb_png(9000, 9000), png)),
        ("raw-huge", _post(v1, b"\0" * 12, raw, width=10**9, height=10**9)),
        ("raw-short", _post(v1, b"\0" * 11, raw, width=2, height=2)),
        ("bad-id", _post("/v1/streams/..%2Fetc/frames", frame, png)),
        ("long-id", _post("/v1/streams/" + "x" * 200 + "/frames", frame, png)),
        ("bad-mode", _post(v1, frame, png, mode="bayes")),
        ("nan-time", _post(v1, frame, png, timestamp="nan")),
        ("bad-outputs", _post(v1, frame, png, outputs="depth")),
        ("too-big", _post(v1, b"\xff" * (2 << 20), "image/jpeg")),
        ("unknown-get", {"method": "GET", "url": "/v1/streams/soak-never-made"}),
        ("unknown-reset", {"method": "POST", "url": "/v1/streams/soak-never-made/reset"}),
        ("unknown-delete", {"method": "DELETE", "url": "/v1/streams/soak-never-made"}),
        ("v2-garbage", _infer(b"{not json")),
        ("v2-deep", _infer(b"[" * 50000 + b"]" * 50000)),
        ("v2-gzip-bomb", _infer(GZIP_BOMB, **{"Content-Encoding": "gzip"})),
        ("v2-shape", _infer({"inputs": [{**image, "shape": [2**40, 2**40, 3], "data": [1]}]})),
        (
            "v2-bad-seq",
            _infer(
                {
                    "inputs": [{**image, "shape": [1, 1, 3], "data": [1, 2, 3]}],
                    "parameters": {"sequence_id": -5},
                }
            ),
        ),
        ("v2-unknown-model", {"method": "POST", "url": "/v2/models/resnet/infer", "json": {"inputs": []}}),
    ]


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_tiny_weights(folder: Path) -> Path:
    """A randomly initialised, very small model and its card: a real net that runs fast on CPU."""
    import torch
    from safetensors.torch import save_file

    from models import ModelCard, create_model

    torch.manual_seed(0)
    model = create_model(MODEL, widths=(4, 4, 8, 8, 8))
    classes = ("sky", "building", "road", "sidewalk", "tree", "car", "pedestrian", "other")
    palette = tuple((32 * i, 255 - 32 * i, (97 * i) % 256) for i in range(len(classes)))
    card = ModelCard(name=MODEL, classes=classes, palette=palette, input_size=(48, 64), config=model.config)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / f"{MODEL}.safetensors"))
    card.save(folder / f"{MODEL}.json")
    return folder


SERVER_ENV = {
    "STREAMUQ_THREADS": "1",
    "STREAMUQ_BNN_SAMPLES": "2",
    "STREAMUQ_MAX_BODY_BYTES": str(1 << 20),  # oversized bodies are cheap to refuse
    "STREAMUQ_MAX_STREAMS": "48",
    "STREAMUQ_STREAM_TTL_S": "20",  # idle streams are evicted during the run too
    # glibc raises its mmap threshold to the largest block ever freed, so the activations of the
    # first full batch stay in the heap once freed: a one-off RSS step (75-330 MiB with the
    # shipped model) at a random time that is not a leak. A fixed threshold keeps the curve flat
    # (shipped model, 2000 frames: 388 -> 388 MiB; without it 498 -> 602). --glibc-default drops it.
    "MALLOC_MMAP_THRESHOLD_": "131072",
}


def server_env(extra: dict[str, str] | None, glibc_default: bool) -> dict[str, str]:
    env = {**os.environ, **SERVER_ENV, **(extra or {})}
    if glibc_default:
        env.pop("MALLOC_MMAP_THRESHOLD_", None)
    return env


@contextlib.contextmanager
def live_server(
    weights_dir: Path | None,
    log_path: Path,
    env: dict[str, str] | None = None,
    *,
    glibc_default: bool = False,
) -> Iterator[tuple[str, int]]:
    """`streamuq serve` on a free port; yields (base URL, pid); SIGTERM at the end."""
    port = free_port()
    cmd = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--device", "cpu", "--log-level", "warning"]
    if weights_dir is not None:
        cmd += ["--weights-dir", str(weights_dir)]
    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=server_env(env, glibc_default), stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/v2/health/ready", timeout=2.0).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError("server not ready after 180 s")
            time.sleep(0.3)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rss_mib(pid: int) -> float:
    """Resident memory of `pid` in MiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# --------------------------------------------------------------------------- the drivers


class Soak:
    """One soak run against `url` (server process `pid`)."""

    def __init__(self, url: str, pid: int, config: SoakConfig, headers: dict[str, str] | None = None) -> None:
        self.url = url
        self.pid = pid
        self.config = config
        self.headers = headers or {}
        self.rng = random.Random(config.seed)
        self.frames = make_frames(np.random.default_rng(config.seed))
        self.bad = bad_requests(self.frames[0][0])
        self.report = SoakReport()
        self.budget = config.frames
        self.warm_at = int(config.frames * config.warmup_share)

    # -- bookkeeping

    def take_frame(self) -> bool:
        """Claim one frame of the budget; False when it is spent."""
        if self.budget <= 0:
            return False
        self.budget -= 1
        self.report.frames_sent += 1
        if self.report.frames_sent == self.warm_at:
            self.report.rss_warm_mib = rss_mib(self.pid)
        if self.report.frames_sent % max(1, self.config.frames // 10) == 0:
            self.report.rss_by_tenth.append(round(rss_mib(self.pid), 1))
        return True

    async def request(self, client: httpx.AsyncClient, name: str, **kwargs: Any) -> httpx.Response | None:
        self.report.http_requests += 1
        try:
            response = await client.request(**kwargs)
        except httpx.HTTPError as exc:
            self.report.lost += 1
            self.report.problems.append(f"{name}: no answer ({type(exc).__name__}: {exc})"[:200])
            return None
        self.report.statuses[response.status_code] += 1
        if response.status_code >= 500:  # no shutdown and no failing backend here: any 5xx is a fault
            self.report.server_errors += 1
            self.report.problems.append(f"{name}: {response.status_code} {response.text[:160]}")
        if response.status_code == 429:
            self.report.refused_overload += 1
            if "retry-after" not in response.headers:
                self.report.problems.append(f"{name}: 429 without Retry-After")
        return response

    # -- HTTP

    async def http_worker(self, client: httpx.AsyncClient) -> None:
        c = self.config
        while self.budget > 0:
            roll = self.rng.random()
            if roll < c.bad_share / (1 + c.bad_share):
                name, kwargs = self.rng.choice(self.bad)
                self.report.bad_sent += 1
                response = await self.request(client, name, **kwargs)
                if response is not None and response.status_code < 400:
                    self.report.bad_accepted.append(f"{name}: {response.status_code}")
                continue
            index = self.rng.randrange(c.streams)
            stream = f"soak-{index}"
            if self.rng.random() < c.delete_share:
                response = await self.request(client, "delete", method="DELETE", url=f"/v1/streams/{stream}")
                if response is not None and response.status_code == 204:
                    self.report.deletes += 1
                continue
            if not self.take_frame():
                return
            if self.rng.random() < c.kserve_share:
                await self.kserve_frame(client, index)
                continue
            body, content_type = self.rng.choice(self.frames)
            response = await self.request(
                client,
                "frame",
                method="POST",
                url=f"/v1/streams/{stream}/frames",
                content=body,
                headers={"Content-Type": content_type},
                params={"mode": MODES[index % len(MODES)], "outputs": "mask,entropy,epistemic"},
            )
            if response is not None and response.status_code not in (200, 404, 409, 429, 503):
                self.report.problems.append(f"frame: unexpected {response.status_code} {response.text[:160]}")

    async def kserve_frame(self, client: httpx.AsyncClient, index: int) -> None:
        image = np.random.default_rng(index).integers(0, 256, (24, 32, 3), dtype=np.uint8)
        body = {
            "inputs": [
                {"name": "IMAGE", "datatype": "UINT8", "shape": [24, 32, 3], "data": image.ravel().tolist()}
            ],
            "outputs": [{"name": "MASK"}, {"name": "ENTROPY"}],
            "parameters": {"sequence_id": 900_000 + index, "sequence_start": True, "sequence_end": True},
        }
        await self.request(client, "kserve", method="POST", url=f"/v2/models/{MODEL}/infer", json=body)

    # -- WebSocket

    async def ws_worker(self, number: int) -> None:
        session = 0
        ws_frames = self.config.frames * self.config.ws_share
        while self.budget > 0 and self.report.ws_frames < ws_frames:
            session += 1
            stream = f"soak-ws-{number}-{session % 4}"
            burst = self.rng.randint(5, 30)
            await self.ws_session(stream, burst)
            if self.rng.random() < 0.5:  # churn: the next session on this id starts afresh
                async with httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=60) as client:
                    await self.request(client, "ws-delete", method="DELETE", url=f"/v1/streams/{stream}")

    async def ws_session(self, stream: str, burst: int) -> None:
        ws_url = "ws" + self.url.removeprefix("http") + f"/v1/streams/{stream}/ws?outputs=mask,entropy"
        sent = 0
        bad = 0
        try:
            async with connect(ws_url, additional_headers=self.headers, max_size=None, open_timeout=30) as ws:
                for i in range(burst):
                    if not self.take_frame():
                        break
                    await ws.send(self.rng.choice(self.frames)[0])
                    sent += 1
                    if i == burst // 2 and self.rng.random() < self.config.bad_share * 3:
                        await ws.send(b"\x89PNG\r\n\x1a\ntruncated")  # answered with an error
                        bad += 1
                        self.report.bad_sent += 1
                accounted = 0
                while accounted < sent + bad:
                    message = json.loads(await asyncio.wait_for(ws.recv(), 60))
                    if message["type"] == "result":
                        self.report.ws_results += 1
                        self.report.ws_dropped += message["dropped_frames"]
                        accounted += 1 + message["dropped_frames"]
                    elif message["type"] == "error":
                        self.report.ws_errors += 1
                        accounted += 1
                if accounted != sent + bad:
                    self.report.problems.append(f"ws {stream}: {accounted} accounted for {sent + bad} sent")
        except Exception as exc:  # a socket that fails or stalls loses its frames: count them
            self.report.lost += max(1, sent)
            self.report.problems.append(f"ws {stream}: {type(exc).__name__}: {exc}"[:200])
        self.report.ws_frames += sent

    # -- the run

    async def sample_rss(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.report.rss_max_mib = max(self.report.rss_max_mib, rss_mib(self.pid))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    async def run(self) -> SoakReport:
        start = time.perf_counter()
        self.report.rss_start_mib = rss_mib(self.pid)
        stop = asyncio.Event()
        sampler = asyncio.create_task(self.sample_rss(stop))
        limits = httpx.Limits(max_connections=self.config.workers * 2)
        async with httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=60, limits=limits
        ) as client:
            # One shared budget: the HTTP workers and WebSocket sessions draw from it until it is spent.
            await asyncio.gather(
                *(self.http_worker(client) for _ in range(self.config.workers)),
                *(self.ws_worker(n) for n in range(self.config.ws_sessions)),
            )
            await self.check_quiet(client)
        stop.set()
        await sampler
        self.report.rss_end_mib = rss_mib(self.pid)
        if not self.report.rss_warm_mib:
            self.report.rss_warm_mib = self.report.rss_start_mib
        self.report.seconds = round(time.perf_counter() - start, 1)
        return self.report

    async def check_quiet(self, client: httpx.AsyncClient) -> None:
        """After the load: nothing queued, and every stream deleted leaves no state behind."""
        listing = await self.request(client, "list", method="GET", url="/v1/streams")
        if listing is None:
            return
        for info in listing.json()["streams"]:
            await self.request(client, "cleanup", method="DELETE", url=f"/v1/streams/{info['stream_id']}")
        metrics = await self.request(client, "metrics", method="GET", url="/metrics")
        if metrics is None:
            return
        values = {
            line.split()[0]: float(line.split()[1])
            for line in metrics.text.splitlines()
            if line.startswith(("streamuq_queue_depth", "streamuq_state_bytes", "streamuq_streams_active"))
        }
        for name in ("streamuq_queue_depth", "streamuq_state_bytes"):
            if values.get(name, 0.0) != 0.0:
                self.report.problems.append(f"after cleanup {name} = {values[name]}")


def run_soak(url: str, pid: int, config: SoakConfig, headers: dict[str, str] | None = None) -> SoakReport:
    """Drive the server at `url` (process `pid`) per `config`; the report says what happened."""
    return asyncio.run(Soak(url, pid, config, headers).run())


def parse_args(argv: list[str]) -> argparse.Namespace:
    defaults = SoakConfig()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=defaults.frames)
    parser.add_argument("--streams", type=int, default=defaults.streams)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--ws-sessions", type=int, default=defaults.ws_sessions)
    parser.add_argument("--bad-share", type=float, default=defaults.bad_share)
    parser.add_argument("--rss-bound-mib", type=float, default=defaults.rss_bound_mib)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--shipped", action="store_true", help="serve the shipped weights (models/weights)")
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    parser.add_argument(
        "--glibc-default",
        action="store_true",
        help="leave glibc's dynamic mmap threshold on (see SERVER_ENV)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="STREAMUQ_X=V",
        help="a server setting (repeatable), e.g. STREAMUQ_QUEUE_SIZE=4 to soak under overload",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    config = SoakConfig(
        frames=args.frames,
        streams=args.streams,
        workers=args.workers,
        ws_sessions=args.ws_sessions,
        bad_share=args.bad_share,
        rss_bound_mib=args.rss_bound_mib,
        seed=args.seed,
    )
    with tempfile.TemporaryDirectory() as tmp:
        weights = None if args.shipped else write_tiny_weights(Path(tmp) / "weights")
        log = Path(tmp) / "server.log"
        env = dict(item.split("=", 1) for item in args.server_env)
        with live_server(weights, log, env, glibc_default=args.glibc_default) as (url, pid):
            report = run_soak(url, pid, config)
        server_log = log.read_text()
    summary = report.summary(config)
    if "Traceback" in server_log:
        summary["passed"] = False
        summary["problems"].append("the server log holds a traceback: " + server_log[-1500:])
    text = json.dumps(summary, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
