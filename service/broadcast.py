"""Fan-out of a stream's results to its subscribers, never blocking the producer.

Each subscriber has a bounded queue. Publishing is `put_nowait`: when a queue is
full its oldest message is dropped (the subscriber wants the newest frames) and
its `missed` count grows, so a slow or dead subscriber loses frames but never
slows the producer nor the other subscribers. Subscribing to a stream that has
no frames yet is allowed: the subscriber simply waits for the first one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(eq=False)
class Subscription:
    """One subscriber of one stream: `await get()` the next message (a JSON text)."""

    stream_id: str
    queue: asyncio.Queue[str]
    missed: int = 0  # messages dropped for this subscriber so far

    async def get(self) -> str:
        return await self.queue.get()

    def offer(self, message: str) -> bool:
        """Queue `message`; when full, drop the oldest one. False when something was dropped."""
        dropped = False
        if self.queue.full():
            self.queue.get_nowait()
            self.missed += 1
            dropped = True
        self.queue.put_nowait(message)
        return not dropped


class Broadcaster:
    """Subscribers by stream id; `on_drop(n)` counts messages a slow subscriber lost."""

    def __init__(self, queue_size: int = 8, on_drop: Callable[[int], None] | None = None) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.queue_size = queue_size
        self._on_drop = on_drop
        self._subscribers: dict[str, set[Subscription]] = {}

    def subscribe(self, stream_id: str) -> Subscription:
        sub = Subscription(stream_id, asyncio.Queue(self.queue_size))
        self._subscribers.setdefault(stream_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.stream_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subscribers[sub.stream_id]

    def has_subscribers(self, stream_id: str) -> bool:
        return stream_id in self._subscribers

    def subscriber_count(self, stream_id: str | None = None) -> int:
        if stream_id is None:
            return sum(len(s) for s in self._subscribers.values())
        return len(self._subscribers.get(stream_id, ()))

    def publish(self, stream_id: str, message: str) -> int:
        """Hand `message` to every subscriber of `stream_id` without waiting; returns how many got it."""
        subs = self._subscribers.get(stream_id, ())
        dropped = sum(0 if sub.offer(message) else 1 for sub in subs)
        if dropped and self._on_drop is not None:
            self._on_drop(dropped)
        return len(subs)
