"""A real `streamuq serve` in a subprocess on a free port, once per module, with a tiny real model."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch
from safetensors.torch import save_file

from models import ModelCard, create_model

REPO = Path(__file__).resolve().parents[2]
CLASSES = ("sky", "building", "road", "sidewalk", "tree", "car", "pedestrian", "other")


def write_tiny_weights(
    folder: Path, name: str = "unet-ss-mcd", input_size: tuple[int, int] = (48, 64)
) -> Path:
    """A randomly initialised, very small `name` with its card: a real model that runs fast on CPU."""
    torch.manual_seed(0)
    model = create_model(name, widths=(4, 4, 8, 8, 8))
    palette = tuple((32 * i, 255 - 32 * i, (97 * i) % 256) for i in range(len(CLASSES)))
    card = ModelCard(name=name, classes=CLASSES, palette=palette, input_size=input_size, config=model.config)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), str(folder / f"{name}.safetensors"))
    card.save(folder / f"{name}.json")
    return folder


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")


def start_server(
    args: list[str], log: Path, env: dict[str, str] | None = None, timeout: float = 90.0
) -> LiveServer:
    """`streamuq serve ARGS` on a free port; returns once /v2/health/ready answers 200."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "service.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *args,
    ]
    full_env = {**os.environ, "STREAMUQ_THREADS": "1", "STREAMUQ_BNN_SAMPLES": "2", **(env or {})}
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1.0).status_code == 200:
                return LiveServer(url, process, log)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def stop_server(server: LiveServer) -> int:
    """SIGTERM, as a process manager would. Uvicorn re-raises the signal after a clean shutdown,
    so a clean exit is -SIGTERM with "Application shutdown complete." in the log."""
    server.process.send_signal(signal.SIGTERM)
    try:
        return server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        raise


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("e2e")
    weights = write_tiny_weights(folder / "weights")
    live = start_server(["--weights-dir", str(weights), "--device", "cpu"], folder / "server.log")
    yield live
    code = stop_server(live)
    log = live.log.read_text()
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in log, (
        f"unclean exit {code}:\n{log[-3000:]}"
    )
    assert "Traceback" not in log, log[-5000:]
