"""One request as the handlers see it, and the answers they give.

A handler returns a ``Response`` (written with its head in one transport write) or streams:
``await request.start_stream(...)``, ``await request.send(...)`` (or ``request.write(...)`` and,
when it says so, ``await request.drained()``), ``request.end_stream()``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote

import msgspec

if TYPE_CHECKING:
    from fastgate.server.upload import BodyStream

JSON = "application/json"
#: The interim answer a client that sent ``Expect: 100-continue`` waits for (RFC 9110 §10.1.1).
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: The end of a chunked body.
LAST_CHUNK = b"0\r\n\r\n"
#: Bytes of pipelined requests buffered while one is served before reading pauses.
PIPELINE_BUFFER = 256 * 1024


class AnswerWriter(Protocol):
    """Where a request's streamed answer goes: its client connection (``connection.Connection``)."""

    @property
    def streaming(self) -> bool: ...

    @property
    def shutting_down(self) -> bool: ...

    @property
    def peer(self) -> str: ...

    async def start_stream(
        self, status: int, headers: dict[str, str], content_type: str | None, first: bytes, end: bool
    ) -> None: ...

    async def send_chunk(self, data: bytes) -> None: ...

    def write_chunk(self, data: bytes) -> bool: ...

    async def drained(self) -> None: ...

    def end_stream(self, last: bytes) -> None: ...

    def abort(self) -> None: ...

    def upgrade(self, head: bytes) -> tuple[asyncio.Transport, bytes]: ...


class Response(msgspec.Struct, eq=False, gc=False):
    """A whole answer. A Struct: made in C, where an ``__init__`` ran on every request."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    content_type: str | None = JSON


class Request(msgspec.Struct, eq=False):
    """``headers`` has lower-cased names; ``path`` and ``query`` (the request-target split at its
    first ``?``) are as sent, percent-encoded.

    An upload route's body is ``upload``, read as it arrives (``body`` is then empty). A Struct:
    the connection makes one per request in C, where an ``__init__`` ran.
    """

    _conn: AnswerWriter
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool
    upload: BodyStream | None = None
    match_info: dict[str, str] = msgspec.field(default_factory=dict)

    @property
    def decoded_path(self) -> str:
        return unquote(self.path) if "%" in self.path else self.path

    @property
    def content_type(self) -> str:
        """The media type without parameters, lower-cased; "" when none was sent."""
        raw = self.headers.get("content-type")
        if not raw or raw == "application/json":
            return raw or ""
        return raw.partition(";")[0].strip().lower()

    @property
    def streaming(self) -> bool:
        return self._conn.streaming

    @property
    def shutting_down(self) -> bool:
        """The server is stopping, and this request's connection can still be written to."""
        return self._conn.shutting_down

    @property
    def peer(self) -> str:
        """The client's address, ``host:port`` ("" when unknown)."""
        return self._conn.peer

    async def start_stream(
        self,
        status: int,
        headers: dict[str, str],
        content_type: str | None,
        first: bytes = b"",
        *,
        end: bool = False,
    ) -> None:
        """Send the head of a chunked answer (with the body's first bytes, and with ``end`` its
        end, in the same write); the rest follows in ``send`` calls and ``end_stream``."""
        await self._conn.start_stream(status, headers, content_type, first, end)

    async def send(self, data: bytes) -> None:
        await self._conn.send_chunk(data)

    def write(self, data: bytes) -> bool:
        """``send`` without its wait: True when the client takes no more writes until
        ``drained`` (for a writer called from another connection's reads, which cannot wait)."""
        return self._conn.write_chunk(data)

    async def drained(self) -> None:
        """Wait until the client takes writes again, if it has stopped."""
        await self._conn.drained()

    def end_stream(self, last: bytes = b"") -> None:
        """Send the body's last bytes, if any, and its end, in one write."""
        self._conn.end_stream(last)

    def abort(self) -> None:
        """Cut the connection: a body that broke midway must not look complete to the client."""
        self._conn.abort()

    def upgrade(self, head: bytes) -> tuple[asyncio.Transport, bytes]:
        """Answer with ``head`` (101 Switching Protocols) and take the connection over: its
        transport, and the bytes the client sent past this request."""
        return self._conn.upgrade(head)
