import asyncio
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from tiny_model import informative_tiny_model

from models import ModelCard
from service import uncertainty
from service.backends import TorchBackend
from service.config import Settings
from service.engine import Engine
from service.errors import (
    FrameSuperseded,
    InferenceFailed,
    InvalidParameter,
    ModeConflict,
    NotReady,
    OutOfOrderFrame,
    Overloaded,
    ShuttingDown,
    StreamNotFound,
    TooManyStreams,
)
from service.types import Mode

SIZE = (32, 48)


_model = informative_tiny_model


def _card(model: Any) -> ModelCard:
    n = model.config.num_classes
    return ModelCard(
        name="tiny",
        classes=tuple(f"c{i}" for i in range(n)),
        palette=tuple((i, i, i) for i in range(n)),
        input_size=SIZE,
        config=model.config,
    )


def _frame(seed: int, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)


def _scene(size: tuple[int, int]) -> np.ndarray:
    """The same smooth picture at any size (random frames of two sizes would be a scene cut)."""
    y, x = np.meshgrid(np.linspace(0, 1, size[0]), np.linspace(0, 1, size[1]), indexing="ij")
    rgb = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * x * y)], axis=-1)
    return (rgb * 255).astype(np.uint8)


class Recorder:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.frames: list[tuple[str, str]] = []
        self.dropped: list[str] = []

    def batch_done(self, size: int) -> None:
        self.batches.append(size)

    def frame_done(self, mode: Mode, outcome: str, timings: Mapping[str, float]) -> None:
        self.frames.append((mode, outcome))

    def frame_dropped(self, reason: str) -> None:
        self.dropped.append(reason)

    def gauges(self, streams_active: int, queue_depth: int, state_bytes: int) -> None:
        pass


class ControlledBackend(TorchBackend):
    """A torch backend that can be held (to fill queues) or made to fail on demand."""

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.fail = False
        self.threads = 0  # torch's intra-op threads seen by the last forward

    def forward(self, images: torch.Tensor, stochastic: bool) -> torch.Tensor:
        self.threads = torch.get_num_threads()
        self.entered.set()
        self.gate.wait(timeout=10)
        if self.fail:
            raise RuntimeError("device lost")
        return super().forward(images, stochastic)


def _engine(model_name: str = "unet-ss-mcd", **settings: Any) -> tuple[Engine, Recorder, ControlledBackend]:
    model = _model(model_name)
    backend = ControlledBackend(model)
    recorder = Recorder()
    return Engine(backend, _card(model), Settings(**settings), recorder), recorder, backend


async def _wait_entered(backend: ControlledBackend) -> None:
    while not backend.entered.is_set():
        await asyncio.sleep(0.001)


@pytest.mark.parametrize("mode", ["dnn", "bnn", "vq-dnn", "vq-bnn"])
def test_engine_returns_maps_at_the_frame_size_in_every_mode(mode: Mode) -> None:
    async def main() -> None:
        engine, recorder, _ = _engine()
        await engine.start()
        first = await engine.submit("s", _scene((50, 70)), mode=mode, samples=3 if mode == "bnn" else None)
        second = await engine.submit("s", _scene((20, 30)))
        await engine.stop()
        assert (first.state_reset, second.state_reset) == (True, False)
        assert (first.frame_index, second.frame_index) == (0, 1)
        assert first.maps.mask.shape == (50, 70) and first.maps.mask.dtype == np.uint8
        assert second.maps.epistemic.shape == (20, 30) and second.maps.epistemic.dtype == np.float32
        assert set(second.timings) == {"queue", "infer", "update", "total"}
        np.testing.assert_allclose(
            second.maps.entropy, second.maps.aleatoric + second.maps.epistemic, atol=1e-5
        )
        assert recorder.frames == [(mode, "ok"), (mode, "ok")]

    asyncio.run(main())


