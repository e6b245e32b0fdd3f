"""A real `streamuq serve` in a subprocess on a free port, and a tiny real model for it to serve.

Imported as `live_server` (pyproject puts tests/support on pytest's pythonpath)."""

from __future__ import annotations

import contextlib
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
from tiny_model import write_tiny_weights

REPO = Path(__file__).resolve().parents[2]
__all__ = ["REPO", "LiveServer", "free_port", "serving", "start_server", "stop_server", "write_tiny_weights"]


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


@contextlib.contextmanager
def serving(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """`start_server` for the length of a `with` block, stopped (SIGTERM) after it."""
    server = start_server(args, log, env)
    try:
        yield server
    finally:
        stop_server(server)
