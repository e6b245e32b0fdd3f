"""End-to-end latency at one stream: in-process engine vs HTTP POST vs WebSocket, same frames, same run.

    .venv/bin/python tests/e2e/latency_probe.py [--frames 100] [--mode vq-bnn] [--random | --tiny]

Uses the shipped weights (models/weights); `--random`: the shipped architecture and input
size with random weights (same cost, before training); `--tiny`: a tiny random net. Frames are
the CamVid PNGs in ../shared/data/camvid/seq (480×360), cycled. Prints p50/p99 in ms.
Not a test (no `test_` prefix): a tool for the numbers the service's notes quote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))  # the shared test helpers
from live_server import REPO, start_server, stop_server, write_tiny_weights

from service.config import Settings
from service.engine import Engine

SEQ = REPO.parent / "shared" / "data" / "camvid" / "seq"


def percentiles(seconds: list[float]) -> str:
    ms = np.asarray(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):7.1f} ms   p99 {np.percentile(ms, 99):7.1f} ms   (n={len(ms)})"


class InProcessEngine:
    """The engine on its own event loop in a thread, so that its frames interleave with the server's."""

    def __init__(self, settings: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.engine = Engine.from_settings(settings)
        self._run(self.engine.start())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit(self, image: np.ndarray, mode: str) -> float:
        start = time.perf_counter()
        self._run(self.engine.submit("probe", image, mode=mode))
        return time.perf_counter() - start

    def close(self) -> None:
        self._run(self.engine.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def write_random_full_size(folder: Path) -> Path:
    """`unet-ss-mcd` at its shipped widths and input size (192×256), randomly initialised."""
    from safetensors.torch import save_file

    from models import ModelCard, create_model
    from models.train import INPUT_SIZE

    model = create_model("unet-ss-mcd")
    palette = tuple((32 * i, 255 - 32 * i, (97 * i) % 256) for i in range(model.config.num_classes))
    classes = tuple(f"class{i}" for i in range(model.config.num_classes))
    card = ModelCard("unet-ss-mcd", classes, palette, INPUT_SIZE, model.config)
    folder.mkdir(parents=True)
    save_file(model.state_dict(), str(folder / "unet-ss-mcd.safetensors"))
    card.save(folder / "unet-ss-mcd.json")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--mode", default="vq-bnn")
    parser.add_argument("--tiny", action="store_true", help="a random tiny net instead of the shipped one")
    parser.add_argument("--random", action="store_true", help="the shipped net's shape, random weights")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    paths = sorted(SEQ.glob("*.png"))
    bodies = [p.read_bytes() for p in paths]
    images = [np.array(Image.open(p).convert("RGB")) for p in paths]
    weights = REPO / "models" / "weights"
    if args.tiny:
        weights = write_tiny_weights(Path(tempfile.mkdtemp()) / "w")
    elif args.random:
        weights = write_random_full_size(Path(tempfile.mkdtemp()) / "w")
    settings = Settings(weights_dir=weights, device="cpu", threads=args.threads)
    n, warm = args.frames, 5

    log = Path(tempfile.mkdtemp()) / "server.log"
    server = start_server(["--weights-dir", str(weights)], log, env={"STREAMUQ_THREADS": str(args.threads)})
    local = InProcessEngine(settings)
    engine: list[float] = []
    post: list[float] = []
    server_total: list[float] = []
    ws_times: list[float] = []
    try:
        with (
            httpx.Client(base_url=server.url, timeout=60) as client,
            connect(f"{server.ws_url}/v1/streams/probe-ws/ws?mode={args.mode}", max_size=None) as ws,
        ):
            # Rounds of (engine, POST, WebSocket) frames: load from other processes hits all three alike.
            for i in range(n + warm):
                body, image = bodies[i % len(bodies)], images[i % len(images)]
                elapsed = local.submit(image, args.mode)
                start = time.perf_counter()
                response = client.post(
                    "/v1/streams/probe-http/frames",
                    content=body,
                    headers={"Content-Type": "image/png"},
                    params={"mode": args.mode},
                )
                post_s = time.perf_counter() - start
                response.raise_for_status()
                start = time.perf_counter()
                ws.send(body)
                result = json.loads(ws.recv(timeout=60))
                ws_s = time.perf_counter() - start
                assert result["type"] == "result", result
                if i >= warm:
                    engine.append(elapsed)
                    post.append(post_s)
                    server_total.append(response.json()["timings_ms"]["total"] / 1000)
                    ws_times.append(ws_s)
    finally:
        local.close()
        stop_server(server)

    print(
        f"model: {'tiny random' if args.tiny else 'random' if args.random else 'shipped'} {settings.model}, "
        f"mode {args.mode}, 480×360 PNGs"
    )
    print(f"engine.submit in-process : {percentiles(engine)}")
    print(f"server total (decode→encode): {percentiles(server_total)}")
    print(f"HTTP POST end-to-end      : {percentiles(post)}")
    print(f"WebSocket end-to-end      : {percentiles(ws_times)}")


if __name__ == "__main__":
    main()