def test_engine_vq_dnn_matches_the_ema_of_direct_forward_passes() -> None:
    async def main() -> None:
        engine, _, backend = _engine(scene_cut_threshold=0.99)
        await engine.start()
        frames = [_frame(i) for i in range(3)]
        results = [await engine.submit("s", f, mode="vq-dnn") for f in frames]
        await engine.stop()
        images = torch.stack([torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames])
        probs = backend.forward(images, stochastic=False)
        weights = torch.tensor([np.exp(-0.8 * 2), np.exp(-0.8), 1.0], dtype=torch.float32)
        P = (probs * weights.view(-1, 1, 1, 1)).sum(0) / weights.sum()
        A = (uncertainty.entropy(probs) * weights.view(-1, 1, 1)).sum(0) / weights.sum()
        np.testing.assert_allclose(results[-1].maps.confidence, P.max(0).values.numpy(), atol=1e-5)
        np.testing.assert_allclose(results[-1].maps.aleatoric, A.numpy(), atol=1e-5)
        np.testing.assert_array_equal(results[-1].maps.mask, P.argmax(0).numpy())

    asyncio.run(main())


def test_engine_two_streams_in_one_batch_match_each_stream_run_alone() -> None:
    frames = {"a": [_frame(i) for i in range(3)], "b": [_frame(10 + i) for i in range(3)]}

    async def together() -> dict[str, list[np.ndarray]]:
        engine, recorder, _ = _engine(max_wait_ms=500, scene_cut_threshold=0.99)
        await engine.start()
        out: dict[str, list[np.ndarray]] = {"a": [], "b": []}
        for step in range(3):
            ra, rb = await asyncio.gather(
                engine.submit("a", frames["a"][step], mode="vq-dnn"),
                engine.submit("b", frames["b"][step], mode="vq-dnn"),
            )
            out["a"].append(ra.maps.aleatoric)
            out["b"].append(rb.maps.aleatoric)
        await engine.stop()
        assert recorder.batches == [2, 2, 2]  # really one batch each step
        return out

    async def alone(stream: str) -> list[np.ndarray]:
        engine, _, _ = _engine(scene_cut_threshold=0.99)
        await engine.start()
        out = [(await engine.submit(stream, f, mode="vq-dnn")).maps.aleatoric for f in frames[stream]]
        await engine.stop()
        return out

    both = asyncio.run(together())
    for stream in ("a", "b"):
        for got, want in zip(both[stream], asyncio.run(alone(stream)), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-5)


def test_engine_keeps_per_stream_order_under_concurrent_submission() -> None:
    async def main() -> None:
        engine, recorder, _ = _engine(stream_queue_size=16, max_batch_size=4)
        await engine.start()
        jobs = [
            engine.submit(stream, _frame(i), timestamp=float(i))
            for i in range(8)
            for stream in ("a", "b", "c")
        ]
        results = await asyncio.gather(*jobs)
        await engine.stop()
        for stream in ("a", "b", "c"):
            mine = [r for r in results if r.stream_id == stream]
            assert [r.frame_index for r in mine] == list(range(8))
            assert [r.timestamp for r in mine] == [float(i) for i in range(8)]
        assert max(recorder.batches) == 3  # never two frames of one stream in a batch

    asyncio.run(main())


def test_engine_refuses_bad_input_with_clear_errors() -> None:
    async def main() -> None:
        engine, recorder, _ = _engine(max_streams=1)
        with pytest.raises(NotReady, match="start"):
            await engine.submit("s", _frame(0))
        await engine.start()
        with pytest.raises(InvalidParameter, match=r"shape \(32, 48, 4\)"):
            await engine.submit("s", np.zeros((32, 48, 4), np.uint8))
        with pytest.raises(InvalidParameter, match="uint8"):
            await engine.submit("s", np.zeros((32, 48, 3), np.float32))
        with pytest.raises(InvalidParameter, match="samples=5 only applies to mode 'bnn'"):
            await engine.submit("s", _frame(0), samples=5)
        with pytest.raises(InvalidParameter, match="samples=0"):
            await engine.submit("s", _frame(0), mode="bnn", samples=0)
        assert engine.list_streams() == []  # refused frames create no stream
        await engine.submit("s", _frame(0), timestamp=5.0)
        with pytest.raises(OutOfOrderFrame, match="earlier"):
            await engine.submit("s", _frame(0), timestamp=4.0)
        with pytest.raises(ModeConflict, match="runs in mode 'vq-bnn', not 'dnn'"):
            await engine.submit("s", _frame(0), mode="dnn", timestamp=6.0)
        with pytest.raises(TooManyStreams, match="maximum is 1"):
            await engine.submit("other", _frame(0))
        await engine.stop()
        with pytest.raises(ShuttingDown):
            await engine.submit("s", _frame(0), timestamp=7.0)
        assert recorder.dropped == ["too_many_streams", "shutdown"]

    asyncio.run(main())


