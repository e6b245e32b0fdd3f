"""HTTP, WebSocket and KServe-v2 routes: one router per resource, all calling the engine."""

from importlib.metadata import PackageNotFoundError, version

try:
    SERVICE_VERSION = version("streamuq")
except PackageNotFoundError:  # running from a source tree that was never installed
    SERVICE_VERSION = "0.0.0"
