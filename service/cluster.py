"""The same FastAPI app as a Ray Serve deployment: N replicas, each stream pinned to one of them.

A stream's temporal state lives on the replica that served its frames, so every
request of a stream must reach that replica. Ray Serve's consistent-hash request
router (`ray.serve.experimental.consistent_hash_router.ConsistentHashRouter`)
hashes the session header of each HTTP request or WebSocket connection onto a
ring of replicas; with `num_fallback_replicas=0` a request waits for its own
replica instead of spilling onto another one (strict affinity). Clients send
the stream id in that header: `x-session-id` by default, renamed cluster-wide
with `RAY_SERVE_SESSION_ID_HEADER_KEY`. Requests without it are spread at random.

When a replica dies or the set of replicas changes, the ring is rebuilt and the
streams that moved start afresh on their new replica: its engine does not know
them, so their next result says `state_reset: true`.

Ray is the optional `[cluster]` extra; nothing else in the service imports this
module. Each response carries `x-streamuq-replica` (the replica's id) so that
clients, dashboards and tests can see where a stream lives.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import Settings

log = logging.getLogger(__name__)

APP_NAME = "streamuq"
DEPLOYMENT_NAME = "StreamUQ"
DEFAULT_APP_FACTORY = "service.app:create_app"
ROUTER_CLASS = "ray.serve.experimental.consistent_hash_router.ConsistentHashRouter"
REPLICA_HEADER = "x-streamuq-replica"
SESSION_HEADER_ENV = "RAY_SERVE_SESSION_ID_HEADER_KEY"
DEFAULT_SESSION_HEADER = "x-session-id"


def session_header() -> str:
    """The header the router hashes on; set `RAY_SERVE_SESSION_ID_HEADER_KEY` on every node to rename it."""
    return os.environ.get(SESSION_HEADER_ENV, DEFAULT_SESSION_HEADER)


def load_factory(path: str) -> Callable[[Settings], Any]:
    """`"package.module:function"` → the function (an app factory taking `Settings`)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"app factory {path!r} must look like 'package.module:function'")
    factory: Callable[[Settings], Any] = getattr(importlib.import_module(module_name), attr)
    return factory