def test_engine_refuses_stochastic_modes_on_a_model_without_dropout() -> None:
    async def main() -> None:
        engine, _, _ = _engine("unet-ss")
        await engine.start()
        result = await engine.submit("s", _frame(0))  # default falls back to vq-dnn
        assert result.mode == "vq-dnn"
        with pytest.raises(InvalidParameter, match=r"needs MC dropout.*use 'dnn'"):
            await engine.submit("t", _frame(0), mode="bnn")
        await engine.stop()

    asyncio.run(main())


def test_engine_overloaded_when_a_stream_queue_is_full() -> None:
    async def main() -> None:
        engine, recorder, backend = _engine(stream_queue_size=2)
        await engine.start()
        backend.gate.clear()
        backend.entered.clear()
        first = asyncio.create_task(engine.submit("s", _frame(0)))
        await _wait_entered(backend)  # the first frame is in flight, the next two wait
        queued = [asyncio.create_task(engine.submit("s", _frame(i))) for i in (1, 2)]
        await asyncio.sleep(0)
        with pytest.raises(Overloaded, match="2 frames waiting") as info:
            await engine.submit("s", _frame(3))
        assert info.value.retry_after is not None and info.value.retry_after > 0
        assert engine.queue_depth() == 2
        backend.gate.set()
        results = await asyncio.gather(first, *queued)
        assert [r.frame_index for r in results] == [0, 1, 2]
        assert "queue_full" in recorder.dropped
        await engine.stop()

    asyncio.run(main())


def test_engine_latest_wins_supersedes_stale_queued_frames() -> None:
    async def main() -> None:
        engine, recorder, backend = _engine()
        await engine.start()
        backend.gate.clear()
        backend.entered.clear()
        first = asyncio.create_task(engine.submit("s", _frame(0), latest_wins=True))
        await _wait_entered(backend)
        stale = [asyncio.create_task(engine.submit("s", _frame(i), latest_wins=True)) for i in (1, 2)]
        await asyncio.sleep(0)
        newest = asyncio.create_task(engine.submit("s", _frame(3), latest_wins=True))
        await asyncio.sleep(0)
        backend.gate.set()
        assert (await first).dropped_frames == 0
        for task in stale:
            with pytest.raises(FrameSuperseded, match="newer frame of stream 's'"):
                await task
        result = await newest
        assert result.dropped_frames == 2 and result.frame_index == 1
        assert recorder.dropped == ["superseded", "superseded"]
        await engine.stop()

    asyncio.run(main())


def test_engine_failing_backend_fails_the_batch_and_leaves_state_untouched() -> None:
    async def main() -> None:
        engine, recorder, backend = _engine(max_wait_ms=500)
        await engine.start()
        await asyncio.gather(engine.submit("a", _frame(0)), engine.submit("b", _frame(1)))
        pool = engine.streams.pool
        slots = {s: engine.streams.get(s).slot for s in ("a", "b")}
        before = {s: pool.read(slot) for s, slot in slots.items() if slot is not None}
        backend.fail = True
        with pytest.raises(InferenceFailed, match="device lost"):
            await engine.submit("a", _frame(2))
        with pytest.raises(InferenceFailed):
            await engine.submit("new", _frame(2))  # a first frame that fails...
        backend.fail = False
        assert (await engine.submit("new", _frame(3))).state_reset  # ...leaves the next one to start
        for s, slot in slots.items():
            assert slot is not None
            P, A, W = pool.read(slot)
            assert torch.equal(P, before[s][0]) and torch.equal(A, before[s][1]) and before[s][2] == W
        result = await engine.submit("a", _frame(3))  # the stream goes on
        assert result.frame_index == 1 and not result.state_reset
        assert ("vq-bnn", "error") in recorder.frames
        await engine.stop()

    asyncio.run(main())


