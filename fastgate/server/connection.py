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
from typing import Protocol, cast

from fastgate._transforms import RequestParser, RequestRefused, ServerProtocol, response_head
from fastgate.errors import error_body, type_for_status
from fastgate.server.busy_poll import BusyPoll
from fastgate.server.dispatch import Dispatcher
from fastgate.server.messages import CONTINUE, JSON, LAST_CHUNK, PIPELINE_BUFFER, Request, Response
from fastgate.server.upload import HIGH_WATER, BodyStream

log = logging.getLogger("fastgate.server")
#: How long a refused request's remaining bytes are read and dropped before the connection closes.
_LINGER_S = 2.0


class Listener(Protocol):
    """What a connection needs of the server that accepted it (``http_server.HTTPServer``)."""

    dispatch: Dispatcher
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


class Connection(ServerProtocol):
    """One client connection. Its per-request work (reading a request, writing an answer) is
    compiled (``kernels/serving.pxi``); what waits, and what happens once a connection, is here."""

    __slots__ = ()

    server: Listener
    parser: RequestParser
    transport: asyncio.Transport | None
    task: asyncio.Task[None] | None
    _next: asyncio.Future[Request] | None
    _drain: asyncio.Future[None] | None
    _polled: BusyPoll | None
    _peer: str | None
    _upload: BodyStream | None

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

    # ------------------------------------------------------------------ requests

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
            self._write(CONTINUE)  # the client waits for this before it sends the body (RFC 9110 §10.1.1)
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
            if parser.buffered > PIPELINE_BUFFER:
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
        dispatcher = self.server.dispatch
        while True:
            try:
                counted = False
                try:
                    handler, counted = dispatcher.admit(request)
                    response = await handler(request)
                except ConnectionError:
                    raise
                except Exception as exc:
                    response = dispatcher.failed(request, exc)
                finally:
                    if counted:
                        dispatcher.in_flight -= 1
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
                self._served()
            waiting = self._next_request()
            if waiting is None:
                return
            request = await waiting

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
        self._write(head + LAST_CHUNK if end and chunked else head)
        if self._writes_paused_since:
            await self._drained()

    async def send_chunk(self, data: bytes) -> None:
        if self.write_chunk(data):
            await self._drained()

    async def drained(self) -> None:
        """Wait until the client takes writes again, if it has stopped."""
        if self._writes_paused_since:
            await self._drained()

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
