"""An app on the real engine with a tiny random model, driven in-process by TestClient."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.exceptions import StarletteDeprecationWarning
from tiny_model import write_tiny_weights

from service.app import create_app
from service.config import Settings

with warnings.catch_warnings():
    # Starlette 1.10 asks for `httpx2` behind its TestClient; httpx still works, so say nothing.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient


@pytest.fixture(scope="session")
def tiny_weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights folder holding a tiny random `unet-ss-mcd` (8 classes, runs at 32×48)."""
    return write_tiny_weights(tmp_path_factory.mktemp("weights"), input_size=(32, 48))


@pytest.fixture
def settings(tiny_weights_dir: Path) -> Settings:
    return Settings(weights_dir=tiny_weights_dir, device="cpu", bnn_samples=2, threads=1)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
