"""`streamuq serve`: run the app under uvicorn; every option also from `STREAMUQ_*`."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

import uvicorn
from pydantic import ValidationError

from models import load_card
from service import cluster
from service.app import create_app
from service.config import Settings


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="streamuq serve",
        description="Serve per-pixel segmentation uncertainty over HTTP, WebSocket and KServe v2. "
        "Options left out come from the environment (STREAMUQ_HOST, STREAMUQ_PORT, ...), then defaults.",
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default 8000; 0 picks a free one)")
    parser.add_argument("--model", help="shipped model name (default unet-ss-mcd)")
    parser.add_argument("--weights-dir", dest="weights_dir", help="folder of <model>.json/.safetensors")
    parser.add_argument("--backend", choices=["torch", "onnx"], help="inference backend (default torch)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="inference device (default auto)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    cluster.add_arguments(parser)
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Command-line values over the environment over the defaults."""
    given: dict[str, Any] = {
        key: value
        for key in ("host", "port", "model", "weights_dir", "backend", "device")
        if (value := getattr(args, key)) is not None
    }
    return Settings(**given)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        settings = settings_from_args(args)
        load_card(settings.model, settings.weights_dir)  # fail here, in one line, not in a lifespan traceback
    except (ValidationError, FileNotFoundError, ValueError) as exc:
        print(f"streamuq serve: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.ray:
        return cluster.run_from_args(settings, args)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        ws_max_size=settings.ws_max_message_bytes,
        # Frames and maps are PNG/JPEG already: deflating them again costs ~20 ms a frame for ~25 %.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=int(settings.request_timeout_s),
    )
    return 0
