"""deploy/kuberay: the RayService manifest names a builder that exists and the pinned Ray version."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cluster import ROUTER_CLASS, app_builder

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "deploy" / "kuberay" / "rayservice.yaml"

pytest.importorskip("ray.serve", reason="needs the [cluster] extra: pip install -e '.[dev,cluster]'")


def _manifest() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(MANIFEST.read_text())
    return data


def _ray_pin() -> str:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    (requirement,) = extras["cluster"]
    match = re.fullmatch(r"ray\[serve\]==(\S+)", requirement)
    assert match, requirement
    return match.group(1)


def test_kuberay_manifest_uses_the_pinned_ray() -> None:
    pin = _ray_pin()
    assert _manifest()["spec"]["rayClusterConfig"]["rayVersion"] == pin
    assert f"rayproject/ray:{pin}-" in (ROOT / "deploy" / "kuberay" / "Dockerfile").read_text()


def test_kuberay_serve_config_imports_the_app_builder() -> None:
    (application,) = yaml.safe_load(_manifest()["spec"]["serveConfigV2"])["applications"]
    module, _, name = application["import_path"].partition(":")
    assert getattr(importlib.import_module(module), name) is app_builder
    assert application["route_prefix"] == "/"


def test_kuberay_workers_have_a_gpu_each_and_the_session_header() -> None:
    cluster = _manifest()["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]] + cluster["workerGroupSpecs"]
    for pod in pods:
        (container,) = pod["template"]["spec"]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["RAY_SERVE_SESSION_ID_HEADER_KEY"] == "x-session-id"
    for group in cluster["workerGroupSpecs"]:
        (container,) = group["template"]["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_kuberay_app_builder_pins_streams_with_strict_affinity() -> None:
    (application,) = yaml.safe_load(_manifest()["spec"]["serveConfigV2"])["applications"]
    app = app_builder(application["args"])
    deployment = app._bound_deployment  # Ray has no public accessor for a bound application's deployment
    config = deployment._deployment_config.request_router_config
    assert deployment.num_replicas == application["args"]["replicas"]
    assert deployment.ray_actor_options["num_gpus"] == application["args"]["num_gpus"]
    assert config.request_router_class == ROUTER_CLASS
    assert config.request_router_kwargs == {"num_fallback_replicas": 0}
