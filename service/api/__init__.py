"""HTTP, WebSocket and KServe-v2 routes: one router per resource, all calling the engine."""

from importlib.metadata import PackageNotFoundError, version

try:
    SERVICE_VERSION = version("streamuq")
except PackageNotFoundError:  # running from a source tree that was never installed
    SERVICE_VERSION = "0.0.0"

DESCRIPTION = """
Push the frames of a video stream; get back, for every pixel, the class, how sure the
model is, and why it is unsure — **aleatoric** (the data) vs **epistemic** (the model) —
at about the cost of one forward pass (VQ-BNN temporal smoothing of MC-dropout predictions).

**Frames.** `POST /v1/streams/{id}/frames` with a JPEG/PNG body, or raw RGB
(`application/octet-stream` with `width`, `height`). A stream starts on its first frame;
`mode` (dnn, bnn, vq-dnn, vq-bnn) applies to a new stream. `timestamp` (seconds) must grow.

**Maps.** 8-bit grayscale PNGs, base64 in JSON. The mask holds class ids (exact). The
others are on a fixed scale stated with each map — confidence on [0, 1], entropy,
aleatoric and epistemic on [0, ln C] nats: value = pixel / 255 · (max − min) + min.
`Accept: application/x-npz` returns uint8 mask and float16 maps instead.
A pixel counts as **uncertain** (`summary.uncertain_fraction`) when its total entropy
exceeds ½ · ln C nats, half the entropy of a uniform guess over the C classes.

**WebSocket.** `/v1/streams/{id}/ws`: binary message = one image; optional text JSON
before it `{"type": "frame", "timestamp": t, "width": w, "height": h}` (the last two
for raw RGB); controls `{"type": "reset"}`, `{"type": "mode", "mode": "dnn"}`,
`{"type": "outputs", "outputs": [...]}`. Answers: this page's frame JSON plus
`"type": "result"`, in order; `{"type": "error", ...}` for a bad frame (the socket stays
open). When frames come faster than the model runs, the newest waiting frame wins and
`dropped_frames` counts the others. `/v1/streams/{id}/subscribe` streams every result of
a stream, whoever feeds it, with `missed` = results this subscriber lost by reading too
slowly; the stream need not exist yet.

**KServe v2 / Triton.** `/v2/...` with the binary tensor and sequence extensions:
`sequence_id` N is stream `N`. **Metrics.** `GET /metrics` (Prometheus).

**Errors.** `{"error": {"code": ..., "message": ...}}` with a 4xx for bad input
(`{"error": "..."}` on /v2); `Retry-After` when overloaded.
Limits (body, image pixels read from the header, stream ids, WebSocket messages, request
time) are refused with the limit and its `STREAMUQ_*` setting named. Every answer carries
`X-Request-ID`; a 500 names it, and so does the server log.

**Auth.** With `STREAMUQ_API_KEYS` set, every call needs `Authorization: Bearer <key>`
(a browser WebSocket may pass `?token=<key>`). Health, the demo page, these docs and
`/metrics` stay open (`STREAMUQ_METRICS_PUBLIC=false` closes metrics). A stream belongs to
the key that created it: to any other key it does not exist (404), nor do its results.
"""
