"""Busy polling: after I/O, the event loop polls instead of sleeping for a fixed window.

A worker that sleeps in ``epoll_wait`` between a request and its upstream's answer pays for the
wake-up and then runs the answer's Python path on a cold core, at several times its warm cost: one
request at a time, that is most of what fastgate adds over nginx's relay (bench/README.md, "How
close a Python relay can get to nginx"). While a callback is ready the loop polls with a zero timeout,
so one that re-schedules itself keeps the core running the loop until the window after the last
I/O has passed; then the loop blocks as usual. The price is CPU: up to the window after every
read from a client or an upstream, so it is off unless asked for (``--busy-poll-us``), for
workers with cores of their own in front of fast upstreams (local models, caches, load tests).
"""

from __future__ import annotations

import asyncio
import time


class BusyPoll:
    """Keeps one loop polling for ``window_s`` after the last ``poke``."""

    __slots__ = ("_handle", "_loop", "_poked", "_until", "window_s")

    def __init__(self, loop: asyncio.AbstractEventLoop, window_s: float) -> None:
        self._loop = loop
        self.window_s = window_s
        self._poked = False
        self._until = 0.0
        self._handle: asyncio.Handle | None = None

    @property
    def polling(self) -> bool:
        return self._handle is not None

    def poke(self) -> None:
        """Called on every read: a flag only, the clock is read by the polling callback."""
        self._poked = True
        if self._handle is None:
            self._handle = self._loop.call_soon(self._poll)

    def _poll(self) -> None:
        if self._poked:
            self._poked = False
            self._until = time.monotonic() + self.window_s
        elif time.monotonic() >= self._until:
            self._handle = None  # the window passed with no I/O: the loop may block again
            return
        self._handle = self._loop.call_soon(self._poll)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
