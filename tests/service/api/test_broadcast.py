from __future__ import annotations

import asyncio

import pytest

from service.broadcast import Broadcaster

pytestmark = pytest.mark.anyio


async def test_broadcast_every_subscriber_gets_every_message_in_order() -> None:
    hub = Broadcaster(queue_size=8)
    first, second = hub.subscribe("cam"), hub.subscribe("cam")
    for i in range(5):
        assert hub.publish("cam", f'{{"i":{i}}}') == 2
    for sub in (first, second):
        assert [await sub.get() for _ in range(5)] == [f'{{"i":{i}}}' for i in range(5)]
        assert sub.missed == 0


async def test_broadcast_slow_subscriber_loses_oldest_frames_counted() -> None:
    drops: list[int] = []
    hub = Broadcaster(queue_size=3, on_drop=drops.append)
    slow, fast = hub.subscribe("cam"), hub.subscribe("cam")
    received: list[str] = []

    async def read_fast() -> None:
        for _ in range(10):
            received.append(await fast.get())

    reader = asyncio.create_task(read_fast())
    for i in range(10):
        hub.publish("cam", str(i))  # never awaits: the producer cannot be slowed down
        await asyncio.sleep(0)
    await asyncio.wait_for(reader, 1)
    assert received == [str(i) for i in range(10)]
    assert slow.missed == 7 and sum(drops) == 7
    assert [await slow.get() for _ in range(3)] == ["7", "8", "9"]


async def test_broadcast_publish_never_blocks_on_a_dead_subscriber() -> None:
    hub = Broadcaster(queue_size=2)
    dead = hub.subscribe("cam")
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(10_000):
        hub.publish("cam", str(i))
    assert loop.time() - start < 1.0
    assert dead.missed == 9_998 and dead.queue.qsize() == 2


async def test_broadcast_streams_are_separate_and_unsubscribe_cleans_up() -> None:
    hub = Broadcaster()
    a, b = hub.subscribe("a"), hub.subscribe("b")
    hub.publish("a", "x")
    assert a.queue.qsize() == 1 and b.queue.qsize() == 0
    hub.unsubscribe(a)
    assert not hub.has_subscribers("a") and hub.subscriber_count() == 1
    assert hub.publish("a", "y") == 0
    hub.unsubscribe(a)  # twice is harmless


def test_broadcast_refuses_an_empty_queue() -> None:
    with pytest.raises(ValueError, match="queue_size"):
        Broadcaster(queue_size=0)
