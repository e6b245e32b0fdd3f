"""A real `streamuq serve` in a subprocess on a free port, once per module, with a tiny real model."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from live_server import LiveServer, start_server, stop_server, write_tiny_weights


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
