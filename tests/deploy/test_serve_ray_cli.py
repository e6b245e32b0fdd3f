"""`streamuq serve --ray ...` hands the settings and the Ray options to `service.cluster`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tiny_model import write_tiny_weights

from service import cluster, server
from service.config import Settings


@pytest.fixture
def weights(tmp_path: Path) -> str:
    return str(write_tiny_weights(tmp_path, input_size=(24, 32), num_classes=4))


def test_serve_ray_cli_passes_options_to_the_cluster(monkeypatch: pytest.MonkeyPatch, weights: str) -> None:
    calls: list[tuple[Settings, dict[str, Any]]] = []
    monkeypatch.setattr(cluster, "serve_cluster", lambda settings, **kw: calls.append((settings, kw)))
    argv = ["--ray", "--replicas", "3", "--host", "0.0.0.0", "--port", "8123", "--gpus-per-replica", "0.5"]
    assert server.main([*argv, "--replica-metrics-port", "9500", "--weights-dir", weights]) == 0
    ((settings, options),) = calls
    assert (settings.host, settings.port) == ("0.0.0.0", 8123)
    assert options == {
        "replicas": 3,
        "address": None,
        "num_cpus": 1.0,
        "num_gpus": 0.5,
        "metrics_port": 9500,
    }


def test_serve_without_ray_flag_does_not_touch_ray(monkeypatch: pytest.MonkeyPatch, weights: str) -> None:
    monkeypatch.setattr(cluster, "serve_cluster", lambda *a, **kw: pytest.fail("--ray was not given"))
    ran: list[Any] = []
    monkeypatch.setattr(server.uvicorn, "run", lambda app, **kw: ran.append(kw))
    monkeypatch.setattr(server, "create_app", lambda settings: object())
    assert server.main(["--port", "8124", "--weights-dir", weights]) == 0
    assert ran and ran[0]["port"] == 8124


def test_cluster_app_factory_path_must_name_a_function() -> None:
    with pytest.raises(ValueError, match=r"package\.module:function"):
        cluster.load_factory("service.app.create_app")
    assert cluster.load_factory("service.app:create_app").__name__ == "create_app"
