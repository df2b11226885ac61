"""One kept-alive upstream connection: an asyncio protocol feeding the compiled response parser.

A response is a parser fed straight from ``data_received``; its body is taken whole when it has all
arrived with the head, or piece by piece as it comes (streams), or handed on as it arrives to a
sink called from ``data_received`` itself (``UpstreamResponse.relay``). Read timeouts are the
pool's watchdog's business: a connection only notes the time of its last byte.

A request body may also be streamed (an upload relayed as the client sends it, ``write_body``):
written piece by piece, waiting while the transport's buffer is past its high-water mark, and
given up as soon as the answer's head arrives (an upstream may refuse an upload before reading
it all; the connection is then not reused).
"""

from __future__ import annotations

import asyncio
import select
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from fastgate._transforms import BodyBuffer, HTTPParseError, ResponseParser
from fastgate.server.busy_poll import BusyPoll, smoothed

_HIGH_WATER = 1024 * 1024
#: The write buffer's high-water mark while a streamed request body is written.
_BODY_HIGH_WATER = 1024 * 1024


class Pool(Protocol):
    """What a connection needs of its pool."""

    max_body: int
    max_stream_seconds: float
    busy_poll: BusyPoll | None

    def watch(self, conn: Connection) -> None: ...

    def put(self, conn: Connection) -> None: ...

    def forget(self, conn: Connection) -> None: ...


class BodySource(Protocol):
    """A request body read piece by piece (``server/upload.py``, ``gateway/uploads.py``)."""

    #: The Content-Length, or -1: sent chunked.
    length: int

    async def read(self) -> bytes | None:
        """The next piece; b"" at the end; None when ``wake`` interrupted the wait."""
        ...

    def wake(self) -> None: ...

    def attach(self, sink: Callable[[bytes], None]) -> bool:
        """Push pieces to ``sink`` as they arrive from now on, if it can (else read on)."""
        ...

    def detach(self) -> None: ...

    def throttle(self, held: bool) -> None:
        """The attached sink cannot take more now (or can again)."""
        ...


class UpstreamConnectionError(OSError):
    """The upstream refused, reset or broke the connection, or spoke broken HTTP."""


class NothingWritten(UpstreamConnectionError):
    """The connection was found closed as the request was written: no byte of it left."""


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


