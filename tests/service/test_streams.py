import pytest
import torch

from service import uncertainty
from service.errors import InvalidParameter, OutOfOrderFrame, StreamNotFound, TooManyStreams
from service.streams import SlotPool, StreamTable

C, H, W = 4, 6, 8


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _probs(batch: int, seed: int) -> torch.Tensor:
    return torch.randn(batch, C, H, W, generator=torch.Generator().manual_seed(seed)).softmax(dim=1)


def _update(
    pool: SlotPool, slots: list[int], probs: torch.Tensor, t: list[float], reset: list[bool]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ent = uncertainty.entropy(probs)
    return pool.update(slots, probs.clone(), ent, t, [1.25] * len(slots), reset, scene_cut_threshold=0.99)


@pytest.mark.parametrize("slots", [[2, 0, 3], [1, 2, 3]])  # gather/scatter, and a run of slots in place
def test_slot_pool_batched_update_equals_each_slot_alone(slots: list[int]) -> None:
    together = SlotPool(4, C, H, W, "cpu")
    alone = SlotPool(4, C, H, W, "cpu")
    untouched = ({0, 1, 2, 3} - set(slots)).pop()
    for step in range(4):
        probs = _probs(3, seed=step)
        _update(together, slots, probs, [float(step)] * 3, [step == 0] * 3)
        for row, slot in enumerate(slots):
            _update(alone, [slot], probs[row : row + 1], [float(step)], [step == 0])
    for slot in slots:
        P1, A1, W1 = together.read(slot)
        P2, A2, W2 = alone.read(slot)
        torch.testing.assert_close(P1, P2)
        torch.testing.assert_close(A1, A2)
        assert pytest.approx(W2) == W1
    assert together.read(untouched)[2] == 0.0


def test_slot_pool_refuses_a_slot_twice_in_one_update() -> None:
    pool = SlotPool(2, C, H, W, "cpu")
    with pytest.raises(ValueError, match=r"slots \[1, 1\] repeat"):
        _update(pool, [1, 1], _probs(2, seed=0), [0.0, 0.0], [True, True])


def test_slot_pool_scene_cut_drops_the_old_state() -> None:
    pool = SlotPool(2, C, H, W, "cpu")
    cls0 = torch.zeros(2, C, H, W)
    cls0[:, 0] = 1.0
    cls1 = torch.zeros(2, C, H, W)
    cls1[:, 1] = 1.0
    mixed = 0.8 * cls0 + 0.2 * cls1
    pool.update([0, 1], cls0, torch.zeros(2, H, W), [0.0, 0.0], [1.25, 1.25], [True, True], 0.5)
    new = torch.stack([cls1[0], mixed[1]])
    P, _, cut = pool.update(
        [0, 1], new.clone(), uncertainty.entropy(new), [1.0, 1.0], [1.25] * 2, [False] * 2, 0.5
    )
    assert cut.tolist() == [True, False]  # TV 1.0 > 0.5 resets; TV 0.2 blends
    torch.testing.assert_close(P[0], cls1[0])
    assert pool.read(0)[2] == pytest.approx(1.0)
    assert pool.read(1)[2] == pytest.approx(1.0 + torch.exp(torch.tensor(-0.8)).item())


def test_stream_table_refuses_more_than_max_streams_and_never_evicts_an_active_stream() -> None:
    clock = FakeClock()
    table = StreamTable(SlotPool(2, C, H, W, "cpu"), max_streams=2, ttl_s=10.0, clock=clock)
    a = table.create("a", "vq-bnn")
    table.create("b", "dnn")
    with pytest.raises(TooManyStreams, match="maximum is 2"):
        table.create("c", "vq-bnn")
    clock.now += 11.0
    a.pending = 1  # a frame of "a" waits: "a" must survive, "b" is idle and goes
    table.create("c", "vq-bnn")
    assert "a" in table and "b" not in table and "c" in table


def test_stream_table_evicts_idle_streams_after_ttl_and_frees_their_slots() -> None:
    clock = FakeClock()
    pool = SlotPool(3, C, H, W, "cpu")
    table = StreamTable(pool, max_streams=3, ttl_s=10.0, clock=clock)
    table.create("old", "vq-bnn")
    clock.now += 6.0
    fresh = table.create("fresh", "vq-dnn")
    clock.now += 5.0
    assert table.evict_idle() == ["old"]
    assert pool.free_slots == 2
    table.touch(fresh)
    clock.now += 9.0
    assert table.evict_idle() == []
    with pytest.raises(StreamNotFound, match="'old' not found"):
        table.get("old")


def test_stream_table_refuses_out_of_order_timestamps() -> None:
    table = StreamTable(SlotPool(1, C, H, W, "cpu"), max_streams=1, ttl_s=10.0)
    stream = table.create("s", "vq-bnn")
    table.accept(stream, *table.check_time(stream, 10.0))
    table.accept(stream, *table.check_time(stream, 10.0))  # equal time is fine
    with pytest.raises(OutOfOrderFrame, match=r"9\.5 .* earlier than .* 10\.0"):
        table.check_time(stream, 9.5)
    assert table.check_time(stream, 10.5) == ("seconds", 10.5)


def test_stream_table_refuses_mixed_clocks_until_reset() -> None:
    table = StreamTable(SlotPool(1, C, H, W, "cpu"), max_streams=1, ttl_s=10.0)
    stream = table.create("s", "vq-bnn")
    table.accept(stream, *table.check_time(stream, None))
    assert table.check_time(stream, None) == ("frames", 1.0)  # the frame counter is the clock
    with pytest.raises(InvalidParameter, match="started with no timestamps"):
        table.check_time(stream, 5.0)
    table.reset("s")
    assert stream.reset_next
    assert table.check_time(stream, 5.0) == ("seconds", 5.0)


def test_stream_table_delete_frees_the_slot_after_in_flight_frames() -> None:
    pool = SlotPool(2, C, H, W, "cpu")
    table = StreamTable(pool, max_streams=2, ttl_s=10.0)
    stream = table.create("s", "vq-bnn")
    table.create("stateless", "bnn")
    assert pool.free_slots == 1  # stateless modes hold no slot
    assert table.state_bytes() == pool.slot_bytes == (C * H * W + H * W + 1) * 4 + 8
    stream.pending = 1
    table.delete("s")
    assert pool.free_slots == 1 and "s" not in table
    table.finished(stream)
    assert pool.free_slots == 2
