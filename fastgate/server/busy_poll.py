"""Busy polling through short waits: the event loop polls instead of sleeping while a request
waits on an upstream that answers fast, or a kept-alive client that comes back fast.

A worker that sleeps in ``epoll_wait`` through such a wait pays for the wake-up and then runs the
next step's Python path on a cold core, at several times its warm cost: one request at a time,
that is most of what fastgate adds over nginx's relay (bench/README.md, "Busy polling"). So each
wait is timed, from a request's write to its answer's first byte (smoothed per origin) and from an
answer's write to the client's next request (smoothed per connection), and while a wait expected
within the window is open the loop keeps turning (a callback that re-schedules itself makes it
poll with a zero timeout), until every such wait has ended or the window has passed since the last
began. Waits longer than the window, any hosted LLM's answer (tens of milliseconds or more) and a
client that pauses between requests, are slept through, so the price, CPU up to the wait itself,
is paid only where a wake-up is a large share of the wait: local models, caches, back-to-back
clients, load tests. A wait is polled only while no other request is in flight, and only in a
worker that mostly serves one request at a time: a busy worker is woken by its other requests
anyway, and a saturated loop that polled in its short gaps would handle each event as it came
instead of in the batches a blocking wait collects (bench/README.md, "Busy polling").
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from fastgate._transforms import smoothed

__all__ = ["BusyPoll", "Requests", "smoothed"]


class Requests(Protocol):
    """What counts the requests in flight (the dispatcher)."""

    in_flight: int
    #: Requests already in flight when one is admitted, smoothed.
    crowd: float


class BusyPoll:
    """Keeps one loop polling while short waits are open, for at most ``window_s`` after the last began."""

    __slots__ = ("_handle", "_loop", "_requests", "_until", "_waiting", "window_s")

    def __init__(self, loop: asyncio.AbstractEventLoop, window_s: float, requests: Requests) -> None:
        self._loop = loop
        self.window_s = window_s
        self._requests = requests
        self._waiting = 0
        self._until = 0.0
        self._handle: asyncio.Handle | None = None

    @property
    def polling(self) -> bool:
        return self._handle is not None

    def start(self, expected_s: float, now: float, own_requests: int) -> bool:
        """A wait began at ``now``, expected to last ``expected_s`` (negative: not known yet), for
        ``own_requests`` of the requests in flight (1: an upstream's answer, 0: a client's next
        request). Whether it is polled through: then it ends with :meth:`arrived`, or the window."""
        requests = self._requests
        if (
            not 0.0 <= expected_s <= self.window_s
            or requests.in_flight > own_requests
            or requests.crowd >= 1.0
        ):
            return False
        self._waiting += 1
        self._until = now + self.window_s
        if self._handle is None:
            self._handle = self._loop.call_soon(self._poll)
        return True

    def arrived(self) -> None:
        """A polled wait ended: its first byte came, or its connection went."""
        self._waiting -= 1

    def _poll(self) -> None:
        if self._waiting > 0 and time.monotonic() < self._until:
            self._handle = self._loop.call_soon(self._poll)
        else:
            self._handle = None  # nothing fast to wait for: the loop may block again

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
