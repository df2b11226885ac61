"""The upstream pool's read-timeout watchdog looks at a connection when it could have timed out,
not at every tick: a worker holding thousands of open streams does not walk them all each
second (a stall in every stream's next event), and still fails each quiet one on time."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from fastgate.ssrf import HostPolicy
from fastgate.upstream.connection import Connection, UpstreamTimeout
from fastgate.upstream.dns import CachingResolver
from fastgate.upstream.pool import UpstreamPool

READ_TIMEOUT = 0.5
STREAMS = 100
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
EVENT = b"data: {}\n\n"
CHUNK = b"%x\r\n%b\r\n" % (len(EVENT), EVENT)


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(CachingResolver(HostPolicy()), connect_timeout=1.0, read_timeout=READ_TIMEOUT)
    yield p
    await p.close()


@pytest.fixture
def looks(monkeypatch: pytest.MonkeyPatch) -> list[Connection]:
    """Every connection the watchdog looks at, in order."""
    seen: list[Connection] = []
    original = Connection.timed_out

    def counted(self: Connection, now: float, read_timeout: float) -> None:
        seen.append(self)
        original(self, now, read_timeout)

    monkeypatch.setattr(Connection, "timed_out", counted)
    return seen


async def _request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)


async def test_quiet_streams_are_looked_at_once_when_due_and_failed(
    raw_server: Callable[[Any], Any], pool: UpstreamPool, looks: list[Connection]
) -> None:
    async def one_event_then_quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(HEAD + CHUNK)
        await writer.drain()
        await asyncio.sleep(30)

    url = await raw_server(one_event_then_quiet)
    started = time.monotonic()
    responses = await asyncio.gather(
        *(pool.request("POST", url + "/v1/x", {}, b"{}") for _ in range(STREAMS))
    )
    streams = [resp.chunks() for resp in responses]
    assert all(await asyncio.gather(*(anext(s) for s in streams)))
    # The watchdog ticks every READ_TIMEOUT / 4; until the streams could have timed out it
    # looks at none of them (it used to look at all of them at every tick).
    await asyncio.sleep(max(0.0, started + READ_TIMEOUT * 0.8 - time.monotonic()))
    assert looks == []
    results = await asyncio.gather(*(anext(s) for s in streams), return_exceptions=True)
    waited = time.monotonic() - started
    assert all(isinstance(r, UpstreamTimeout) and "stalled mid-response" in str(r) for r in results)
    assert READ_TIMEOUT <= waited < READ_TIMEOUT + 1.5
    assert len(looks) == STREAMS  # each once, when it was due


async def test_a_stream_that_keeps_talking_is_looked_at_once_per_timeout_not_per_tick(
    raw_server: Callable[[Any], Any], pool: UpstreamPool, looks: list[Connection]
) -> None:
    async def an_event_every_200ms(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(HEAD + CHUNK)
        for _ in range(8):
            await asyncio.sleep(0.2)
            writer.write(CHUNK)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    url = await raw_server(an_event_every_200ms)
    resp = await pool.request("POST", url + "/v1/x", {}, b"{}")
    body = b"".join([chunk async for chunk in resp.chunks()])
    assert body == EVENT * 9  # 1.6 s with reads 0.2 s apart: never timed out
    # About 13 ticks went by; the connection was looked at when its read timeout could have
    # passed, each time filed again from its last byte: 1.6 s / 0.5 s, give or take one.
    assert 2 <= len(looks) <= 4, len(looks)


async def test_closed_connections_are_not_kept_for_the_watchdog(
    raw_server: Callable[[Any], Any], pool: UpstreamPool
) -> None:
    async def answer_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()

    url = await raw_server(answer_and_close)
    kept: list[weakref.ref[Connection]] = []
    for _ in range(20):
        resp = await pool.request("POST", url + "/v1/x", {}, b"{}")
        kept.append(weakref.ref(resp._conn))
        assert await resp.read() == b"ok"  # not reusable: closed, and forgotten by the pool
        del resp
    await asyncio.sleep(0.05)
    gc.collect()
    assert [ref() for ref in kept] == [None] * 20
