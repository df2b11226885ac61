"""One client connection: bytes in through the compiled request parser, answers out.

Requests on a connection are served one after another (pipelined ones wait their turn). The
handler of the current request runs as a task; the connection closing cancels it, which closes
the upstream call it has open. Writes respect the transport's flow control: past its high-water
mark (64 KiB, uvloop's and asyncio's default) the answer waits and the connection stops reading,
so a client that sends and does not read holds one answer and a bounded buffer of requests; if
its writes stay paused longer than the client timeout, the server's sweep cuts it.

An upload route's body is not collected: its request is dispatched as soon as its head is read,
with a ``BodyStream`` the handler reads as the body arrives (``upload.py``), reading from the
client paused while the stream holds more than its high-water mark. A handler that answers
before the whole body came closes the connection after its answer. A WebSocket handler takes the
connection over (``upgrade``) and hands the transport to a protocol of its own.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, cast

from fastgate._transforms import RequestParser, RequestRefused, response_head
from fastgate.errors import error_body, type_for_status
from fastgate.server.busy_poll import BusyPoll, smoothed
from fastgate.server.messages import JSON, Request, Response
from fastgate.server.upload import HIGH_WATER, BodyStream

Dispatch = Callable[[Request], Awaitable[Response | None]]

log = logging.getLogger("fastgate.server")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_LAST_CHUNK = b"0\r\n\r\n"
#: Bytes of pipelined requests buffered while one is served before reading pauses.
_PIPELINE_BUFFER = 256 * 1024
#: How long a refused request's remaining bytes are read and dropped before the connection closes.
_LINGER_S = 2.0


class Listener(Protocol):
    """What a connection needs of the server that accepted it (``http_server.HTTPServer``)."""

    dispatch: Dispatch
    max_body: int
    #: The largest body of an upload route, streamed to its handler (``RequestParser``).
    max_upload: int
    #: Upload routes: exact paths, and (prefix, suffix) pairs of the paths with a parameter.
    uploads: tuple[frozenset[str], tuple[tuple[str, str], ...]]
    #: Open client connections at most (see ``make_room``).
    max_connections: int
    connections: set[Connection]
    #: The connections that have not completed a request yet, oldest first.
    fresh: dict[Connection, None]
    closing: bool
    #: The Date header block, renewed once a second.
    date: bytes
    busy_poll: BusyPoll | None
    loop: asyncio.AbstractEventLoop

    def make_room(self) -> bool: ...


class Connection(asyncio.Protocol):
    __slots__ = (
        "_chunked",
        "_continued",
        "_discarding",
        "_drain",
        "_head_only",
        "_http10",
        "_next",
        "_peer",
        "_polled",
        "_read_paused",
        "_refused",
        "_think_s",
        "_timing",
        "_upload",
        "_writes_paused_since",
        "busy",
        "head_since",
        "idle_since",
        "keep_alive",
        "parser",
        "server",
        "streaming",
        "task",
        "transport",
    )

    def __init__(self, server: Listener) -> None:
        self.server = server
        self.parser = RequestParser(server.max_body, server.max_upload, server.uploads)
        self.transport: asyncio.Transport | None = None
        #: The connection's serving task: made with its first request, then waiting for each
        #: next one (a task per request would cost its creation and registration each time).
        self.task: asyncio.Task[None] | None = None
        #: A request is being served.
        self.busy = False
        self._next: asyncio.Future[Request] | None = None
        #: The head of a chunked answer has gone out; its end has not.
        self.streaming = False
        self.keep_alive = True
        #: Monotonic second since which nothing is in progress (0: a request is in progress).
        self.idle_since = time.monotonic()
        #: When the request now being received began to arrive (0: none is).
        self.head_since = 0.0
        #: Monotonic second since which the transport has refused more writes (0: it takes them).
        self._writes_paused_since = 0.0
        self._drain: asyncio.Future[None] | None = None
        self._read_paused = False
        #: Closed at once: the server had its limit of connections.
        self._refused = False
        self._discarding = False
        #: This request's 100 Continue is sent (once per request).
        self._continued = False
        #: The current request: HTTP/1.0, a HEAD (the answer has no body), a chunked answer.
        self._http10 = False
        self._head_only = False
        self._chunked = True
        #: Smoothed seconds from an answer's last write to the client's next request (-1: none
        #: yet), timed while busy polling is on; whether the wait for the next one is polled.
        self._think_s = -1.0
        self._timing = False
        #: The poller polling through the wait for the next request, until it ends.
        self._polled: BusyPoll | None = None
        #: The client's address, once asked for (``peer``).
        self._peer: str | None = None
        #: The streamed body of the request being served, until all of it has arrived.
        self._upload: BodyStream | None = None

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's are not subclasses
        server = self.server
        if len(server.connections) >= server.max_connections and not server.make_room():
            # Every connection is in use: closed before anything is read or written, so that the
            # connections already open, and their upstream calls, keep their descriptors.
            self._refused = True
            self.transport.close()
            return
        server.connections.add(self)
        server.fresh[self] = None

    def data_received(self, data: bytes) -> None:
        if self._timing:
            self._client_returned()
        if self._discarding or self._refused:
            return
        if self._upload is not None:
            self._receive_body(data)
            return
        if self.busy:
            self.parser.feed(data)  # buffered: the next request is read when this one is done
            if self.parser.buffered > _PIPELINE_BUFFER:
                self._flow()
            return
        self._receive(data)

    def eof_received(self) -> bool:
        return False  # the client is done sending: close, which cancels what it was waiting for

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.server.fresh.pop(self, None)
        self._end_poll()
        # Dropped as it is cancelled: the task keeps its CancelledError, whose traceback holds
        # the serving frame and so this connection; held here too, the two would be a cycle that
        # only a full collection frees (memory grew with every client that came and went).
        task, self.task = self.task, None
        if task is not None:
            task.cancel()
        self._wake_writer(ConnectionResetError("the client closed the connection"))
        self.transport = None

    def pause_writing(self) -> None:
        self._writes_paused_since = time.monotonic()
        self._flow()

    def resume_writing(self) -> None:
        self._writes_paused_since = 0.0
        self._flow()
        self._wake_writer(None)

    def _flow(self) -> None:
        """Reads while the client takes its answers and its pipelined requests fit the buffer."""
        upload = self._upload
        paused = (
            bool(self._writes_paused_since)
            or (self.busy and self.parser.buffered > _PIPELINE_BUFFER)
            or (upload is not None and (upload.held or upload.buffered > HIGH_WATER))
        )
        transport = self.transport
        if paused != self._read_paused and transport is not None and not transport.is_closing():
            self._read_paused = paused
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    # ------------------------------------------------------------------ requests

    def _receive(self, data: bytes) -> None:
        parser = self.parser
        try:
            complete = parser.feed(data)
        except RequestRefused as exc:
            self._refuse(exc.status, exc.message)
            return
        upload = None
        body = parser.body
        if body:  # complete, with its body (a streamed one has none here)
            pass
        elif parser.streams_body:
            upload = self._begin_upload(complete)
        elif not complete:
            if parser.head_done and parser.expect_continue and not parser.buffered and not self._continued:
                # The client waits for this before it sends the body (RFC 9110 §10.1.1).
                self._continued = True
                self._write(_CONTINUE)
            if parser.started and not self.head_since:
                self.head_since = time.monotonic()
            return
        self.head_since = 0.0
        self.idle_since = 0.0
        self._continued = False
        self._http10 = parser.http10
        method = parser.method
        self._head_only = method == "HEAD"
        request = Request(self, method, parser.target, parser.headers, body, parser.keep_alive, upload)
        self.keep_alive = request.keep_alive
        self.busy = True
        waiting = self._next
        if waiting is not None:
            self._next = None
            waiting.set_result(request)
        else:  # its first request
            self.server.fresh.pop(self, None)
            self.task = self.server.loop.create_task(self._serve_all(request))

    def _begin_upload(self, complete: bool) -> BodyStream:
        """An upload's head is read: its body is streamed to the handler from here on."""
        parser = self.parser
        upload = BodyStream(self, parser.body_length)
        upload.put(parser.take_piece())
        if complete:
            upload.finish()
            return upload
        self._upload = upload
        if parser.expect_continue and not upload.buffered:
            self._write(_CONTINUE)  # the client waits for this before it sends the body (RFC 9110 §10.1.1)
        return upload

    def _receive_body(self, data: bytes) -> None:
        """More of a streamed body: on to its reader, and past its high-water mark no more reads."""
        upload = self._upload
        assert upload is not None
        parser = self.parser
        try:
            complete = parser.feed(data)
        except RequestRefused as exc:
            # The handler reading it answers with this status; what the client sends on is dropped.
            self._end_upload()
            upload.fail(exc.status, exc.message)
            return
        upload.put(parser.take_piece())
        if complete:
            self._upload = None
            upload.finish()
            if parser.buffered > _PIPELINE_BUFFER:
                self._flow()
        elif upload.buffered > HIGH_WATER:
            self._flow()

    def _end_upload(self) -> None:
        """The body will not be read to its end: the connection closes after the answer."""
        self._upload = None
        self.keep_alive = False
        self._discarding = True

    def upgrade(self, head: bytes) -> tuple[asyncio.Transport, bytes]:
        """Write ``head`` (a 101 Switching Protocols) and give the connection up: the transport,
        and the bytes the client sent past its request. The connection closes when the handler
        returns; the new protocol reports its loss to ``connection_lost``."""
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        self.keep_alive = False
        transport.write(head)
        return transport, self.parser.take_pending()

    async def _serve_all(self, request: Request) -> None:
        """Answer each request in turn until the connection is done (one coroutine for them all:
        a layer per request would cost its set-up, and every resume would walk it again)."""
        server = self.server
        loop = server.loop
        while True:
            try:
                response = await server.dispatch(request)
                if response is not None:
                    self.respond(response)
                # A client that sends and does not read: its next request waits for this answer
                # to drain, so answers are never piled up in memory.
                if self._writes_paused_since:
                    await self._drained()
            except ConnectionError:
                self._close()  # the client went away mid-answer: nothing is left to tell it
            except asyncio.CancelledError:
                self._close()
                raise
            except Exception:
                # The dispatcher renders every failure; one escaping it still ends this request
                # and never leaves the connection open and unanswered.
                log.exception("unhandled error serving %s %s", request.method, request.path)
                if self.streaming:
                    self.abort()
                else:
                    self._refuse(500, "Internal gateway error")
            finally:
                self.busy = False
                self._head_only = False
                if self._upload is not None:  # answered before the whole body arrived
                    self._upload.fail(400, "The request was answered before its body arrived")
                    self._end_upload()
            transport = self.transport
            if transport is None or transport.is_closing() or not self.keep_alive or server.closing:
                if self._discarding:
                    self._linger()
                else:
                    self._close()
                return
            self.idle_since = time.monotonic()
            self._next = waiting = loop.create_future()
            self._after()  # may complete a pipelined request, which then resolves ``waiting``
            poll = server.busy_poll
            if poll is not None and not waiting.done():
                self._timing = True
                self._polled = poll if poll.start(self._think_s, self.idle_since, 0) else None
            request = await waiting

    def _client_returned(self) -> None:
        self._timing = False
        self._think_s = smoothed(self._think_s, time.monotonic() - self.idle_since)
        self._end_poll()

    def _end_poll(self) -> None:
        poll, self._polled = self._polled, None
        if poll is not None:
            poll.arrived()

    def _after(self) -> None:
        """Between two requests: the next one may already be buffered (pipelining)."""
        parser = self.parser
        parser.reset()
        if parser.buffered:
            self._receive(b"")
        # Read on unless a pipelined request is being served with much more already waiting.
        if self._read_paused:
            self._flow()

    def _keep(self) -> bool:
        """Whether this answer keeps the connection open (it says so in its head): not when
        the request's body has not all arrived."""
        return self.keep_alive and not self.server.closing and self._upload is None

    def respond(self, response: Response) -> None:
        body = response.body
        keep = self._keep()
        head = response_head(
            response.status,
            response.headers,
            response.content_type,
            len(body),
            keep,
            self.server.date,
            self._http10,
        )
        if not keep:
            self.keep_alive = False
        if self._head_only:
            self._write(head)  # a HEAD's answer: the head a GET would have, no body
        elif len(body) < 16384:
            self._write(head + body)
        else:
            self._write(head, body)

    @property
    def peer(self) -> str:
        """The client's ``host:port`` ("" when unknown), read from the socket once per connection."""
        peer = self._peer
        if peer is None:
            address = self.transport.get_extra_info("peername") if self.transport is not None else None
            if isinstance(address, tuple) and len(address) >= 2:
                host = address[0]
                peer = f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
            else:
                peer = str(address) if address else ""
            self._peer = peer
        return peer

    @property
    def shutting_down(self) -> bool:
        """The server is stopping and this connection can still be written to: a stream that
        the end of the grace period cuts says so before it ends (``gateway/streaming.py``)."""
        transport = self.transport
        return self.server.closing and transport is not None and not transport.is_closing()

    async def start_stream(
        self, status: int, headers: dict[str, str], content_type: str | None, first: bytes, end: bool
    ) -> None:
        # HTTP/1.0 has no chunked coding: the body ends when the connection closes.
        self._chunked = chunked = not self._http10
        keep = chunked and self._keep()
        if not keep:
            self.keep_alive = False
        self.streaming = not end
        head = response_head(
            status, headers, content_type, -1 if chunked else -2, keep, self.server.date, self._http10
        )
        if self._head_only:
            self._write(head)
            self.streaming = False
            return
        if first:
            head += self._frame(first)
        self._write(head + _LAST_CHUNK if end and chunked else head)
        if self._writes_paused_since:
            await self._drained()

    def _frame(self, data: bytes) -> bytes:
        return b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data

    async def send_chunk(self, data: bytes) -> None:
        if self.write_chunk(data):
            await self._drained()

    def write_chunk(self, data: bytes) -> bool:
        """``send_chunk`` without its wait, for a caller that cannot wait (a relay writing from
        its upstream's reads): True when the client takes no more writes for now, and the
        caller must await ``drained`` before the next."""
        if not data or self._head_only:
            return False
        if self.transport is None:  # connection_lost: the client went away
            raise ConnectionResetError("the client closed the connection")
        self._write(self._frame(data))
        return bool(self._writes_paused_since)

    async def drained(self) -> None:
        """Wait until the client takes writes again, if it has stopped."""
        if self._writes_paused_since:
            await self._drained()

    def end_stream(self, last: bytes) -> None:
        self.streaming = False
        if self._head_only:
            return
        if not self._chunked:
            if last:
                self._write(last)
            return
        self._write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(last), last) if last else _LAST_CHUNK)

    def _refuse(self, status: int, message: str) -> None:
        """A request that cannot be parsed or served at all: answer it and close."""
        self.keep_alive = False
        body = error_body(status, message, type=type_for_status(status))
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.respond(Response(status, body, content_type=JSON))
        self._linger()

    def _linger(self) -> None:
        """Close after the answer, reading and dropping what the client still sends for a while.

        Closed at once with the client's unread bytes still arriving, the kernel would answer
        with a reset, which can destroy the answer before it is read.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not transport.can_write_eof():
            self._close()
            return
        transport.write_eof()
        self._discarding = True
        if self._read_paused:
            self._flow()  # read (and drop) what the client still sends, or it would meet a reset
        self.server.loop.call_later(_LINGER_S, self._close)

    # ------------------------------------------------------------------ writing

    def _write(self, data: bytes, more: bytes | None = None) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        transport.write(data)
        if more is not None:
            transport.write(more)

    async def _drained(self) -> None:
        """Wait until the transport takes writes again (called only while it is paused: a
        coroutine made for every write would cost its set-up for nothing)."""
        if self.transport is None:  # connection_lost: the client went away
            raise ConnectionResetError("the client closed the connection")
        self._drain = self.server.loop.create_future()
        await self._drain

    def _wake_writer(self, exc: Exception | None) -> None:
        waiter, self._drain = self._drain, None
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Cut the connection (a relayed body that broke midway: the client sees it incomplete)."""
        if self.transport is not None:
            self.transport.abort()

    def close_if_unused(self) -> bool:
        """Close a connection that has sent nothing (it makes room for another)."""
        if self.busy or self.parser.started or self.task is not None:
            return False
        self._close()
        return True

    def close_if_idle(self) -> bool:
        if not self.busy and not self.parser.started:
            self._close()
            return True
        return False

    def time_out(self, now: float, idle_timeout: float, client_timeout: float) -> None:
        """Called by the server's sweep: close a connection idle, too slow to send its request,
        or that has not read what it was sent for longer than ``client_timeout``."""
        if self._writes_paused_since and now - self._writes_paused_since > client_timeout:
            # Cut, not closed: a close would wait for the answers it will never read.
            self.abort()
            return
        upload = self._upload
        if upload is not None and not self._read_paused and now - upload.last_io > client_timeout:
            # A streamed body is timed between its bytes: a large upload may take long in all.
            self._end_upload()
            upload.fail(408, "The request body stopped arriving")
            return
        if self.busy or self._discarding:
            return
        if self.head_since and now - self.head_since > client_timeout:
            self._refuse(408, "The request was not received in time")
        elif self.idle_since and not self.head_since and now - self.idle_since > idle_timeout:
            self._close()
