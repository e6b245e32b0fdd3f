"""Errors a client can cause, each with its HTTP status and a stable code.

Messages name the bad value and say how to fix it; one exception handler in the
API maps them to `{"error": {"code": ..., "message": ...}}`.
"""

from __future__ import annotations


class StreamUQError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class InvalidRequest(StreamUQError):
    status_code = 400
    code = "invalid_request"


class FrameDecodeError(StreamUQError):
    status_code = 400
    code = "frame_decode_error"


class StreamNotFound(StreamUQError):
    status_code = 404
    code = "stream_not_found"


class ModelNotFound(StreamUQError):
    status_code = 404
    code = "model_not_found"


class OutOfOrderFrame(StreamUQError):
    status_code = 409
    code = "out_of_order_frame"


class ModeConflict(StreamUQError):
    status_code = 409
    code = "mode_conflict"


class FrameSuperseded(StreamUQError):
    """A newer frame of the same stream replaced this one in the queue (newest wins)."""

    status_code = 409
    code = "frame_superseded"


class PayloadTooLarge(StreamUQError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(StreamUQError):
    status_code = 415
    code = "unsupported_media_type"


class InvalidParameter(StreamUQError):
    status_code = 422
    code = "invalid_parameter"


class ImageTooLarge(InvalidParameter):
    """The image header declares more pixels than the server decodes (decompression bombs included)."""

    status_code = 413
    code = "image_too_large"


class TooManyStreams(StreamUQError):
    status_code = 429
    code = "too_many_streams"


class Overloaded(StreamUQError):
    status_code = 429
    code = "overloaded"


class InferenceFailed(StreamUQError):
    """The batch holding this frame failed inside the backend; other streams go on."""

    status_code = 503
    code = "inference_failed"


class ShuttingDown(StreamUQError):
    status_code = 503
    code = "shutting_down"


class RequestTimeout(StreamUQError):
    """The request took longer than `STREAMUQ_REQUEST_TIMEOUT_S`; its work was cancelled."""

    status_code = 503
    code = "request_timeout"


class ServerBusy(StreamUQError):
    """Too many requests and WebSockets are open at once (`STREAMUQ_MAX_CONNECTIONS`)."""

    status_code = 503
    code = "server_busy"


class NotReady(StreamUQError):
    status_code = 503
    code = "not_ready"


class Unauthorized(StreamUQError):
    status_code = 401
    code = "unauthorized"
