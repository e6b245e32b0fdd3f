"""`streamuq client`: stream a video, a GIF or a folder of images to a server and watch the uncertainty.

    streamuq client street.mp4 --url http://127.0.0.1:8000 --mode vq-bnn --out overlay.mp4

Frames go over the WebSocket `/v1/streams/{id}/ws` as JPEGs, each after a text
message with its capture time; results come back in order. Without `--fps` the
client keeps two frames in flight (every frame is processed, as fast as the
server answers); with `--fps N` it sends in real time at N frames/s and the
server drops what it cannot keep up with (newest frame wins). The output is the
mask over each frame beside a heatmap of the chosen uncertainty.

This module needs only the `client` extra (PyAV, websockets, httpx, Pillow,
numpy, tqdm): it never imports torch or `models`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import math
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageSequence
from tqdm import tqdm

# service.types.MODES, spelled out here because service.types imports torch.
MODES = ("dnn", "vq-dnn", "vq-bnn", "bnn")
UNCERTAINTIES = ("entropy", "epistemic", "aleatoric", "confidence")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
OUTPUT_SUFFIXES = (".mp4", ".gif")
MAX_IN_FLIGHT = 2  # unpaced: enough to hide the round trip; more only queues at the server
DEFAULT_IMAGE_FPS = 10.0  # a folder of images has no frame rate of its own
# Viridis at ten stops, the same colours as the demo page's heatmap.
VIRIDIS = np.array(
    [
        [68, 1, 84],
        [72, 40, 120],
        [62, 74, 137],
        [49, 104, 142],
        [38, 130, 142],
        [31, 158, 137],
        [53, 183, 121],
        [110, 206, 88],
        [181, 222, 43],
        [253, 231, 37],
    ],
    dtype=np.float64,
)

RGB = npt.NDArray[np.uint8]  # H×W×3 uint8


class ClientError(RuntimeError):
    """The source cannot be read, or the server refused or broke the stream."""


@dataclass(frozen=True)
class Frame:
    index: int  # position among the frames sent
    timestamp: float  # capture time in seconds from the first frame
    image: Image.Image  # RGB


# ---------------------------------------------------------------- reading the source


def _natural_key(path: Path) -> list[Any]:
    parts: list[Any] = []
    for chunk in "".join(c if c.isdigit() else f" {c} " for c in path.name).split():
        parts.append((0, int(chunk), "") if chunk.isdigit() else (1, 0, chunk))
    return parts


def _fit(image: Image.Image, max_side: int) -> Image.Image:
    image = image.convert("RGB")
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR)


def _decode(source: Path) -> tuple[Iterator[tuple[float, Image.Image]], float, int | None]:
    """(timestamp, image) pairs from the first frame on, the native frame rate and the count if known."""
    if source.is_dir():
        files = sorted((p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not files:
            raise ClientError(f"{source} holds no images ({', '.join(IMAGE_SUFFIXES)})")

        def stills() -> Iterator[tuple[float, Image.Image]]:
            for i, path in enumerate(files):
                with Image.open(path) as image:
                    yield i / DEFAULT_IMAGE_FPS, image.convert("RGB")

        return stills(), DEFAULT_IMAGE_FPS, len(files)
    if not source.is_file():
        raise ClientError(f"{source} is neither a video file nor a folder of images")
    if source.suffix.lower() == ".gif":
        with Image.open(source) as gif:
            durations = [
                max(int(f.info.get("duration", 100)), 10) / 1000 for f in ImageSequence.Iterator(gif)
            ]
        starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])

        def gif_frames() -> Iterator[tuple[float, Image.Image]]:
            with Image.open(source) as gif:
                for start, frame in zip(starts, ImageSequence.Iterator(gif), strict=True):
                    yield float(start), frame.convert("RGB")

        return gif_frames(), len(durations) / float(sum(durations)), len(durations)
    return _decode_video(source)


def _decode_video(source: Path) -> tuple[Iterator[tuple[float, Image.Image]], float, int | None]:
    import av  # PyAV: imported here so that `streamuq client --help` stays fast

    try:
        container = av.open(str(source))
    except av.error.FFmpegError as err:
        raise ClientError(f"cannot open {source} as a video: {err}") from err
    if not container.streams.video:
        container.close()
        raise ClientError(f"{source} has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    fps = float(stream.average_rate or 30)

    def video_frames() -> Iterator[tuple[float, Image.Image]]:
        first: float | None = None
        try:
            for i, frame in enumerate(container.decode(stream)):
                t = frame.time if frame.time is not None else i / fps
                first = t if first is None else first
                yield t - first, Image.fromarray(frame.to_ndarray(format="rgb24"))
        finally:
            container.close()

    return video_frames(), fps, stream.frames or None


def read_frames(
    source: Path, *, fps: float | None = None, max_side: int = 640
) -> tuple[Iterator[Frame], float, int | None]:
    """Frames to send, the rate they were taken at (`fps` or the source's own) and how many, if known.

    With `fps` below the source's rate, frames are skipped to keep real time.
    """
    pairs, native_fps, count = _decode(source)
    rate = fps if fps is not None else native_fps
    if fps is not None and count is not None and fps < native_fps:
        count = math.ceil(count * fps / native_fps)

    def frames() -> Iterator[Frame]:
        index, next_t = 0, 0.0
        for t, image in pairs:
            if fps is not None and t + 1e-6 < next_t:
                continue
            yield Frame(index, round(t, 6), _fit(image, max_side))
            index += 1
            while fps is not None and next_t <= t + 1e-6:
                next_t += 1 / fps
        if index == 0:
            raise ClientError(f"{source} has no frames")

    return frames(), rate, count


# ---------------------------------------------------------------- drawing the results


def colormap(values: npt.NDArray[np.floating[Any]], lo: float, hi: float) -> RGB:
    """H×W values → H×W×3 uint8 viridis colours over the fixed range [lo, hi]."""
    x = np.clip((values - lo) / (hi - lo or 1.0), 0.0, 1.0) * (len(VIRIDIS) - 1)
    stops = np.arange(len(VIRIDIS))
    channels = [np.interp(x, stops, VIRIDIS[:, c]) for c in range(3)]
    colours: RGB = np.rint(np.stack(channels, axis=-1)).astype(np.uint8)
    return colours


def value_range(name: str, num_classes: int) -> tuple[float, float]:
    """The range a map is coloured over: [0, 1] for confidence, [0, ln C] nats for the entropies."""
    return (0.0, 1.0) if name == "confidence" else (0.0, math.log(max(num_classes, 2)))


def decode_map(encoded: dict[str, Any]) -> npt.NDArray[Any]:
    """One map of a result (`{"format": "png", "data": base64, "scale": {"min", "max"} | null}`) → H×W.

    The mask comes back as uint8 class ids; a scaled map as float32 in its own units.
    """
    if encoded.get("format") != "png":
        raise ClientError(f"map format {encoded.get('format')!r} is not supported; the client asks for png")
    with Image.open(io.BytesIO(base64.b64decode(encoded["data"]))) as image:
        pixels = np.asarray(image if image.mode in ("L", "P") else image.convert("L"))
    scale = encoded.get("scale")
    if not scale:
        return pixels
    lo, hi = float(scale["min"]), float(scale["max"])
    return (pixels.astype(np.float32) / 255.0 * (hi - lo) + lo).astype(np.float32)


def compose(
    image: Image.Image,
    mask: npt.NDArray[np.uint8],
    heat: RGB,
    palette: npt.NDArray[np.uint8],
    opacity: float = 0.5,
) -> RGB:
    """The frame with its class mask blended in, beside the heatmap: H×2W×3 uint8."""
    size = image.size
    if mask.shape != (size[1], size[0]):
        mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
    if heat.shape[:2] != (size[1], size[0]):
        heat = np.asarray(Image.fromarray(heat).resize(size, Image.Resampling.BILINEAR))
    frame = np.asarray(image.convert("RGB"), dtype=np.float32)
    colours = palette[np.minimum(mask, len(palette) - 1)].astype(np.float32)
    blended = np.rint(frame * (1 - opacity) + colours * opacity).astype(np.uint8)
    return np.concatenate([blended, heat], axis=1)


class OverlayWriter:
    """Writes H×W×3 frames to an .mp4 (H.264 with PyAV) or an animated .gif (Pillow)."""

    def __init__(self, path: Path, fps: float) -> None:
        if path.suffix.lower() not in OUTPUT_SUFFIXES:
            raise ClientError(f"--out {path}: write an {' or '.join(OUTPUT_SUFFIXES)} file")
        self.path, self.fps, self.frames = path, fps, 0
        self._gif: list[Image.Image] = []
        self._container: Any = None
        self._stream: Any = None

    def write(self, rgb: RGB) -> None:
        self.frames += 1
        if self.path.suffix.lower() == ".gif":
            self._gif.append(Image.fromarray(rgb))
            return
        import av

        rgb = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]  # yuv420p wants even sides
        if self._container is None:
            self._container = av.open(str(self.path), "w")
            self._stream = self._container.add_stream("libx264", rate=max(1, round(self.fps)))
            self._stream.width, self._stream.height = rgb.shape[1], rgb.shape[0]
            self._stream.pix_fmt = "yuv420p"
        for packet in self._stream.encode(
            av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        ):
            self._container.mux(packet)

    def close(self) -> None:
        if self._gif:
            duration = max(20, round(1000 / self.fps))
            self._gif[0].save(
                self.path, save_all=True, append_images=self._gif[1:], duration=duration, loop=0
            )
            self._gif = []
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None


# ---------------------------------------------------------------- streaming


@dataclass
class Stats:
    """What happened to the frames of one run; latencies are client round trips in milliseconds."""

    sent: int = 0
    results: int = 0
    dropped: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.results / self.seconds if self.seconds > 0 else 0.0

    def percentiles(self) -> dict[str, float]:
        if not self.latencies_ms:
            return {}
        values = np.percentile(np.asarray(self.latencies_ms), [50, 90, 99])
        return {f"p{q}": float(v) for q, v in zip((50, 90, 99), values, strict=True)}

    def summary(self) -> str:
        lines = [
            f"frames: {self.sent} sent, {self.results} results, {self.dropped} dropped, "
            f"{self.errors} errors in {self.seconds:.1f} s ({self.fps:.1f} frames/s)"
        ]
        if self.latencies_ms:
            p = self.percentiles()
            lines.append(
                f"latency (round trip): p50 {p['p50']:.1f} ms, p90 {p['p90']:.1f} ms, p99 {p['p99']:.1f} ms"
            )
        if self.server_ms:
            server = np.percentile(np.asarray(self.server_ms), [50, 90])
            lines.append(f"latency (server total): p50 {server[0]:.1f} ms, p90 {server[1]:.1f} ms")
        return "\n".join(lines)


@dataclass
class _Pending:
    frame: Frame
    sent_at: float


ResultHandler = Callable[[dict[str, Any], Frame, int], None]


def ws_url(base: str, stream_id: str, mode: str, outputs: list[str]) -> str:
    """`http(s)://host[:port][/prefix]` → `ws(s)://…/v1/streams/{id}/ws?mode=…&outputs=…`."""
    parts = urlsplit(base if "://" in base else f"http://{base}")
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ClientError(f"--url {base}: use http://host:port or https://host")
    path = f"{parts.path.rstrip('/')}/v1/streams/{quote(stream_id, safe='')}/ws"
    return urlunsplit(
        (scheme, parts.netloc, path, urlencode({"mode": mode, "outputs": ",".join(outputs)}), "")
    )


async def stream(
    frames: Iterator[Frame],
    url: str,
    *,
    headers: dict[str, str],
    fps: float | None,
    on_result: ResultHandler,
    progress: tqdm[Any] | None = None,
    result_timeout: float = 60.0,
) -> Stats:
    """Send every frame over the WebSocket at `url` and hand each result to `on_result`.

    `on_result(result, frame, repeats)` gets the frame the result belongs to and
    how many frames it stands for (itself plus the dropped ones before it).
    `fps`: send in real time at that rate; None: keep MAX_IN_FLIGHT frames in flight.
    """
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus

    stats = Stats()
    pending: deque[_Pending] = deque()
    window = asyncio.Semaphore(MAX_IN_FLIGHT)
    done_sending = asyncio.Event()
    started = time.perf_counter()

    def resolved(count: int) -> None:
        if fps is None:
            for _ in range(count):
                window.release()
        if progress is not None:
            progress.update(count)
            if stats.latencies_ms:
                recent = sorted(stats.latencies_ms[-20:])
                progress.set_postfix(
                    fps=f"{stats.results / (time.perf_counter() - started):.1f}",
                    latency=f"{recent[len(recent) // 2]:.0f}ms",
                    dropped=stats.dropped,
                )

    async def send(ws: Any) -> None:
        try:
            for frame in frames:
                if fps is None:
                    await window.acquire()
                else:
                    await asyncio.sleep(max(0.0, started + frame.timestamp - time.perf_counter()))
                buffer = io.BytesIO()
                frame.image.save(buffer, "JPEG", quality=90)
                await ws.send(json.dumps({"type": "frame", "timestamp": frame.timestamp}))
                await ws.send(buffer.getvalue())
                pending.append(_Pending(frame, time.perf_counter()))
                stats.sent += 1
        finally:
            done_sending.set()

    async def receive(ws: Any) -> None:
        while not (done_sending.is_set() and not pending):
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=result_timeout)
            except TimeoutError:
                if pending:
                    raise ClientError(f"no answer from the server for {result_timeout:.0f} s") from None
                continue
            message = json.loads(raw)
            if message.get("type") == "error":
                error = message.get("error", {})
                if pending:
                    pending.popleft()
                if error.get("code") == "frame_superseded":
                    stats.dropped += 1
                else:
                    stats.errors += 1
                    tqdm.write(f"server error: {error.get('code')}: {error.get('message')}", file=sys.stderr)
                resolved(1)
                continue
            if message.get("type") != "result" or not pending:
                continue
            # Results come in order; frames older than this one were dropped (newest frame wins).
            timestamp = float(message.get("timestamp", -1.0))
            skipped = 0
            while len(pending) > 1 and pending[0].frame.timestamp < timestamp - 1e-4:
                pending.popleft()
                skipped += 1
            entry = pending.popleft()
            stats.results += 1
            stats.dropped += skipped
            stats.latencies_ms.append((time.perf_counter() - entry.sent_at) * 1000)
            if "total" in message.get("timings_ms", {}):
                stats.server_ms.append(float(message["timings_ms"]["total"]))
            on_result(message, entry.frame, skipped + 1)
            resolved(skipped + 1)

    try:
        async with connect(url, additional_headers=headers, max_size=None) as ws:
            started = time.perf_counter()  # pacing starts once connected
            async with asyncio.TaskGroup() as group:
                group.create_task(send(ws))
                group.create_task(receive(ws))
    except InvalidStatus as err:
        status = err.response.status_code
        hint = " (pass --api-key)" if status in (401, 403) else ""
        raise ClientError(f"the server refused the WebSocket: HTTP {status}{hint}") from err
    except ConnectionClosed as err:
        raise ClientError(f"the server closed the stream: {err}") from err
    except OSError as err:
        raise ClientError(f"cannot connect to {url.split('?')[0]}: {err}") from err
    except ExceptionGroup as group:
        first = group.exceptions[0]
        if isinstance(first, ConnectionClosed):
            reason = first.rcvd.reason if first.rcvd else ""
            raise ClientError(f"the server closed the stream: {reason or first}") from first
        raise first from None
    stats.seconds = time.perf_counter() - started
    return stats


def fetch_palette(base: str, headers: dict[str, str]) -> tuple[list[str], npt.NDArray[np.uint8]]:
    """Class names and C×3 uint8 palette of the served model, from `GET /v1/models`."""
    import httpx

    try:
        response = httpx.get(f"{base.rstrip('/')}/v1/models", headers=headers, timeout=10)
    except httpx.HTTPError as err:
        raise ClientError(f"cannot reach {base}: {err}") from err
    if response.status_code in (401, 403):
        raise ClientError(f"{base} wants an API key: pass --api-key")
    if response.status_code != 200:
        raise ClientError(f"GET /v1/models answered {response.status_code}: {response.text[:200]}")
    model = response.json()["models"][0]
    return list(model["classes"]), np.asarray(model["palette"], dtype=np.uint8).reshape(-1, 3)


# ---------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamuq client",
        description="Stream a video, GIF or folder of images to a streamuq server; save the overlay.",
    )
    parser.add_argument("source", type=Path, help="a video file (anything FFmpeg reads), a .gif or a folder")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (default: %(default)s)")
    parser.add_argument("--stream", default=None, help="stream id (default: a fresh cli-… id)")
    parser.add_argument("--mode", choices=MODES, default="vq-bnn", help="default: %(default)s")
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="send in real time at N frames/s (default: as fast as answered)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="write the overlay and heatmap to an .mp4 or .gif"
    )
    parser.add_argument(
        "--uncertainty", choices=UNCERTAINTIES, default="entropy", help="heatmap (default: %(default)s)"
    )
    parser.add_argument(
        "--opacity", type=float, default=0.5, help="mask opacity in the overlay (default: %(default)s)"
    )
    parser.add_argument(
        "--max-side", type=int, default=640, help="downscale frames to this side (default: %(default)s)"
    )
    parser.add_argument("--api-key", default=None, help="API key, when the server has keys on")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_extras() -> None:
    """The `client` extra's packages are there, or a ClientError that says how to get them."""
    import importlib.util

    missing = [name for name in ("av", "websockets", "httpx") if importlib.util.find_spec(name) is None]
    if missing:
        raise ClientError(f"missing {', '.join(missing)}: pip install 'streamuq[client]'")


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.fps is not None and args.fps <= 0:
        parser.error(f"--fps {args.fps}: give a positive rate")
    if not 0 <= args.opacity <= 1:
        parser.error(f"--opacity {args.opacity}: give a value in [0, 1]")
    if args.out is not None and args.out.suffix.lower() not in OUTPUT_SUFFIXES:
        parser.error(f"--out {args.out}: write an {' or '.join(OUTPUT_SUFFIXES)} file")
    stream_id = args.stream or f"cli-{uuid.uuid4().hex[:8]}"
    # x-session-id routes all of this stream's requests to one replica when served by Ray.
    headers = {"x-session-id": stream_id}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    try:
        _check_extras()
        classes, palette = fetch_palette(args.url, headers)
        frames, rate, count = read_frames(args.source, fps=args.fps, max_side=args.max_side)
        url = ws_url(args.url, stream_id, args.mode, ["mask", args.uncertainty])
        writer = OverlayWriter(args.out, rate) if args.out is not None else None
        lo, hi = value_range(args.uncertainty, len(classes))

        def on_result(result: dict[str, Any], frame: Frame, repeats: int) -> None:
            if writer is None:
                return
            maps = result.get("maps", {})
            if "mask" not in maps or args.uncertainty not in maps:
                raise ClientError(f"the result of frame {frame.index} lacks mask or {args.uncertainty}")
            heat = colormap(decode_map(maps[args.uncertainty]), lo, hi)
            picture = compose(frame.image, decode_map(maps["mask"]), heat, palette, args.opacity)
            for _ in range(repeats):  # dropped frames keep showing the newest result: real time stays real
                writer.write(picture)

        bar = tqdm(total=count, unit="frame", desc=f"{args.mode} {stream_id}", disable=args.quiet)
        try:
            stats = asyncio.run(
                stream(frames, url, headers=headers, fps=args.fps, on_result=on_result, progress=bar)
            )
        finally:
            bar.close()
            if writer is not None:
                writer.close()
    except ClientError as err:
        print(f"streamuq client: {err}", file=sys.stderr)
        return 1
    print(stats.summary())
    if writer is not None:
        print(f"wrote {args.out} ({writer.frames} frames, mask overlay | {args.uncertainty})")
    return 0 if stats.results else 1
