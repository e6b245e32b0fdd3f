"""All settings of the service, from the command line or the environment (`STREAMUQ_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models import DEFAULT_MODEL, MODEL_CONFIGS, WEIGHTS_DIR
from service.types import DEFAULT_MODE, Mode


class Settings(BaseSettings):
    """One place for every knob; validators refuse nonsense at startup, not at the first frame."""

    model_config = SettingsConfigDict(env_prefix="STREAMUQ_", extra="ignore")

    # Serving
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    model: str = DEFAULT_MODEL
    weights_dir: Path = WEIGHTS_DIR
    backend: Literal["torch", "onnx"] = "torch"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compile: bool = False  # torch.compile the model (CUDA mostly)
    threads: int = Field(0, ge=0)  # torch/ORT intra-op threads; 0 = library default
    onnx_cache_dir: Path | None = None  # where the ONNX backend exports to; None = ~/.cache/streamuq/onnx

    # Streams and their state
    default_mode: Mode = DEFAULT_MODE
    tau_frames: float = Field(1.25, gt=0)  # decay constant when frames carry no timestamp
    tau_seconds: float = Field(1.25 / 30, gt=0)  # decay constant for capture timestamps
    bnn_samples: int = Field(30, ge=1, le=256)
    bnn_batch_size: int = Field(8, ge=1)  # MC-dropout samples run together in one forward pass
    max_streams: int = Field(64, ge=1)
    stream_ttl_s: float = Field(300.0, gt=0)
    scene_cut_threshold: float = Field(0.5, gt=0)  # mean total-variation between P and the new p

    # Batching and backpressure
    max_batch_size: int = Field(8, ge=1)
    max_wait_ms: float = Field(2.0, ge=0)
    queue_size: int = Field(64, ge=1)  # frames waiting across all streams
    stream_queue_size: int = Field(4, ge=1)  # frames waiting per stream

    # Limits on what a client can send
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(4096 * 4096, ge=1)
    max_image_side: int = Field(8192, ge=16)
    ws_max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    request_timeout_s: float = Field(30.0, gt=0)
    max_connections: int = Field(512, ge=1)  # HTTP requests in flight + open WebSockets; more get 503

    # Security: comma-separated in the environment (`STREAMUQ_API_KEYS=k1,k2`); none = no auth
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)  # none = CORS off
    metrics_public: bool = True  # /metrics holds no stream ids; false = it needs a key too

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        # Never echo the value in an error: it may hold keys.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        if value not in MODEL_CONFIGS:
            raise ValueError(f"unknown model {value!r}; choose one of {sorted(MODEL_CONFIGS)}")
        return value

    @field_validator("weights_dir")
    @classmethod
    def _existing_dir(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"weights_dir {value} is not a folder")
        return value.resolve()
