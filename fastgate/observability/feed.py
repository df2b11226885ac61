"""The console's live request feed: a ring buffer of recent access entries and a fan-out to the
consoles connected now.

Nothing is kept or encoded while no console is connected (the gateway tests ``active``, one
attribute, per request); the ring fills from the moment one connects, so a second console
opened later starts with the recent requests. Each subscriber has a bounded queue of its own:
a console that reads slowly loses its oldest entries, never slows the gateway.
"""

from __future__ import annotations

import asyncio
from collections import deque

#: Entries kept for a console that connects, and queued per console at most.
RING = 200
QUEUE = 1000


class Subscriber:
    __slots__ = ("closed", "queue", "wake")

    def __init__(self, backlog: list[bytes]) -> None:
        self.queue: deque[bytes] = deque(backlog, maxlen=QUEUE)
        self.wake: asyncio.Future[None] | None = None
        self.closed = False

    def _notify(self) -> None:
        wake = self.wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def next_batch(self, timeout: float) -> list[bytes]:
        """The entries queued since the last call; waits up to ``timeout`` for one ([] then)."""
        if not self.queue and not self.closed:
            self.wake = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.wake, timeout)
            except TimeoutError:
                pass
            finally:
                self.wake = None
        batch = list(self.queue)
        self.queue.clear()
        return batch


class Feed:
    def __init__(self) -> None:
        self.ring: deque[bytes] = deque(maxlen=RING)
        self.subscribers: set[Subscriber] = set()
        #: Some console is connected: the only thing a request tests when none is.
        self.active = False

    def subscribe(self) -> Subscriber:
        sub = Subscriber(list(self.ring))
        self.subscribers.add(sub)
        self.active = True
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        self.active = bool(self.subscribers)
        if not self.active:
            self.ring.clear()  # stale by the time a console connects again

    def publish(self, data: bytes) -> None:
        """One access entry, as JSON."""
        self.ring.append(data)
        for sub in self.subscribers:
            sub.queue.append(data)
            sub._notify()

    def close(self) -> None:
        """Shutdown: every console's stream ends, so the server need not wait for them."""
        for sub in list(self.subscribers):
            sub.closed = True
            sub._notify()
        self.subscribers.clear()
        self.active = False
