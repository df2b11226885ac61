"""A lean pooled HTTP/1.1 client for upstream calls, on asyncio protocols and a compiled parser.

aiohttp's ClientSession does a great deal per request that a relay does not need (cookie jars,
redirect handling, tracing signals, multidicts, payload objects); here a request is one write of
bytes built in one go, and a response is a compiled parser fed straight from ``data_received``.
Connections are kept alive per origin; a request that fails on a reused connection before any
response byte arrived (the server closed it while idle) is retried once on a new connection.
Read timeouts are kept by one watchdog per pool rather than a timer per wait: a request only
notes the time of its last byte, and the watchdog fails the connections that have gone quiet.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator

from fastgate._transforms import HTTPParseError, ResponseParser, request_head
from fastgate.errors import bad_request
from fastgate.server.busy_poll import BusyPoll, smoothed
from fastgate.server.dns import CachingResolver

#: A request-target is visible ASCII (RFC 9112 §3.2, RFC 3986): a space or line break in it
#: would end the request line early and let the rest be read as headers.
_BAD_TARGET = re.compile(r"[^\x21-\x7e]")
_HIGH_WATER = 1024 * 1024
#: Methods whose requests carry a Content-Length even with no body.
_BODY_METHODS = ("POST", "PUT", "PATCH")
#: Entries kept in the per-URL caches before they start over.
_MAX_CACHED = 4096
#: Longest interval between two watchdog rounds (shorter when the read timeout is short).
_WATCH_S = 1.0


class UpstreamConnectionError(OSError):
    """The upstream refused, reset or broke the connection, or spoke broken HTTP."""


class UpstreamTimeout(TimeoutError):
    """The upstream did not connect or send a byte within the configured time."""


def _copy(exc: BaseException) -> BaseException:
    """A fresh instance of a connection's stored failure, for one raise."""
    return type(exc)(*exc.args)


class Origin:
    """What a connection is keyed by, parsed once per distinct base URL."""

    __slots__ = ("answer_s", "host", "host_header", "key", "port", "tls")

    def __init__(self, scheme: str, host: str, port: int) -> None:
        self.tls = scheme == "https"
        #: Smoothed seconds from a request's write to its answer's first byte (-1: none yet),
        #: measured while busy polling is on: whether a wait for this origin is short enough to poll.
        self.answer_s = -1.0
        self.host = host
        self.port = port
        default = 443 if self.tls else 80
        shown = f"[{host}]" if ":" in host else host
        self.host_header = shown if port == default else f"{shown}:{port}"
        self.key = (scheme, host, port)