class ReplicaHeaderMiddleware:
    """Adds `x-streamuq-replica: <id>` to every HTTP response and WebSocket accept."""

    def __init__(self, app: ASGIApp, replica_id: str) -> None:
        self.app = app
        self.header = (REPLICA_HEADER.encode(), replica_id.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


class StreamUQReplica:
    """One replica: builds the FastAPI app (and so its engine) inside the Ray worker, not the driver."""

    def __init__(
        self,
        settings: dict[str, Any],
        app_factory: str = DEFAULT_APP_FACTORY,
        metrics_port: int | None = None,
    ) -> None:
        self._settings = Settings(**settings)
        self._app_factory = app_factory
        self._metrics_port = metrics_port

    def __serve_build_asgi_app__(self) -> Any:
        from ray import serve

        context = serve.get_replica_context()
        replica_id: str = context.replica_id.unique_id
        app = load_factory(self._app_factory)(self._settings)
        app.add_middleware(ReplicaHeaderMiddleware, replica_id=replica_id)
        metrics = getattr(app.state, "metrics", None)
        if self._metrics_port is not None and metrics is not None:
            # Behind Ray's proxy /metrics answers from whichever replica the header picks; Prometheus
            # needs every replica, so each one also serves its registry on base port + its rank on the node.
            from prometheus_client import start_http_server

            port = self._metrics_port + context.rank.local_rank
            start_http_server(port, registry=metrics.registry)
            log.info("replica %s exports its metrics on :%d/metrics", replica_id, port)
        log.info("streamuq replica %s ready (%s)", replica_id, self._app_factory)
        return app


def build_app(
    settings: Settings,
    *,
    replicas: int = 2,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    app_factory: str = DEFAULT_APP_FACTORY,
    metrics_port: int | None = None,
) -> Any:
    """The bound Ray Serve application: pass it to `serve.run(app, name=APP_NAME, route_prefix="/")`.

    `num_gpus` may be fractional to put several replicas on one GPU. With
    `metrics_port`, the k-th replica on a node also serves `/metrics` on
    `metrics_port + k` for Prometheus to scrape every replica. Each
    replica accepts up to `max_streams + queue_size` concurrent requests: a
    WebSocket holds one for its whole life, and frames beyond that are refused
    by the engine's own backpressure (429), not queued inside Ray.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    from ray import serve

    deployment = serve.deployment(
        name=DEPLOYMENT_NAME,
        num_replicas=replicas,
        max_ongoing_requests=settings.max_streams + settings.queue_size,
        ray_actor_options={"num_cpus": num_cpus, "num_gpus": num_gpus},
        request_router_config={
            "request_router_class": ROUTER_CLASS,
            # Strict affinity: never send a stream's frame to a replica that lacks its state.
            "request_router_kwargs": {"num_fallback_replicas": 0},
        },
    )(serve.ingress()(StreamUQReplica))
    return deployment.bind(settings.model_dump(mode="json"), app_factory, metrics_port)


def app_builder(args: dict[str, Any]) -> Any:
    """Entry point for `serve run` / KubeRay `serveConfigV2`: `import_path: service.cluster:app_builder`.

    `args` (all optional): `replicas`, `num_cpus`, `num_gpus`, `metrics_port`,
    `app_factory`; every other setting comes from `STREAMUQ_*` environment variables.
    """
    metrics_port = args.get("metrics_port")
    return build_app(
        Settings(),
        replicas=int(args.get("replicas", 2)),
        num_cpus=float(args.get("num_cpus", 1.0)),
        num_gpus=float(args.get("num_gpus", 0.0)),
        app_factory=args.get("app_factory", DEFAULT_APP_FACTORY),
        metrics_port=None if metrics_port is None else int(metrics_port),
    )


def serve_cluster(
    settings: Settings,
    *,
    replicas: int,
    address: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float | None = None,
    metrics_port: int | None = None,
    blocking: bool = True,
) -> None:
    """Connect to (or start) Ray, start Serve's HTTP proxy on `settings.host:port` and deploy.

    `address=None` joins the cluster in `RAY_ADDRESS` or starts a local one.
    `num_gpus=None` gives each replica one GPU when the cluster has any, else none.
    With `blocking`, serves until SIGTERM or SIGINT, then shuts Serve down (a
    long-lived cluster is better driven by a Serve config: see `app_builder`).
    """
    import ray
    from ray import serve

    ray.init(address=address, ignore_reinit_error=True)
    if num_gpus is None:
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        num_gpus = 1.0 if resources.get("GPU", 0) > 0 else 0.0
    serve.start(http_options={"host": settings.host, "port": settings.port})
    app = build_app(
        settings, replicas=replicas, num_cpus=num_cpus, num_gpus=num_gpus, metrics_port=metrics_port
    )
    serve.run(app, name=APP_NAME, route_prefix="/")
    log.info(
        "serving %d replicas on http://%s:%d; routing on header %r",
        replicas,
        settings.host,
        settings.port,
        session_header(),
    )
    if not blocking:
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    finally:
        log.info("stopping: shutting Ray Serve down")
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--ray` options of `streamuq serve`."""
    group = parser.add_argument_group("Ray Serve (needs the [cluster] extra)")
    group.add_argument("--ray", action="store_true", help="serve as a Ray Serve deployment")
    group.add_argument("--replicas", type=int, default=2, help="replicas of the app (with --ray)")
    group.add_argument(
        "--ray-address", default=None, help="Ray cluster to join (default: RAY_ADDRESS or local)"
    )
    group.add_argument(
        "--gpus-per-replica",
        type=float,
        default=None,
        help="GPUs per replica, may be fractional (default: 1 when the cluster has GPUs, else 0)",
    )
    group.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs per replica")
    group.add_argument(
        "--replica-metrics-port",
        type=int,
        default=None,
        help="each replica also serves /metrics on this port + its rank on the node (for Prometheus)",
    )


def run_from_args(settings: Settings, args: argparse.Namespace) -> int:
    """What `streamuq serve --ray ...` calls after it has built `settings`."""
    try:
        import ray  # noqa: F401
    except ImportError:
        log.error("--ray needs Ray Serve: pip install 'streamuq[cluster]'")
        return 2
    serve_cluster(
        settings,
        replicas=args.replicas,
        address=args.ray_address,
        num_cpus=args.cpus_per_replica,
        num_gpus=args.gpus_per_replica,
        metrics_port=args.replica_metrics_port,
    )
    return 0
