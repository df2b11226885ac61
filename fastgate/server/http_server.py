"""The listening side: connections, the Date header, timeouts for idle and slow clients, draining,
and a limit on open connections so that a flood of them cannot take every file descriptor.

fastgate serves HTTP/1.1 with its own protocol (``connection.py``) rather than aiohttp's web
stack: aiohttp's Application, router, middlewares, request and response objects were about 40%
of the gateway's CPU per request, and a gateway needs only a strict parser, a dict of routes and
one write per answer.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import resource
import socket
import time
from email.utils import formatdate

from fastgate.server.busy_poll import BusyPoll
from fastgate.server.connection import Connection
from fastgate.server.dispatch import Dispatcher

#: How often idle and slow connections are looked for, and the Date header renewed.
_SWEEP_S = 1.0
#: How long requests cancelled at the end of the grace period have to write their last words
#: (a stream's error event and ``[DONE]``).
_LAST_WORDS_S = 1.0


#: What an unlimited ``RLIMIT_NOFILE`` is counted as: Linux's usual ceiling (``fs.nr_open``).
_UNLIMITED_FILES = 1 << 20


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit, as Go's runtime does at
    start-up (since 1.19); the new soft limit. The soft limit (often 1024) is kept low for
    programs that use ``select(2)``, whose descriptor sets are fixed at 1024; the event loop is on
    ``epoll``, and each stream holds two descriptors, its client's and its upstream's, so at 1024
    a worker could hold 512 clients and ~500 streams. Workers inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _UNLIMITED_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):  # a platform with a lower ceiling (macOS's OPEN_MAX)
            return soft
        return wanted
    return soft


#: The most descriptors ``presize_descriptor_table`` makes room for: 32,768 streams (a client's
#: and an upstream's descriptor each) in ~0.5 MiB of kernel memory. Past it the table grows as the
#: kernel grows it, a stall at each doubling.
DESCRIPTOR_TABLE_MOST = 1 << 16


def presize_descriptor_table() -> int:
    """Grow this process's descriptor table now, once, to the size its open-file limit allows (at
    most ``DESCRIPTOR_TABLE_MOST``); the size made room for.

    The kernel's table starts at 256 slots and doubles when a descriptor past its end is opened.
    In a process with threads (libuv's thread pool makes every worker one) each doubling waits
    for an RCU grace period inside that ``accept4`` or ``socket`` call, on the event loop's thread
    (``socket`` with the GIL held): the whole worker stood still 10-20 ms at each power of two on
    the way to 20,000 descriptors, and every stream's next event waited (``bench/streams.py``,
    10,000 streams: time to first event p99 12-14 ms → 3.5 ms). Opening one descriptor at the top
    of the range and closing it leaves the table at that size for the process's life."""
    size = min(_open_files_allowed(), DESCRIPTOR_TABLE_MOST)
    if size <= 256:
        return size
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        # The lowest free descriptor from the top slot up: never one in use, as dup2 could close.
        os.close(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, size - 1))
    except OSError:  # the top slot in use, and none above it: the table is that large already
        pass
    finally:
        os.close(fd)
    return size


def default_max_connections() -> int:
    """Half the descriptors this process may open (its soft ``RLIMIT_NOFILE``): the other half is
    left for the upstream connections the clients' requests open, the listener, logs and Redis."""
    return max(_open_files_allowed() // 2, 1)


def _open_files_allowed() -> int:
    """The soft ``RLIMIT_NOFILE``."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return _UNLIMITED_FILES if soft == resource.RLIM_INFINITY else soft


def date_block() -> bytes:
    """The Date header line and the blank line that ends a head (``response_head`` appends it);
    held and renewed once a second rather than formatted per answer."""
    return f"Date: {formatdate(usegmt=True)}\r\n\r\n".encode()


class HTTPServer:
    def __init__(
        self,
        dispatch: Dispatcher,
        *,
        max_body: int,
        idle_timeout: float = 75.0,
        request_timeout: float = 60.0,
        max_connections: int = 0,
        max_upload: int = 0,
        uploads: tuple[frozenset[str], tuple[tuple[str, str], ...]] = (frozenset(), ()),
    ) -> None:
        self.dispatch = dispatch
        self.max_body = max_body
        #: Upload routes (``Router.uploads``), whose bodies stream to their handlers, up to
        #: ``max_upload`` bytes (0: none streams).
        self.max_upload = max_upload
        self.uploads = uploads
        self.idle_timeout = idle_timeout
        #: Seconds a client may take to send a request, or leave its answers unread (then cut).
        self.request_timeout = request_timeout
        #: 0: ``default_max_connections()``.
        self.max_connections = max_connections or default_max_connections()
        self.connections: set[Connection] = set()
        #: The connections that have not completed a request yet, oldest first.
        self.fresh: dict[Connection, None] = {}
        self.closing = False
        self.date = b""
        self._server: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        #: Polls through short waits, on clients and on upstreams (``busy_poll.py``); None: off.
        self.busy_poll: BusyPoll | None = None
        #: Set by ``start`` (a server is built before its loop runs).
        self.loop: asyncio.AbstractEventLoop

    async def start(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        sock: socket.socket | None = None,
        reuse_port: bool = False,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self._sweep()
        if sock is not None:
            self._server = await self.loop.create_server(lambda: Connection(self), sock=sock, backlog=4096)
        else:
            self._server = await self.loop.create_server(
                lambda: Connection(self), host, port, reuse_port=reuse_port or None, backlog=4096
            )

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def make_room(self) -> bool:
        """At the connection limit, close the oldest connection that has sent nothing (in a flood
        of idle sockets, one of them), as nginx drains its idle connections: a client arriving
        now is served, and the flood is closed cleanly, a FIN each. False when every connection
        is in use: a request in progress, or kept alive after one."""
        fresh = self.fresh
        while fresh:
            conn = next(iter(fresh))
            del fresh[conn]
            if conn.close_if_unused():
                self.connections.discard(conn)  # its descriptor is freed with the close
                return True
        return False

    def _sweep(self) -> None:
        now = time.monotonic()
        self.date = date_block()
        for conn in list(self.connections):
            conn.time_out(now, self.idle_timeout, self.request_timeout)
        self._sweeper = self.loop.call_later(_SWEEP_S, self._sweep)

    async def stop(self, grace: float) -> None:
        """Refuse new connections, close idle ones, give requests in flight ``grace`` seconds
        to finish (streams included), then cancel what is left: a stream ends with an error
        event and ``[DONE]`` rather than a bare cut (``gateway/streaming.py``)."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        deadline = time.monotonic() + grace
        while True:
            busy = [c for c in list(self.connections) if not c.close_if_idle()]
            if not busy or time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        late = [c.task for c in self.connections if c.task is not None and not c.task.done()]
        for task in late:
            task.cancel()  # a request still in flight past the grace period
        if late:
            await asyncio.wait(late, timeout=_LAST_WORDS_S)
            await self._flushed(_LAST_WORDS_S)
        for conn in list(self.connections):
            conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.busy_poll is not None:
            self.busy_poll.stop()
        if self._server is not None:
            await self._server.wait_closed()

    async def _flushed(self, timeout: float) -> None:
        """Wait, for at most ``timeout``, until the connections closed after their last words
        have sent them: cut at once, a reset could destroy them before the client reads them."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and any(
            c.transport is not None and c.transport.is_closing() for c in self.connections
        ):
            await asyncio.sleep(0.02)
