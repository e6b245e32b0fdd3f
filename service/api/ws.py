"""WebSockets: push a stream's frames and get every result in order; or watch a stream.

`/v1/streams/{id}/ws` — binary message = one JPEG/PNG (or raw RGB announced by a
preceding `{"type": "frame", "width": W, "height": H}`; that message may also carry
`"timestamp"`). Text JSON controls: `{"type": "reset"}`, `{"type": "mode", "mode": "dnn"}`
(restarts the state in the new mode), `{"type": "outputs", "outputs": [...]}`; each is
acknowledged with `{"type": "ack", "control": ...}` in order. Every processed frame is
answered with the POST's JSON plus `"type": "result"`; a bad frame with
`{"type": "error", "error": {"code", "message"}}`, the socket stays open. When the
client sends faster than the model runs, the newest waiting frame wins; the next
result's `dropped_frames` counts the others.

`/v1/streams/{id}/subscribe` — first `{"type": "subscribed", "stream_id", "exists"}`,
then every result of the stream, whoever feeds it, with `"missed"`: how many results
this subscriber has lost so far by reading too slowly. The stream need not exist yet;
`{"type": "end"}` says it was deleted (the socket stays, a new stream of that id follows).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, get_args

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from models import ModelCard
from service import codec, security
from service.api import pipeline
from service.api.deps import BroadcasterDep, EngineAPI, EngineDep, MetricsDep, SettingsDep
from service.api.guard import OwnerDep
from service.broadcast import Broadcaster
from service.config import Settings
from service.errors import FrameSuperseded, InvalidParameter, InvalidRequest, StreamNotFound, StreamUQError
from service.metrics import Metrics
from service.types import FrameResult, ImageArray, Mode, OutputName

router = APIRouter(prefix="/v1/streams", tags=["websocket"])

POLICY_VIOLATION = 1008
PENDING_ANSWERS = 8


def error_message(exc: StreamUQError) -> str:
    return json.dumps({"type": "error", "error": {"code": exc.code, "message": exc.message}})


def parse_mode(raw: object) -> Mode | None:
    if raw is None:
        return None
    if raw not in get_args(Mode):
        raise InvalidParameter(f"unknown mode {raw!r}; choose one of {list(get_args(Mode))}")
    mode: Mode = raw  # type: ignore[assignment]
    return mode


@dataclass
class _Frame:
    task: asyncio.Task[FrameResult]
    decode_s: float
    outputs: tuple[OutputName, ...]


@dataclass
class _Control:
    """Runs in order after every earlier frame has been answered; the reader waits for `done`."""

    control: dict[str, Any]
    done: asyncio.Event = field(default_factory=asyncio.Event)


_Item = _Frame | _Control | str


@dataclass
class _PushSession:
    websocket: WebSocket
    stream_id: str
    engine: EngineAPI
    settings: Settings
    metrics: Metrics
    broadcaster: Broadcaster
    card: ModelCard
    mode: Mode | None
    outputs: tuple[OutputName, ...]
    owner: str | None = None  # the key id feeding the stream (None: keys are off)
    # Answers waiting to be sent. Bounded: a client that stops reading stops being read
    # (TCP backpressure) instead of piling up results in server memory.
    items: asyncio.Queue[_Item] = field(default_factory=lambda: asyncio.Queue(PENDING_ANSWERS))
    pending_meta: dict[str, Any] = field(default_factory=dict)

    async def read(self) -> None:
        """Receive until the client leaves: frames go to the engine at once, answers queue in order."""
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            try:
                if message.get("bytes") is not None:
                    await self._frame(message["bytes"])
                elif message.get("text") is not None:
                    await self._control(message["text"])
            except StreamUQError as exc:
                await self.items.put(error_message(exc))

    async def _frame(self, data: bytes) -> None:
        meta, self.pending_meta = self.pending_meta, {}
        width, height = meta.get("width"), meta.get("height")
        content_type = codec.RAW_TYPE if width is not None or height is not None else codec.sniff_type(data)
        if len(data) > self.settings.ws_max_message_bytes:
            raise InvalidRequest(f"frame of {len(data)} bytes is over {self.settings.ws_max_message_bytes}")
        if content_type is None:
            raise InvalidRequest(
                "binary message is neither PNG nor JPEG; raw RGB needs width and height first"
            )
        image, decode_s = await pipeline.decode(
            data,
            content_type,
            width=width,
            height=height,
            mode=self.mode,
            settings=self.settings,
            metrics=self.metrics,
        )
        task = asyncio.create_task(self._submit(image, meta.get("timestamp")))
        await self.items.put(_Frame(task, decode_s, self.outputs))

    async def _submit(self, image: ImageArray, timestamp: float | None) -> FrameResult:
        # The owner check and the engine's admission run in one step of this task: no other
        # request can hand the stream id to another key in between.
        self._check_owner()  # another key's stream looks missing, as on HTTP
        return await self.engine.submit(
            self.stream_id, image, timestamp=timestamp, mode=self.mode, latest_wins=True, owner=self.owner
        )

    async def _control(self, text: str) -> None:
        try:
            control = json.loads(text)
        except (ValueError, RecursionError):  # bad JSON, a 5000-digit number, deep nesting
            raise InvalidRequest(f"text message is not JSON: {text[:80]!r}") from None
        kind = control.get("type") if isinstance(control, dict) else None
        if kind == "frame":
            self.pending_meta = _frame_meta(control)
        elif kind == "outputs":
            self.outputs = codec.parse_outputs(_str_list(control.get("outputs")))
            await self.items.put(json.dumps({"type": "ack", "control": control}))
        elif kind in ("reset", "mode"):
            if kind == "mode":
                parse_mode(control.get("mode"))
            barrier = _Control(control)
            await self.items.put(barrier)
            await barrier.done.wait()
        else:
            raise InvalidRequest(f"unknown message type {kind!r}; send frame, reset, mode or outputs")

    async def answer(self) -> None:
        """Send every queued answer in the order the frames and controls arrived."""
        while True:
            item = await self.items.get()
            if isinstance(item, str):
                await self.websocket.send_text(item)
            elif isinstance(item, _Control):
                await self._apply(item)
            else:
                await self._answer_frame(item)

    async def _answer_frame(self, frame: _Frame) -> None:
        try:
            result = await frame.task
        except FrameSuperseded:
            return  # counted in the next result's dropped_frames
        except StreamUQError as exc:
            await self.websocket.send_text(error_message(exc))
            return
        response = await asyncio.to_thread(
            pipeline.render, result, self.card, frame.outputs, frame.decode_s, self.metrics
        )
        text = response.model_dump_json()
        await pipeline.publish(self.broadcaster, result, self.card, response, self.owner)
        await self.websocket.send_text(pipeline.result_message(text))

    def _check_owner(self) -> None:
        security.check_owner(self.engine, self.stream_id, self.owner, self.settings.stream_ttl_s)

    async def _apply(self, item: _Control) -> None:
        try:
            if item.control["type"] == "reset":
                with contextlib.suppress(StreamNotFound):
                    self._check_owner()
                    self.engine.reset_stream(self.stream_id)
            else:  # a new mode: the stream restarts in it with its next frame
                with contextlib.suppress(StreamNotFound):
                    self._check_owner()
                    self.engine.delete_stream(self.stream_id)
                self.mode = parse_mode(item.control["mode"])
            await self.websocket.send_text(json.dumps({"type": "ack", "control": item.control}))
        finally:
            item.done.set()

    def abandon(self) -> None:
        """The client left: let queued frames finish in the engine, nobody reads their results."""
        while not self.items.empty():
            item = self.items.get_nowait()
            if isinstance(item, _Frame):
                item.task.add_done_callback(_consume)
            elif isinstance(item, _Control):
                item.done.set()


def _consume(task: asyncio.Task[FrameResult]) -> None:
    if not task.cancelled():
        task.exception()


def _frame_meta(control: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key in ("width", "height"):
        if key in control:
            value = control[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidParameter(f"{key} must be a positive integer, got {value!r}")
            meta[key] = value
    if "timestamp" in control:
        ts = control["timestamp"]
        if not isinstance(ts, int | float) or isinstance(ts, bool) or ts != ts or abs(ts) == float("inf"):
            raise InvalidParameter(f"timestamp must be a finite number of seconds, got {ts!r}")
        meta["timestamp"] = float(ts)
    return meta


def _str_list(raw: object) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise InvalidParameter(f"outputs must be a list of names, got {raw!r}")
    return raw


@router.websocket("/{stream_id}/ws")
@router.websocket("/{stream_id}")  # the short form of DESIGN.md
async def push_frames(
    websocket: WebSocket,
    stream_id: str,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    broadcaster: BroadcasterDep,
    owner: OwnerDep,
) -> None:
    """Push frames, receive every result in order (query: `mode`, `outputs`)."""
    await websocket.accept()
    try:
        _check_stream_id(stream_id)
        mode = parse_mode(websocket.query_params.get("mode"))
        outputs = codec.parse_outputs(websocket.query_params.get("outputs"))
    except StreamUQError as exc:
        await websocket.send_text(error_message(exc))
        await websocket.close(POLICY_VIOLATION, exc.message[:120])
        return
    session = _PushSession(
        websocket, stream_id, engine, settings, metrics, broadcaster, engine.card, mode, outputs, owner
    )
    answer = asyncio.create_task(session.answer())
    try:
        await session.read()
    except WebSocketDisconnect:
        pass
    finally:
        answer.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await answer
        session.abandon()


@router.websocket("/{stream_id}/subscribe")
async def subscribe(
    websocket: WebSocket, stream_id: str, engine: EngineDep, broadcaster: BroadcasterDep, owner: OwnerDep
) -> None:
    """Watch every result of a stream someone else feeds; a slow reader loses results, counted."""
    await websocket.accept()
    try:
        _check_stream_id(stream_id)
    except StreamUQError as exc:
        await websocket.send_text(error_message(exc))
        await websocket.close(POLICY_VIOLATION, exc.message[:120])
        return
    sub = broadcaster.subscribe(security.channel(stream_id, owner))  # only the caller's own stream
    exists = any(
        info.stream_id == stream_id and security.visible(info, owner) for info in engine.list_streams()
    )
    await websocket.send_text(json.dumps({"type": "subscribed", "stream_id": stream_id, "exists": exists}))

    async def pump() -> None:
        while True:
            message = await sub.get()
            await websocket.send_text(f'{{"missed":{sub.missed},' + message[1:])

    sender = asyncio.create_task(pump())
    try:
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass  # a subscriber has nothing to say; reading notices when it leaves
    finally:
        broadcaster.unsubscribe(sub)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
            await sender


def _check_stream_id(stream_id: str) -> None:
    if not re.fullmatch(pipeline.STREAM_ID_PATTERN, stream_id):
        raise InvalidParameter(f"stream id {stream_id!r} must match {pipeline.STREAM_ID_PATTERN}")
