"""The soak of `benchmarks/soak.py`, short: a few hundred frames with churn and bad requests mixed in."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest
from live_server import start_server, stop_server, write_tiny_weights

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.soak import SERVER_ENV, SoakConfig, run_soak  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_soak_short_no_5xx_nothing_lost_memory_flat(tmp_path: Path) -> None:
    weights = write_tiny_weights(tmp_path / "weights")
    live = start_server(
        ["--weights-dir", str(weights), "--device", "cpu"], tmp_path / "server.log", env=SERVER_ENV
    )
    config = SoakConfig(frames=400, streams=12, workers=4, ws_sessions=2, bad_share=0.15, rss_bound_mib=48.0)
    try:
        report = run_soak(live.url, live.process.pid, config)
    finally:
        code = stop_server(live)
    summary = report.summary(config)
    assert report.frames_sent == 400 and report.bad_sent >= 20, summary
    assert report.server_errors == 0 and report.lost == 0 and not report.problems, summary
    assert not report.bad_accepted, summary
    assert (
        report.ws_frames > 0 and report.ws_results + report.ws_dropped + report.ws_errors >= report.ws_frames
    )
    assert report.rss_growth_mib <= config.rss_bound_mib, summary
    log = live.log.read_text()
    assert code in (0, -signal.SIGTERM) and "Traceback" not in log, log[-4000:]
