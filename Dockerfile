# syntax=docker/dockerfile:1
#
# streamuq: the server and its shipped weights in one image.
#
#   GPU (default): docker build -t streamuq .
#   CPU only:      docker build -t streamuq:cpu --build-arg FLAVOR=cpu .
#
# GPU: a CUDA 13 + cuDNN 9 runtime (the CUDA of torch 2.13's wheel on PyPI and
# of onnxruntime-gpu), Python 3.11 installed by uv. CPU: python:3.11-slim and the
# CPU wheel of torch. Both: a virtualenv in /opt/venv, a non-root user, a
# health check on /v2/health/ready. Needs BuildKit (the default builder since
# Docker 23): only the stages of the chosen flavour are built.

ARG FLAVOR=gpu
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-cudnn-runtime-ubuntu22.04
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.9.26

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------- build: GPU
FROM ${CUDA_IMAGE} AS build-gpu
ARG TORCH_VERSION=2.13.0
# onnxruntime-gpu 1.31 is built for CUDA 13, like torch 2.13.
ARG ORT_GPU_VERSION=1.31.1
COPY --from=uv /uv /usr/local/bin/uv
# Python lives in /opt/python and the venv in /opt/venv: the runtime stage copies both to the same paths.
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    VIRTUAL_ENV=/opt/venv
RUN uv venv --python 3.11 /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
# Dependencies first (a layer that survives code changes). PyPI's torch wheel for
# Linux is the CUDA build. onnxruntime (a base dependency) and onnxruntime-gpu
# (the [gpu] extra) install the same `onnxruntime` package: drop the CPU one and
# reinstall the GPU one so that its files are the ones left.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install "torch==${TORCH_VERSION}" \
    && uv pip install -r pyproject.toml --extra gpu \
    && uv pip uninstall onnxruntime \
    && uv pip install --reinstall --no-deps "onnxruntime-gpu==${ORT_GPU_VERSION}" \
    && /opt/venv/bin/python -c "import onnxruntime as ort, sys; \
sys.exit(0 if 'CUDAExecutionProvider' in ort.get_available_providers() else 'onnxruntime has no CUDA provider')"
COPY models ./models
COPY service ./service
RUN uv pip install --no-deps .

# ---------------------------------------------------------------- build: CPU
FROM ${PYTHON_IMAGE} AS build-cpu
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    VIRTUAL_ENV=/opt/venv
RUN uv venv --python /usr/local/bin/python3.11 /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
# The CPU wheel first: a bare `torch` requirement would pull GBs of CUDA packages.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}" \
    && uv pip install -r pyproject.toml
COPY models ./models
COPY service ./service
RUN uv pip install --no-deps .

# ---------------------------------------------------------------- runtimes
FROM ${CUDA_IMAGE} AS runtime-gpu
COPY --from=build-gpu /opt/python /opt/python
COPY --from=build-gpu /opt/venv /opt/venv

FROM ${PYTHON_IMAGE} AS runtime-cpu
COPY --from=build-cpu /opt/venv /opt/venv

# ---------------------------------------------------------------- the image
# hadolint ignore=DL3006
FROM runtime-${FLAVOR}
ARG UID=10001
LABEL org.opencontainers.image.title="streamuq" \
      org.opencontainers.image.description="Real-time per-pixel uncertainty for video segmentation" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed mmap threshold makes glibc return freed batch buffers to the OS: without it RSS steps
# up once by 75-330 MiB and stays there (allocator caching, not a leak; see benchmarks/soak.py).
ENV PATH=/opt/venv/bin:$PATH \
    MALLOC_MMAP_THRESHOLD_=131072 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    STREAMUQ_HOST=0.0.0.0 \
    STREAMUQ_PORT=8000
# The weights ship inside the package (models/weights); refuse to build an image without them.
RUN groupadd --system --gid "${UID}" streamuq \
    && useradd --system --uid "${UID}" --gid "${UID}" --create-home --home-dir /home/streamuq \
        --shell /usr/sbin/nologin streamuq \
    && python -c "import sys; from models import WEIGHTS_DIR; \
sys.exit(0 if any(WEIGHTS_DIR.glob('*.safetensors')) else f'no weights in {WEIGHTS_DIR}: run make train first')"
USER ${UID}:${UID}
WORKDIR /home/streamuq
EXPOSE 8000
# Ready only once the model is loaded and warmed up; the start period covers that.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('STREAMUQ_PORT', '8000')}/v2/health/ready\", timeout=4)"]
CMD ["streamuq", "serve", "--host", "0.0.0.0"]
