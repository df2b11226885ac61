"""The baseline of ``bench/test_redis_clients.py``: fastgate's first Redis client, a minimal
RESP2 client on asyncio streams (one plain node: no TLS, ACL user, Sentinel or Cluster), which
``fastgate/store/client.py`` replaced. Its idea, automatic pipelining, lives on there on top of
redis-py's connection; the benchmark keeps the two side by side.

Every command of every concurrent request goes down the same connection in order and a single
reader task hands the replies back in the same order, so concurrent requests pipeline for free
and a batch (``pipeline``) costs one round trip. When the connection breaks, every waiting
command fails with :class:`RedisUnavailable`; the next command reconnects, but not sooner than
``retry_interval`` after a failed attempt, so a dead Redis costs callers no wait.

Protocol: https://redis.io/docs/latest/develop/reference/protocol-spec/ (RESP2).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from typing import Any
from urllib.parse import unquote, urlsplit

from fastgate.store.client import Script

Arg = bytes | str | int | float


class RedisError(Exception):
    """An error reply from the server (``-ERR ...``)."""


class RedisUnavailable(ConnectionError):
    """No connection to Redis (refused, broken, timed out, or waiting out the retry interval)."""


def encode_command(args: tuple[Arg, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


async def read_reply(reader: asyncio.StreamReader) -> Any:
    line = await reader.readuntil(b"\r\n")
    kind, rest = line[:1], line[1:-2]
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = await reader.readexactly(size + 2)
        return data[:-2]
    if kind == b":":
        return int(rest)
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RedisError(rest.decode(errors="replace"))
    if kind == b"*":
        size = int(rest)
        if size < 0:
            return None
        return [await read_reply(reader) for _ in range(size)]
    raise RedisUnavailable(f"unexpected reply type {kind!r}")


class Redis:
    """One pipelined connection to ``redis://[:password@]host:port[/db]``."""

    def __init__(self, url: str, *, timeout: float = 1.0, retry_interval: float = 0.5) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"unsupported Redis URL scheme {parts.scheme!r} (use redis://)")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 6379
        self.password = unquote(parts.password) if parts.password else None
        self.db = int(parts.path.strip("/") or 0)
        self.timeout = timeout
        self.retry_interval = retry_interval
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._connect_lock = asyncio.Lock()
        self._failed_at = 0.0
        #: Loaded on every new connection, so EVALSHA finds them even after a Redis restart.
        self._scripts: dict[str, Script] = {}

    def preload(self, *scripts: Script) -> None:
        for script in scripts:
            self._scripts[script.sha] = script

    async def _connect(self) -> None:
        if time.monotonic() - self._failed_at < self.retry_interval:
            raise RedisUnavailable("Redis is unavailable (retrying shortly)")
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port)
                hello: list[tuple[Arg, ...]] = []
                if self.password:
                    hello.append(("AUTH", self.password))
                if self.db:
                    hello.append(("SELECT", self.db))
                hello += [("SCRIPT", "LOAD", s.source) for s in self._scripts.values()]
                for command in hello:
                    writer.write(encode_command(command))
                    reply = await read_reply(reader)
                    if isinstance(reply, RedisError):
                        writer.close()
                        raise RedisUnavailable(f"Redis refused the connection setup: {reply}")
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
            self._failed_at = time.monotonic()
            raise RedisUnavailable(f"cannot connect to Redis at {self.host}:{self.port}: {exc}") from None
        self._writer = writer
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(reader, writer))

    async def _ensure(self) -> asyncio.StreamWriter:
        writer = self._writer
        if writer is not None:
            return writer
        # One connection attempt at a time; whoever waited behind it finds it open (or, if it
        # failed, fails at once on the retry interval) rather than connecting again.
        async with self._connect_lock:
            if self._writer is None:
                await self._connect()
        if self._writer is None:
            raise RedisUnavailable("connection to Redis lost")
        return self._writer

    async def _read_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                reply = await read_reply(reader)
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_result(reply)
        except (OSError, asyncio.IncompleteReadError, RedisUnavailable, ValueError, IndexError):
            pass
        finally:
            self._drop(writer)

    def _drop(self, writer: asyncio.StreamWriter) -> None:
        """Forget a broken connection and fail every command still waiting on it."""
        if self._writer is writer:
            self._writer = None
            self._failed_at = time.monotonic()
        writer.close()
        pending, self._pending = self._pending, collections.deque()
        for fut in pending:
            if not fut.done():
                fut.set_exception(RedisUnavailable("connection to Redis lost"))
                fut.exception()

    async def pipeline(self, commands: list[tuple[Arg, ...]]) -> list[Any]:
        """Send commands in one write; error replies come back as :class:`RedisError` values."""
        writer = await self._ensure()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self._pending.extend(futures)
        writer.write(b"".join(encode_command(c) for c in commands))
        try:
            async with asyncio.timeout(self.timeout):
                return [await f for f in futures]
        except TimeoutError:
            # Replies would arrive out of step with later commands: the connection is unusable.
            self._drop(writer)
            raise RedisUnavailable("Redis did not answer in time") from None

    async def close(self) -> None:
        writer = self._writer
        if writer is not None:
            self._drop(writer)
        task = self._reader_task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
