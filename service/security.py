"""API keys and stream ownership: who is calling, and which streams are theirs.

Keys come from `STREAMUQ_API_KEYS` (none: the server is open). A client presents
one as `Authorization: Bearer <key>`; a browser WebSocket, which cannot set
headers, as the query parameter `?token=<key>`. Presented keys are hashed and
compared with every configured key in constant time (`hmac.compare_digest`).
The rest of the service knows a key only by its id, a short hash, stored as the
owner of the streams the key creates. Another key's stream looks exactly like a
missing one (404 with the same message), so stream ids do not leak between keys.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Mapping
from typing import Protocol

from service.errors import StreamNotFound, Unauthorized
from service.types import StreamInfo

# Open without a key: health probes (load balancers hold no keys), the demo page and its
# files (the page asks for a key before it calls the API), and the API docs.
OPEN_PATHS = frozenset(
    {"/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/", "/docs", "/redoc", "/openapi.json"}
)
OPEN_PREFIXES = ("/static/", "/docs/")
METRICS_PATH = "/metrics"
TOKEN_QUERY = "token"


def key_id(key: str) -> str:
    """A key's public name: the first 12 hex digits of its SHA-256 (never the key itself)."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class KeyRing:
    """The configured API keys, held as SHA-256 digests."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._keys = [(hashlib.sha256(k.encode()).digest(), key_id(k)) for k in keys]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def identify(self, presented: str | None) -> str:
        """The key id of `presented`; Unauthorized when it is missing or no key of ours.

        Digests of equal length are compared, each with `hmac.compare_digest` and
        without stopping at a match, so timing says nothing about the keys.
        """
        if not presented:
            raise Unauthorized(
                "this server needs an API key: send `Authorization: Bearer <key>` "
                f"(a browser WebSocket may use `?{TOKEN_QUERY}=<key>`)"
            )
        digest = hashlib.sha256(presented.encode()).digest()
        found: str | None = None
        for known, kid in self._keys:
            if hmac.compare_digest(known, digest):
                found = kid
        if found is None:
            raise Unauthorized("the API key is not valid here; check STREAMUQ_API_KEYS on the server")
        return found


def is_open(path: str, *, metrics_public: bool) -> bool:
    """Whether `path` is served without a key."""
    if path == METRICS_PATH:
        return metrics_public
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def presented_key(headers: Mapping[str, str], query: Mapping[str, str], *, websocket: bool) -> str | None:
    """The key a request carries: the Bearer header, or for a WebSocket also `?token=`.

    HTTP requests must use the header: query strings end up in access logs.
    """
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if websocket:
        return query.get(TOKEN_QUERY) or None
    return None


class StreamLookup(Protocol):
    def stream_info(self, stream_id: str) -> StreamInfo: ...


def visible(info: StreamInfo, owner: str | None) -> bool:
    """Whether the caller `owner` (a key id, None when keys are off) may see the stream."""
    return owner is None or info.owner == owner


def check_owner(engine: StreamLookup, stream_id: str, owner: str | None, ttl_s: float) -> None:
    """Refuse (404) a stream that exists but belongs to another key; a missing one passes.

    The message is the one the stream table gives for a missing stream, so that a
    caller cannot tell another key's stream from no stream at all.
    """
    if owner is None:
        return
    try:
        info = engine.stream_info(stream_id)
    except StreamNotFound:
        return
    if info.owner != owner:
        raise not_found(stream_id, ttl_s)


def not_found(stream_id: str, ttl_s: float) -> StreamNotFound:
    # Worded as `service.streams.StreamTable.get` words a missing stream (a test keeps them equal).
    return StreamNotFound(
        f"stream {stream_id!r} not found; send it a frame to create it (it may have been "
        f"idle for more than {ttl_s:g} s and evicted)"
    )


def channel(stream_id: str, owner: str | None) -> str:
    """The broadcast channel of a stream: per owner, so a subscriber never sees another key's
    stream of the same id ('/' cannot occur in a stream id, so channels never collide)."""
    return stream_id if owner is None else f"{owner}/{stream_id}"


_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*")


class RedactTokens(logging.Filter):
    """Hides `?token=<key>` in log records: uvicorn logs every WebSocket path with its query."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", record.msg)
        return True


def redact_server_logs(names: Iterable[str] = ("uvicorn.error", "uvicorn.access")) -> None:
    """Add `RedactTokens` to the server's loggers, once."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
