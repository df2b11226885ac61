"""A request body read as it arrives: the body of an upload route, handed to its handler unread.

The connection feeds it what the parser takes from each read; the handler (the upstream writer)
pulls pieces, or, once it is writing them as they come, has them pushed to it (``attach``): each
read then goes from the client's ``data_received`` straight to the upstream's transport, with no
task switch between (a loop awaiting every piece moved a third of what a plain relay does).
Back-pressure runs the whole way: past ``HIGH_WATER`` bytes waiting here, or while the attached
writer's transport is full (``throttle``), the connection stops reading from the client
(``Connection._flow``), so a client faster than the upstream holds little in the gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from fastgate.errors import GatewayError, type_for_status

#: Bytes of a body waiting for its reader before the client's socket stops being read.
HIGH_WATER = 1024 * 1024


class Reader(Protocol):
    """What the stream needs of its connection."""

    def _flow(self) -> None: ...


class BodyStream:
    """The pieces of one request body in arrival order; ``read`` returns b"" at its end."""

    __slots__ = (
        "_conn",
        "_end",
        "_error",
        "_pieces",
        "_sink",
        "_waiter",
        "buffered",
        "held",
        "last_io",
        "length",
    )

    def __init__(self, conn: Reader, length: int) -> None:
        self._conn = conn
        #: The Content-Length, or -1 for a chunked body.
        self.length = length
        self._pieces: deque[bytes] = deque()
        self.buffered = 0
        self._end = False
        #: Why the body cannot be read to its end: (status, message).
        self._error: tuple[int, str] | None = None
        self._waiter: asyncio.Future[None] | None = None
        #: When a byte last arrived (or reading last resumed), for the client timeout.
        self.last_io = time.monotonic()
        #: Where pieces go as they arrive once a writer is attached (``attach``).
        self._sink: Callable[[bytes], None] | None = None
        #: The attached writer cannot take more now: the client is not read.
        self.held = False

    @property
    def complete(self) -> bool:
        """Every byte of the body has arrived (some may still wait to be read)."""
        return self._end

    def put(self, piece: bytes) -> None:
        self.last_io = time.monotonic()
        if piece:
            if self._sink is not None:
                self._sink(piece)
                return
            self._pieces.append(piece)
            self.buffered += len(piece)
            self._wake()

    def attach(self, sink: Callable[[bytes], None]) -> bool:
        """From now on each piece goes to ``sink`` as it arrives (what waits here first);
        ``read`` then returns only at the end of the body (b"") or when woken (None)."""
        pieces = self._pieces
        while pieces:
            sink(pieces.popleft())
        was_full = self.buffered > HIGH_WATER
        self.buffered = 0
        self._sink = sink
        if was_full:
            self._conn._flow()
        return True

    def detach(self) -> None:
        self._sink = None
        self.throttle(False)

    def throttle(self, held: bool) -> None:
        """The attached writer cannot take more (or can again): reading from the client stops."""
        if held != self.held:
            self.held = held
            if not held:
                self.last_io = time.monotonic()
            self._conn._flow()

    def finish(self) -> None:
        self._end = True
        self._wake()

    def fail(self, status: int, message: str) -> None:
        """The body cannot be read to its end (refused by the parser, timed out): its reader
        raises a ``GatewayError`` with this status, which becomes the answer."""
        if not self._end:
            self._error = (status, message)
            self._end = True
            self._pieces.clear()
            self.buffered = 0
            self._wake()

    def wake(self) -> None:
        """Make a waiting ``read`` return None: its reader has something else to look at."""
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def read(self) -> bytes | None:
        """Everything that has arrived as one piece; b"" at the end of the body; None when
        ``wake`` interrupted the wait. Raises the ``GatewayError`` that ``fail`` described."""
        if not self._pieces and not self._end:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
            if not self._pieces and not self._end:
                return None
        if self._error is not None:
            status, message = self._error
            raise GatewayError(status, message, type=type_for_status(status))
        pieces = self._pieces
        if not pieces:
            return b""
        piece = pieces.popleft() if len(pieces) == 1 else b"".join(pieces)
        pieces.clear()
        was_full = self.buffered > HIGH_WATER
        self.buffered = 0
        if was_full:
            self.last_io = time.monotonic()
            self._conn._flow()  # read from the client again
        return piece

    async def read_all(self, limit: int) -> bytes:
        """The whole body (for a handler that needs it whole), at most ``limit`` bytes."""
        pieces: list[bytes] = []
        size = 0
        while (piece := await self.read()) != b"":
            if piece is None:
                continue
            size += len(piece)
            if size > limit:
                raise ValueError(f"body larger than {limit} bytes")
            pieces.append(piece)
        return b"".join(pieces)
