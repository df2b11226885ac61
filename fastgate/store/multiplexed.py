"""Every concurrent request's commands down one redis-py connection: automatic pipelining.

redis-py's own client takes a pooled connection per command and waits for its reply: at 64
requests in flight, 64 connections and twice the CPU per call of writing each command to one
connection as it comes and reading the replies in order with one task
(``bench/test_redis_clients.py`` measures both). The connection itself is redis-py's: TLS, ACL
``AUTH``, ``SELECT``, Sentinel's look-up of the primary, and hiredis parsing the replies.

When the connection breaks, every waiting command fails with :class:`StoreUnavailable`; the
next command reconnects, but not sooner than ``retry_interval`` after a failed attempt, so a
dead Redis costs callers no wait.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from hiredis import pack_command
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import RedisError, ResponseError

from fastgate.store.base import StoreUnavailable

Arg = bytes | str | int | float
Command = Sequence[Arg]

#: How long after a failed connection attempt commands fail at once instead of trying again.
RETRY_INTERVAL = 0.5


def _packed(commands: Sequence[Command]) -> bytes:
    """The commands as RESP, in one buffer: one write (a list of buffers costs uvloop a send
    per buffer), packed by hiredis in C."""
    # hiredis's stub types the argument as a 1-tuple; it takes any tuple of arguments.
    return b"".join([pack_command(tuple(command)) for command in commands])  # type: ignore[arg-type]


class Multiplexed:
    """One connection made by ``connect`` (a new redis-py connection object per attempt)."""

    def __init__(
        self,
        connect: Callable[[], AbstractConnection],
        where: str,
        *,
        timeout: float,
        retry_interval: float = RETRY_INTERVAL,
        setup: Sequence[Command] = (),
    ) -> None:
        self._new_connection = connect
        #: Sent on every new connection before anything else (``SCRIPT LOAD``s), read as it is
        #: when a connection opens, so commands added later reach later connections.
        self.setup = setup
        self.where = where
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._conn: AbstractConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._connect_lock = asyncio.Lock()
        #: Callers queued behind a connection attempt: later callers queue too, so commands go
        #: out in the order they were sent even across a connect (a Cluster's primaries then see
        #: a request's scripts in the same order, and no scope admits what its sibling refused).
        self._queued = 0
        self._failed_at = -retry_interval
        #: Closes of dropped connections under way (awaited by :meth:`close`).
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def _connect(self) -> AbstractConnection:
        if time.monotonic() - self._failed_at < self.retry_interval:
            raise StoreUnavailable(f"Redis at {self.where} is unavailable (retrying shortly)")
        conn = self._new_connection()
        try:
            async with asyncio.timeout(self.timeout * 2):
                await conn.connect()
                if self.setup:
                    await conn.send_packed_command(_packed(self.setup), check_health=False)
                    for _ in self.setup:
                        await conn.read_response(disconnect_on_error=False)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed_at = time.monotonic()
            with contextlib.suppress(Exception):
                await conn.disconnect(nowait=True)
            raise StoreUnavailable(f"cannot connect to Redis at {self.where}: {exc}") from None
        self._conn = conn
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(conn))
        return conn

    async def _ensure(self) -> AbstractConnection:
        conn = self._conn
        if conn is not None and not self._queued:
            return conn
        # One attempt at a time; whoever waited behind it finds the connection open, or fails at
        # once on the retry interval, rather than connecting again.
        self._queued += 1
        try:
            async with self._connect_lock:
                return self._conn or await self._connect()
        finally:
            self._queued -= 1

    async def _read_loop(self, conn: AbstractConnection) -> None:
        pending = self._pending
        try:
            while True:
                try:
                    reply = await conn.read_response(disconnect_on_error=False)
                except ResponseError as error:
                    reply = error
                pending.popleft().set_result(reply)
        except (RedisError, OSError, IndexError, asyncio.InvalidStateError):
            pass
        finally:
            self._drop(conn)

    def _drop(self, conn: AbstractConnection) -> None:
        """Forget a broken connection and fail every command still waiting on it."""
        if self._conn is not conn:
            return
        self._conn = None
        self._failed_at = time.monotonic()
        pending, self._pending = self._pending, collections.deque()
        for fut in pending:
            if not fut.done():
                fut.set_exception(StoreUnavailable(f"connection to Redis at {self.where} lost"))
                fut.exception()
        reader = self._reader
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
        closing = asyncio.get_running_loop().create_task(conn.disconnect(nowait=True))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Send commands in one write; error replies come back as ``ResponseError`` values."""
        conn = await self._ensure()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self._pending.extend(futures)
        try:
            # Written before the first suspension, so the order of the futures is the order on
            # the wire even with many writers.
            await conn.send_packed_command(_packed(commands), check_health=False)
        except (RedisError, OSError) as exc:
            self._drop(conn)
            raise StoreUnavailable(f"connection to Redis at {self.where} lost: {exc}") from None
        try:
            async with asyncio.timeout(self.timeout):
                return [await f for f in futures]
        except TimeoutError:
            # A late reply would pair later commands with the wrong replies: the connection goes.
            self._drop(conn)
            raise StoreUnavailable(f"Redis at {self.where} did not answer in time") from None

    async def close(self) -> None:
        conn = self._conn
        if conn is not None:
            self._drop(conn)
        reader = self._reader
        if reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