class Connection(asyncio.Protocol):
    """One kept-alive connection; carries one request/response at a time."""

    def __init__(self, pool: Pool, origin: Origin) -> None:
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
        #: Watches the socket for bytes or an EOF while the connection is idle (``stale``).
        self._readable: select.poll | None = None
        #: The streamed request body being written, and whether the transport takes more.
        self._body: BodySource | None = None
        self._write_paused = False
        #: The answer came before all of a streamed body was sent: not reusable.
        self._body_cut = False
        #: While a body is relayed (``UpstreamResponse.relay``): takes each read's body bytes,
        #: False when it wants no more for now (reading then pauses and the relay returns).
        self._sink: Callable[[bytes], bool] | None = None
        self._sink_full = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.loop = asyncio.get_running_loop()  # held: each look-up costs a getpid
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._readable = select.poll()
            self._readable.register(sock.fileno(), select.POLLIN)

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
        sink = self._sink
        if chunks:
            if sink is not None:
                if not sink(chunks[0] if len(chunks) == 1 else b"".join(chunks)):
                    self._sink_full = True
                    self._pause()
            else:
                self._chunks.extend(chunks)
                buffered = self._buffered
                for chunk in chunks:
                    buffered += len(chunk)
                self._buffered = buffered
                if self._buffered > _HIGH_WATER:
                    self._pause()
        head = self._head
        if head is not None and not head.done() and parser.head_done:
            head.set_result(None)
            if self._body is not None:  # answered while the body is still being sent
                self._wake_body()
        waiter = self._waiter
        if (
            waiter is not None
            and not waiter.done()
            and (parser.done or self._sink_full or (chunks and not sink))
        ):
            waiter.set_result(None)

    def _pause(self) -> None:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def _resume(self) -> None:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        if self.parser.reads_to_eof:
            self.parser.feed_eof()
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
            return
        if not self.parser.done:
            reason = f" ({exc})" if exc else ""
            self._fail(UpstreamConnectionError(f"upstream closed the connection{reason}"))

    def pause_writing(self) -> None:
        self._write_paused = True
        if self._body is not None:
            self._body.throttle(True)

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._body is not None:
            self._body.throttle(False)

    def _wake_body(self) -> None:
        """A streamed body's writer has something to look at: the answer's head came, or the
        connection failed."""
        if self._body is not None:
            self._body.wake()

    # -- the client side
    def _fail(self, exc: BaseException) -> None:
        # Kept, and raised as copies: a raised exception keeps the frames it went through, which
        # hold this connection, so the stored one raised would make a cycle that only a full
        # collection frees (memory would grow with every upstream connection that failed).
        self._error = exc
        for fut in (self._head, self._waiter):
            if fut is not None and not fut.done():
                fut.set_exception(_copy(exc))
        self._wake_body()
        self.abort()

    def abort(self) -> None:
        self.closed = True
        self._end_poll()
        self._head = None  # failed or cancelled: its exception's frames hold this connection
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()

    @property
    def stale(self) -> bool:
        """An idle connection the upstream closed, or spoke on unasked, since it was put back.

        The event loop may not have read that yet: the socket itself is asked (one ``poll``
        with no wait). Go's net/http reuses only connections its reader found still open
        (``persistConn.isBroken``); a request written to one the upstream had closed would
        fail with no way to tell whether it was processed.
        """
        if self.closed:
            return True
        readable = self._readable
        return readable is not None and bool(readable.poll(0))

    def send(self, request: bytes, head_request: bool) -> asyncio.Future[None]:
        """Write the request; the future resolves with the response head.

        Whoever awaits it aborts the connection when the wait ends in anything but the head.
        Raises :class:`NothingWritten` when the write could not begin (the connection was
        closing, or the first send failed at once).
        """
        assert self.transport is not None and self.loop is not None
        if self.transport.is_closing():
            raise NothingWritten("upstream closed the connection before the request was written")
        self.parser.reset(head_request)
        self._chunks.clear()
        self._buffered = 0
        self._sink_full = False
        self._resume()  # a relay that stopped at its body's last read left reading paused
        self._error = None
        self._body_cut = False
        self.stream_deadline = 0.0
        self.last_io = now = time.monotonic()
        self.pool.watch(self)
        self.transport.write(request)
        if self.transport.is_closing():
            # The transport's first send failed (it tries at once): nothing reached the socket.
            raise NothingWritten("upstream closed the connection before the request was written")
        head = self._head = self.loop.create_future()
        poll = self.pool.busy_poll
        if poll is not None:
            self._timing = True
            self._polled = poll if poll.start(self.origin.answer_s, now, 1) else None
        return head

    async def write_body(self, body: BodySource, head: asyncio.Future[None]) -> None:
        """Write a streamed request body after its head (``send``), chunked when its length is
        unknown; stops early when the answer's head (``head``) arrives or the connection fails,
        which the caller learns by awaiting ``head``.

        Pieces already read (a body sent again, a form's rewritten fields) are written as this
        loop reads them; from there on the body pushes each piece as it arrives (``attach``),
        and holds the client back while this transport's buffer is full (``pause_writing``).
        """
        transport = self.transport
        assert transport is not None
        chunked = body.length < 0
        write = self._chunk_writer(transport) if chunked else self._plain_writer(transport)
        self._body = body
        attached = False
        # Room for a few of the client's reads: each time it fills, the client stops being read.
        transport.set_write_buffer_limits(high=_BODY_HIGH_WATER)
        try:
            while not head.done():
                if not attached and body.attach(write):
                    attached = True
                    if self._write_paused:
                        body.throttle(True)
                piece = await body.read()
                if piece is None or head.done():
                    continue
                if transport.is_closing():
                    raise UpstreamConnectionError("upstream closed the connection while the body was sent")
                if not piece:
                    if chunked:
                        transport.write(b"0\r\n\r\n")
                    return
                write(piece)
            self._body_cut = True  # answered before the whole body was sent
        finally:
            self._body = None
            transport.set_write_buffer_limits()  # the default again, for the answers to come
            if attached:
                body.detach()

    def _plain_writer(self, transport: asyncio.Transport) -> Callable[[bytes], None]:
        def write(piece: bytes) -> None:
            if not transport.is_closing():
                self.last_io = time.monotonic()
                transport.write(piece)

        return write

    def _chunk_writer(self, transport: asyncio.Transport) -> Callable[[bytes], None]:
        def write(piece: bytes) -> None:
            if not transport.is_closing():
                self.last_io = time.monotonic()
                transport.writelines((b"%x\r\n" % len(piece), piece, b"\r\n"))

        return write

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
            await self._wait()
        # Everything that has arrived goes on as one piece: a chunked upstream that sent 20 SSE
        # frames in one read must not cost 20 writes to the client.
        return self.take_received()

    async def _wait(self) -> None:
        """Until ``data_received`` or a failure wakes the connection's one reader."""
        assert self.loop is not None
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take_received(self) -> bytes:
        """Everything received and not yet taken, as one piece; reading resumes if it paused."""
        chunks = self._chunks
        chunk = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        self._resume()
        return chunk

    async def relay(self, sink: Callable[[bytes], bool]) -> bool:
        """Hand the body to ``sink`` as it arrives: what was received before, then each read's
        bytes from ``data_received`` itself. A model's stream is hundreds of small reads, and
        this way none of them costs a future, a task switch or a coroutine layer. True at the
        end of the body; False as soon as ``sink`` returns False (it wants no more for now:
        reading stays paused until the next call). Raises the connection's failure."""
        if self._chunks and not sink(self.take_received()):
            return False
        self._sink_full = False
        self._resume()
        self._sink = sink
        try:
            while not self._sink_full:
                if self.parser.done:
                    return True
                if self._error is not None:
                    raise _copy(self._error)
                await self._wait()
            return False
        finally:
            self._sink = None

    @property
    def received_whole(self) -> bool:
        """The whole body has arrived, within the size limit."""
        return self.parser.done and self._error is None and self._buffered <= self.pool.max_body

    @property
    def reusable(self) -> bool:
        return (
            not self.closed
            and self.parser.done
            and self.parser.keep_alive
            and not self.parser.leftover
            and not self._body_cut
        )


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
        """The whole body; an upstream that sends more than ``max_body`` bytes is cut off.

        A body that comes in several reads is collected in one growing buffer, not a list of its
        pieces joined at the end (twice its size at the join)."""
        first = b""
        rest: BodyBuffer | None = None
        limit = self._conn.pool.max_body
        size = 0
        try:
            while (chunk := await self._conn.next_chunk()) is not None:
                size += len(chunk)
                if size > limit:
                    raise UpstreamConnectionError(f"upstream body is larger than {limit} bytes")
                if not first:
                    first = chunk  # most bodies come in one piece: kept as it is
                    continue
                if rest is None:
                    rest = BodyBuffer()
                    rest.append(first)
                rest.append(chunk)
        except BaseException:
            self.close()
            raise
        self.release()
        return first if rest is None else rest.take()

    def chunks(self) -> AsyncIterator[bytes]:
        """Body pieces as they arrive, for at most ``max_stream_seconds`` in all."""
        self._conn.stream_deadline = time.monotonic() + self._conn.pool.max_stream_seconds
        return _Chunks(self)

    async def relay(self, sink: Callable[[bytes], bool]) -> bool:
        """The rest of the body handed to ``sink`` as it arrives (``Connection.relay``), after
        ``chunks`` has begun it; the connection is released at its end."""
        if await self._conn.relay(sink):
            self.release()
            return True
        return False

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