def test_engine_reset_and_delete_streams() -> None:
    async def main() -> None:
        engine, _, _ = _engine()
        await engine.start()
        await engine.submit("s", _frame(0), owner="key-1")
        info = engine.stream_info("s")
        assert info.owner == "key-1" and info.frames_seen == 1 and info.state_bytes > 0
        assert engine.state_bytes() == info.state_bytes
        engine.reset_stream("s")
        assert (await engine.submit("s", _frame(1))).state_reset
        assert not (await engine.submit("s", _frame(2))).state_reset
        engine.delete_stream("s")
        assert engine.state_bytes() == 0
        with pytest.raises(StreamNotFound):
            engine.stream_info("s")
        with pytest.raises(StreamNotFound):
            engine.reset_stream("s")
        assert (await engine.submit("s", _frame(3))).frame_index == 0
        await engine.stop()

    asyncio.run(main())


def test_engine_scene_cut_resets_the_state() -> None:
    async def main() -> None:
        engine, _, backend = _engine(scene_cut_threshold=0.3)
        await engine.start()
        dark = np.zeros((*SIZE, 3), np.uint8)
        light = np.full((*SIZE, 3), 255, np.uint8)
        images = torch.stack([torch.zeros(3, *SIZE), torch.ones(3, *SIZE)])
        probs = backend.forward(images, False)
        tv = uncertainty.total_variation(probs[:1], probs[1:]).item()
        assert tv > 0.3  # the net sees the two frames differently: the test means something
        results = [await engine.submit("s", f, mode="vq-dnn") for f in (dark, dark, light, light)]
        await engine.stop()
        assert [r.state_reset for r in results] == [True, False, True, False]

    asyncio.run(main())


def test_engine_stop_finishes_accepted_frames() -> None:
    async def main() -> None:
        engine, _, backend = _engine()
        await engine.start()
        backend.gate.clear()
        tasks = [asyncio.create_task(engine.submit(f"s{i}", _frame(i))) for i in range(3)]
        await asyncio.sleep(0)
        stopping = asyncio.create_task(engine.stop())
        await asyncio.sleep(0.01)
        backend.gate.set()
        await stopping
        assert all(t.done() and t.exception() is None for t in tasks)
        assert not engine.ready

    asyncio.run(main())


def test_engine_evicts_an_idle_stream_to_make_room() -> None:
    async def main() -> None:
        engine, _, _ = _engine(max_streams=1, stream_ttl_s=0.05)
        await engine.start()
        await engine.submit("idle", _frame(0))
        await asyncio.sleep(0.1)
        await engine.submit("new", _frame(1))
        assert [info.stream_id for info in engine.list_streams()] == ["new"]
        await engine.stop()

    asyncio.run(main())


def test_engine_skips_a_frame_whose_caller_went_away() -> None:
    async def main() -> None:
        engine, _, backend = _engine()
        await engine.start()
        backend.gate.clear()
        backend.entered.clear()
        first = asyncio.create_task(engine.submit("s", _frame(0)))
        await _wait_entered(backend)
        gone = asyncio.create_task(engine.submit("s", _frame(1)))
        await asyncio.sleep(0)
        gone.cancel()
        backend.gate.set()
        await first
        result = await engine.submit("s", _frame(2))
        assert result.frame_index == 1  # the cancelled frame was never run
        assert engine.streams.get("s").pending == 0
        await engine.stop()

    asyncio.run(main())


def test_engine_from_settings_serves_the_shipped_layout(tmp_path: Path) -> None:
    model = _model()
    save_file(model.state_dict(), str(tmp_path / "unet-ss-mcd.safetensors"))
    replace(_card(model), name="unet-ss-mcd").save(tmp_path / "unet-ss-mcd.json")

    async def main() -> None:
        engine = Engine.from_settings(Settings(weights_dir=tmp_path, device="cpu"))
        assert not engine.ready
        await engine.start()
        assert engine.ready and engine.device == torch.device("cpu")
        assert engine.card.name == "unet-ss-mcd" and engine.card.input_size == SIZE
        result = await engine.submit("s", _scene((60, 80)))
        assert result.mode == "vq-bnn" and result.maps.mask.shape == (60, 80)
        await engine.stop()

    asyncio.run(main())


@pytest.mark.parametrize("threads", [1, 3])
def test_engine_computes_on_its_own_thread_with_the_configured_threads(threads: int) -> None:
    async def main() -> None:
        engine, _, backend = _engine(threads=threads)
        caller = torch.get_num_threads()
        await engine.start()
        await engine.submit("s", _frame(0))
        await engine.stop()
        assert backend.threads == threads
        assert torch.get_num_threads() == caller  # per thread: the caller's own team is not resized

    asyncio.run(main())