def split_url(url: str, cache: dict[str, Origin]) -> tuple[Origin, str]:
    """``(origin, request-target)`` for an absolute http(s) URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise bad_request(f"unsupported upstream URL scheme in {url[:60]!r}")
    slash = rest.find("/")
    authority, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    cache_key = scheme + "://" + authority
    origin = cache.get(cache_key)
    if origin is None:
        host, port_text = authority, ""
        if authority.startswith("["):
            end = authority.find("]")
            host, port_text = authority[1:end], authority[end + 2 :]
        elif authority.count(":") == 1:
            host, port_text = authority.split(":")
        port = int(port_text) if port_text else (443 if scheme == "https" else 80)
        origin = Origin(scheme, host.lower(), port)
        if len(cache) >= _MAX_CACHED:
            cache.clear()
        cache[cache_key] = origin
    return origin, target


class Connection(asyncio.Protocol):
    """One kept-alive connection; carries one request/response at a time."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.parser = ResponseParser()
        self.closed = False
        self.idle_since = 0.0
        self.used = False
        self._head: asyncio.Future[None] | None = None
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._paused = False
        #: When a byte last arrived (or the request was sent), for the pool's watchdog.
        self.last_io = 0.0
        #: When a stream must have ended (0: no limit), for the pool's watchdog.
        self.stream_deadline = 0.0
        #: The request was written and no byte of its answer has come: time the wait.
        self._timing = False
        #: The pool's poller while it polls through this wait, until the wait ends.
        self._polled: BusyPoll | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()  # held: each look-up costs a getpid

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        if self._timing:
            self._first_byte(now)
        self.last_io = now
        parser = self.parser
        try:
            chunks = parser.feed(data)
        except HTTPParseError as exc:
            self._fail(UpstreamConnectionError(f"invalid HTTP from upstream: {exc}"))
            return
        if chunks:
            self._chunks.extend(chunks)
            buffered = self._buffered
            for chunk in chunks:
                buffered += len(chunk)
            self._buffered = buffered
            if self._buffered > _HIGH_WATER and self.transport is not None and not self._paused:
                self._paused = True
                self.transport.pause_reading()
        head = self._head
        if head is not None and not head.done() and parser.head_done:
            head.set_result(None)
        waiter = self._waiter
        if waiter is not None and not waiter.done() and (chunks or parser.done):
            waiter.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.busy.discard(self)
        if self.parser.reads_to_eof:
            self.parser.feed_eof()
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
            return
        if not self.parser.done:
            reason = f" ({exc})" if exc else ""
            self._fail(UpstreamConnectionError(f"upstream closed the connection{reason}"))

    def pause_writing(self) -> None:  # request bodies are written whole; nothing to throttle
        pass

    def resume_writing(self) -> None:
        pass

    # -- the client side
    def _fail(self, exc: BaseException) -> None:
        # Kept, and raised as copies: a raised exception keeps the frames it went through, which
        # hold this connection, so the stored one raised would make a cycle that only a full
        # collection frees (memory would grow with every upstream connection that failed).
        self._error = exc
        for fut in (self._head, self._waiter):
            if fut is not None and not fut.done():
                fut.set_exception(_copy(exc))
        self.abort()

    def abort(self) -> None:
        self.closed = True
        self._end_poll()
        self._head = None  # failed or cancelled: its exception's frames hold this connection
        self.pool.busy.discard(self)
        if self.transport is not None:
            self.transport.abort()

    def send(self, request: bytes, head_request: bool) -> asyncio.Future[None]:
        """Write the request; the future resolves with the response head.

        Whoever awaits it aborts the connection when the wait ends in anything but the head.
        """
        assert self.transport is not None and self.loop is not None
        self.parser.reset(head_request)
        self._chunks.clear()
        self._buffered = 0
        self._error = None
        self.stream_deadline = 0.0
        self.last_io = now = time.monotonic()
        self.pool.watch(self)
        head = self._head = self.loop.create_future()
        self.transport.write(request)
        poll = self.pool.busy_poll
        if poll is not None:
            self._timing = True
            self._polled = poll if poll.start(self.origin.answer_s, now, 1) else None
        return head

    def _first_byte(self, now: float) -> None:
        self._timing = False
        self.origin.answer_s = smoothed(self.origin.answer_s, now - self.last_io)
        self._end_poll()

    def _end_poll(self) -> None:
        poll, self._polled = self._polled, None
        if poll is not None:
            poll.arrived()

    def timed_out(self, now: float, read_timeout: float) -> None:
        """The watchdog's check: fail a response that has gone quiet or lasted too long."""
        if self.stream_deadline and now > self.stream_deadline:
            self._fail(UpstreamTimeout(f"stream lasted longer than {self.pool.max_stream_seconds:g} s"))
        elif now - self.last_io > read_timeout:
            if self.parser.head_done:
                self._fail(UpstreamTimeout("upstream stalled mid-response"))
            else:
                self._fail(UpstreamTimeout("upstream sent no response in time"))

    async def next_chunk(self) -> bytes | None:
        """The body bytes received since the last call, or None at the end of the body."""
        while not self._chunks:
            if self.parser.done:
                return None
            if self._error is not None:
                raise _copy(self._error)
            assert self.loop is not None
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        # Everything that has arrived goes on as one piece: a chunked upstream that sent 20 SSE
        # frames in one read must not cost 20 writes to the client.
        return self.take_received()

    def take_received(self) -> bytes:
        """Everything received and not yet taken, as one piece; reading resumes if it paused."""
        chunks = self._chunks
        chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    @property
    def received_whole(self) -> bool:
        """The whole body has arrived, within the size limit."""
        return self.parser.done and self._error is None and self._buffered <= self.pool.max_body

    @property
    def reusable(self) -> bool:
        return not self.closed and self.parser.done and self.parser.keep_alive and not self.parser.leftover


class UpstreamResponse:
    """The head of an upstream response, and its body read whole or piece by piece."""

    __slots__ = ("_conn", "_released", "content_type", "headers", "status")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._released = False
        parser = conn.parser
        self.status = parser.status
        self.headers = parser.headers
        self.content_type = (parser.content_type or "application/octet-stream").partition(";")[0].strip()

    def received_body(self) -> bytes | None:
        """The whole body if it has all arrived already (then the connection is released)."""
        conn = self._conn
        if not conn.received_whole:
            return None  # read() waits, raises or refuses it
        body = conn.take_received()
        self.release()
        return body

    async def read(self) -> bytes:
        """The whole body; an upstream that sends more than ``max_body`` bytes is cut off."""
        parts = []
        pool = self._conn.pool
        size = 0
        try:
            while (chunk := await self._conn.next_chunk()) is not None:
                parts.append(chunk)
                size += len(chunk)
                if size > pool.max_body:
                    raise UpstreamConnectionError(f"upstream body is larger than {pool.max_body} bytes")
        except BaseException:
            self.close()
            raise
        self.release()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def chunks(self) -> AsyncIterator[bytes]:
        """Body pieces as they arrive, for at most ``max_stream_seconds`` in all."""
        self._conn.stream_deadline = time.monotonic() + self._conn.pool.max_stream_seconds
        return _Chunks(self)

    def release(self) -> None:
        """Give the connection back when the response was read to its end, else close it."""
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.reusable:
            conn.pool.put(conn)
        else:
            conn.abort()

    close = release


class _Chunks:
    """An iterator object rather than an async generator: a generator is registered with the
    event loop (a weak set) on every first iteration, once per stream."""

    __slots__ = ("_resp",)

    def __init__(self, resp: UpstreamResponse) -> None:
        self._resp = resp

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        resp = self._resp
        chunk = await resp._conn.next_chunk()
        if chunk is None:
            resp.release()
            raise StopAsyncIteration
        return chunk


