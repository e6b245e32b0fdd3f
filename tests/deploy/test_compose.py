"""docker-compose.yml without a Docker engine: its structure, its mounted files, `docker-compose config`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
CPU_OVERRIDE = ROOT / "deploy" / "compose.cpu.yml"


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path → host path, for the bind mounts (relative host paths start with ./)."""
    mounts = {}
    for volume in service.get("volumes", []):
        host, container, *_ = volume.split(":")
        if host.startswith("."):
            mounts[container] = (ROOT / host).resolve()
    return mounts


def test_compose_streamuq_reserves_one_nvidia_gpu() -> None:
    service = _load(COMPOSE)["services"]["streamuq"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert service["build"]["context"] == "."
    assert any(str(port).endswith(":8000") for port in service["ports"])


def test_compose_mounted_files_exist() -> None:
    services = _load(COMPOSE)["services"]
    prometheus = _mounts(services["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == ROOT / "deploy" / "prometheus.yml"
    grafana = _mounts(services["grafana"])
    for host in [*prometheus.values(), *grafana.values()]:
        assert host.exists(), host
    assert (grafana["/etc/grafana/provisioning"] / "datasources").is_dir()
    assert (grafana["/etc/grafana/provisioning"] / "dashboards").is_dir()


def test_compose_services_point_at_each_other() -> None:
    """Prometheus scrapes the streamuq service; Grafana's datasource is that Prometheus; the provider
    reads the folder the dashboards are mounted in."""
    services = _load(COMPOSE)["services"]
    scrape = _load(ROOT / "deploy" / "prometheus.yml")["scrape_configs"]
    targets = [
        t
        for job in scrape
        if job["job_name"] == "streamuq"
        for sc in job["static_configs"]
        for t in sc["targets"]
    ]
    assert targets == ["streamuq:8000"]

    grafana_mounts = _mounts(services["grafana"])
    provisioning = grafana_mounts["/etc/grafana/provisioning"]
    (datasource,) = _load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    url = urlparse(datasource["url"])
    assert datasource["type"] == "prometheus" and url.hostname in services
    # Inside the compose network Grafana reaches Prometheus on its container port.
    assert any(str(port).endswith(f":{url.port}") for port in services[str(url.hostname)]["ports"])

    (provider,) = _load(provisioning / "dashboards" / "streamuq.yml")["providers"]
    assert grafana_mounts[provider["options"]["path"]] == ROOT / "deploy" / "grafana" / "dashboards"


def test_compose_cpu_override_builds_the_cpu_flavour() -> None:
    class Loader(yaml.SafeLoader):
        pass

    # Compose's `!reset` tag (v2.24+) drops the GPU reservation; plain YAML does not know it.
    Loader.add_constructor("!reset", lambda loader, node: {"!reset": True})
    override = yaml.load(CPU_OVERRIDE.read_text(), Loader=Loader)
    service = override["services"]["streamuq"]
    assert service["build"]["args"]["FLAVOR"] == "cpu"
    assert service["deploy"] == {"!reset": True}


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose not installed (apt-get install docker-compose)",
)
def test_compose_config_validates() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
