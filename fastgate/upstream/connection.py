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
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from fastgate._transforms import (
    BodyBuffer,
    NothingWritten,
    UpstreamConnectionError,
    UpstreamHead,
    UpstreamPoolCore,
    UpstreamProtocol,
)

__all__ = ["Connection", "NothingWritten", "UpstreamConnectionError", "UpstreamResponse", "UpstreamTimeout"]

#: The write buffer's high-water mark while a streamed request body is written.
_BODY_HIGH_WATER = 1024 * 1024


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


class UpstreamTimeout(TimeoutError):
    """The upstream did not connect or send a byte within the configured time."""


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


class Connection(UpstreamProtocol):
    """One kept-alive connection; carries one request/response at a time. Its per-request work
    (the protocol callbacks, ``send``, taking the body, the reuse checks) is compiled
    (``kernels/upstream.pxi``); what waits is here."""

    __slots__ = ()

    pool: UpstreamPoolCore
    origin: Origin

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
                raise self.failure()
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
                    raise self.failure()
                await self._wait()
            return False
        finally:
            self._sink = None


class UpstreamResponse(UpstreamHead):
    """The head of an upstream response (compiled: ``kernels/upstream.pxi``), and its body read
    whole or piece by piece."""

    __slots__ = ()

    _conn: Connection

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

    close = UpstreamHead.release


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