class UpstreamPool:
    """Kept-alive connections per origin, opened through the SSRF-guarded resolver."""

    def __init__(
        self,
        resolver: CachingResolver,
        connect_timeout: float,
        read_timeout: float,
        idle_timeout: float = 15.0,
        max_idle_per_origin: int = 256,
        *,
        max_body: int = 64 * 1024 * 1024,
        max_stream_seconds: float = 3600.0,
    ) -> None:
        self.resolver = resolver
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_body = max_body
        self.max_stream_seconds = max_stream_seconds
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle_per_origin
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._origins: dict[str, Origin] = {}
        #: (method, URL) → origin and the request line with Host, checked once.
        self._request_lines: dict[tuple[str, str], tuple[Origin, str]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._sweep_handle: asyncio.TimerHandle | None = None
        #: Connections with a request in flight, watched for read timeouts.
        self.busy: set[Connection] = set()
        self._watch_handle: asyncio.TimerHandle | None = None
        self._watch_every = min(_WATCH_S, max(read_timeout / 4, 0.01))
        #: The server's poller (``busy_poll.py``): waits on fast origins are polled through it.
        self.busy_poll: BusyPoll | None = None

    def watch(self, conn: Connection) -> None:
        self.busy.add(conn)
        if self._watch_handle is None:
            self._watch_handle = asyncio.get_running_loop().call_later(self._watch_every, self._watchdog)

    def _watchdog(self) -> None:
        self._watch_handle = None
        now = time.monotonic()
        for conn in list(self.busy):
            conn.timed_out(now, self.read_timeout)
        if self.busy:
            self._watch_handle = asyncio.get_running_loop().call_later(self._watch_every, self._watchdog)

    def put(self, conn: Connection) -> None:
        self.busy.discard(conn)
        idle = self._idle.setdefault(conn.origin.key, [])
        if len(idle) >= self.max_idle:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)
        if self._sweep_handle is None:
            self._sweep_handle = asyncio.get_running_loop().call_later(self.idle_timeout, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle past ``idle_timeout``: an origin used once must not keep its
        sockets (and the peer's) open until the peer happens to close them."""
        self._sweep_handle = None
        now = time.monotonic()
        for key, idle in list(self._idle.items()):
            kept = []
            for conn in idle:
                if not conn.closed and now - conn.idle_since < self.idle_timeout:
                    kept.append(conn)
                else:
                    conn.abort()
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if self._idle:
            self._sweep_handle = asyncio.get_running_loop().call_later(self.idle_timeout, self._sweep)

    def _take(self, origin: Origin) -> Connection | None:
        idle = self._idle.get(origin.key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < self.idle_timeout:
                return conn
            conn.abort()
        return None

    async def _open(self, origin: Origin) -> Connection:
        loop = asyncio.get_running_loop()
        if origin.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            async with asyncio.timeout(self.connect_timeout):
                addresses = await self.resolver.resolve(origin.host, origin.port)
                last: OSError | None = None
                for address in addresses:
                    try:
                        _, conn = await loop.create_connection(
                            lambda: Connection(self, origin),
                            address,
                            origin.port,
                            ssl=self._ssl if origin.tls else None,
                            server_hostname=origin.host if origin.tls else None,
                        )
                        return conn
                    except OSError as exc:
                        last = exc
                raise UpstreamConnectionError(f"cannot connect to {origin.host_header}: {last}")
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {origin.host_header} timed out") from None

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> UpstreamResponse:
        known = self._request_lines.get((method, url))
        if known is None:
            origin, target = split_url(url, self._origins)
            if _BAD_TARGET.search(target):
                raise bad_request("the upstream URL has a space, control or non-ASCII character in its path")
            known = (origin, f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n")
            if len(self._request_lines) >= _MAX_CACHED:
                self._request_lines.clear()
            self._request_lines[(method, url)] = known
        origin, start = known
        has_length = body is not None or method in _BODY_METHODS
        try:
            request = request_head(start, headers, len(body or b"") if has_length else -1, body)
        except ValueError as exc:
            raise bad_request(f"header {exc.args[0]!r} contains a line break or NUL") from None
        head_request = method == "HEAD"
        conn = self._take(origin)
        reused = conn is not None
        if conn is None:
            conn = await self._open(origin)
        while True:
            try:
                await conn.send(request, head_request)
                return UpstreamResponse(conn)
            except BaseException as exc:
                # Failed, timed out, or cancelled (the client went away, or a request_timeout
                # fired): the upstream may still answer on this connection, so it is never reused.
                conn.abort()
                # A kept-alive connection the upstream closed while it was idle (no response byte
                # came) is not the upstream failing: once more, on a new connection.
                if not (reused and isinstance(exc, UpstreamConnectionError) and not conn.parser.status):
                    raise
            reused = False
            conn = await self._open(origin)

    async def close(self) -> None:
        if self._watch_handle is not None:
            self._watch_handle.cancel()
            self._watch_handle = None
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
        await self.resolver.close()
