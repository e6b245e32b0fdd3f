"""End-to-end latency at one stream: in-process engine vs HTTP POST vs WebSocket, same frames, same run.

    .venv/bin/python tests/e2e/latency_probe.py [--frames 100] [--mode vq-bnn] [--tiny]

Uses the shipped weights (models/weights) unless `--tiny` (a random tiny net). Frames are
the CamVid PNGs in ../shared/data/camvid/seq (480×360), cycled. Prints p50/p99 in ms.
Not a test (no `test_` prefix): a tool for the numbers the service's notes quote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import REPO, start_server, stop_server, write_tiny_weights

from service.config import Settings
from service.engine import Engine

SEQ = REPO.parent / "shared" / "data" / "camvid" / "seq"


def percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):7.1f} ms   p99 {np.percentile(ms, 99):7.1f} ms   (n={len(ms)})"


async def engine_latency(settings: Settings, images: list[np.ndarray], n: int, mode: str) -> list[float]:
    engine = Engine.from_settings(settings)
    await engine.start()
    times = []
    try:
        for i in range(n):
            start = time.perf_counter()
            await engine.submit("probe", images[i % len(images)], mode=mode)  # type: ignore[arg-type]
            times.append(time.perf_counter() - start)
    finally:
        await engine.stop()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--mode", default="vq-bnn")
    parser.add_argument("--tiny", action="store_true", help="a random tiny net instead of the shipped one")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    paths = sorted(SEQ.glob("*.png"))
    bodies = [p.read_bytes() for p in paths]
    images = [np.array(Image.open(p).convert("RGB")) for p in paths]
    weights = write_tiny_weights(Path(tempfile.mkdtemp()) / "w") if args.tiny else REPO / "models" / "weights"
    settings = Settings(weights_dir=weights, device="cpu", threads=args.threads)
    n, warm = args.frames, 5

    engine = asyncio.run(engine_latency(settings, images, n + warm, args.mode))[warm:]

    log = Path(tempfile.mkdtemp()) / "server.log"
    server = start_server(["--weights-dir", str(weights)], log, env={"STREAMUQ_THREADS": str(args.threads)})
    try:
        post, server_total = [], []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for i in range(n + warm):
                start = time.perf_counter()
                response = client.post(
                    "/v1/streams/probe-http/frames",
                    content=bodies[i % len(bodies)],
                    headers={"Content-Type": "image/png"},
                    params={"mode": args.mode},
                )
                elapsed = time.perf_counter() - start
                response.raise_for_status()
                if i >= warm:
                    post.append(elapsed)
                    server_total.append(response.json()["timings_ms"]["total"] / 1000)
        ws_times = []
        with connect(f"{server.ws_url}/v1/streams/probe-ws/ws?mode={args.mode}", max_size=None) as ws:
            for i in range(n + warm):
                start = time.perf_counter()
                ws.send(bodies[i % len(bodies)])
                result = json.loads(ws.recv(timeout=60))
                elapsed = time.perf_counter() - start
                assert result["type"] == "result", result
                if i >= warm:
                    ws_times.append(elapsed)
    finally:
        stop_server(server)

    print(
        f"model: {'tiny random' if args.tiny else 'shipped'} {settings.model}, mode {args.mode}, 480×360 PNGs"
    )
    print(f"engine.submit in-process : {percentiles(engine)}")
    print(f"server total (decode→encode): {percentiles(server_total)}")
    print(f"HTTP POST end-to-end      : {percentiles(post)}")
    print(f"WebSocket end-to-end      : {percentiles(ws_times)}")


if __name__ == "__main__":
    main()
