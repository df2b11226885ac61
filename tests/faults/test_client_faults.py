"""Clients that go away, dawdle, send too much, or keep one connection for many requests.

A client that disconnects must cancel the upstream call and free its connection: checked by
counting asyncio tasks and open file descriptors before and after, with the gateway and the
mock upstream in this process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.conftest import Gateway, Upstream, openai_headers
from tests.faults.conftest import Baseline, settles

CHAT = {"model": "m", "messages": [{"role": "user", "content": "one two three four five six"}]}


def raw_request(
    gw: Gateway, headers: dict[str, str], body_length: int, path: str = "/v1/chat/completions"
) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {gw.host}", f"Content-Length: {body_length}"]
    lines += [f"{k}: {v}" for k, v in {"Content-Type": "application/json", **headers}.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def connect(gw: Gateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(gw.host, gw.port)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    await writer.wait_closed()


async def warm_up(gw: Gateway, upstream: Upstream) -> None:
    """One request of each kind, so pooled connections and lazy state exist before the baseline."""
    for stream in (False, True):
        resp = await gw.post("/v1/chat/completions", {**CHAT, "stream": stream}, openai_headers(upstream))
        assert resp.status == 200
        await resp.read()


async def test_disconnect_mid_request_body_reaches_no_upstream_and_leaks_nothing(
    gateway: Gateway, upstream: Upstream
) -> None:
    await warm_up(gateway, upstream)
    upstream.requests.clear()
    before = Baseline()
    for _ in range(20):
        _reader, writer = await connect(gateway)
        writer.write(raw_request(gateway, openai_headers(upstream), 100_000) + b'{"model": "m", "mess')
        await writer.drain()
        await close(writer)
    await before.back()
    assert upstream.requests == []
    await warm_up(gateway, upstream)


@pytest.mark.parametrize("where", ["waiting for the head", "mid-stream"])
async def test_disconnect_cancels_the_upstream_call_and_leaks_nothing(
    gateway: Gateway, upstream: Upstream, where: str
) -> None:
    await warm_up(gateway, upstream)
    before = Baseline()
    directives = (
        {"delay_ms": 10_000} if where == "waiting for the head" else {"chunks": 50, "chunk_delay_ms": 100}
    )
    payload = msgspec.json.encode({**CHAT, "stream": True, "mock": directives})
    for _ in range(5):
        reader, writer = await connect(gateway)
        writer.write(raw_request(gateway, openai_headers(upstream), len(payload)) + payload)
        await writer.drain()
        if where == "mid-stream":
            await reader.readuntil(b"data: ")  # the stream has started
        assert await settles(lambda: upstream.state.active == 1)
        await close(writer)
        # The upstream handler is cancelled because the gateway closed its side of the call.
        assert await settles(lambda: upstream.state.active == 0)
    # The aborted upstream connections are gone: one warm-up puts the pooled ones back, and then
    # there are no more tasks or descriptors than before.
    await warm_up(gateway, upstream)
    await before.back()


async def test_a_slow_body_is_read_in_full(gateway: Gateway, upstream: Upstream) -> None:
    payload = msgspec.json.encode({**CHAT, "mock": {"content": "slowly but surely"}})
    reader, writer = await connect(gateway)
    writer.write(raw_request(gateway, openai_headers(upstream), len(payload)))
    for i in range(0, len(payload), 16):
        writer.write(payload[i : i + 16])
        await writer.drain()
        await asyncio.sleep(0.02)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1]
    )
    answer = msgspec.json.decode(await reader.readexactly(length))
    assert answer["choices"][0]["message"]["content"] == "slowly but surely"
    await close(writer)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_huge_body_is_refused_before_it_is_all_read(
    make_gateway: Any, upstream: Upstream, framing: str
) -> None:
    gw = await make_gateway(max_body_bytes=64 * 1024)
    reader, writer = await connect(gw)
    if framing == "content-length":
        head = raw_request(gw, openai_headers(upstream), 1024**3)  # announces a gigabyte
        writer.write(head + b"x" * 1024)
    else:
        head = raw_request(gw, openai_headers(upstream), 0).replace(
            b"Content-Length: 0", b"Transfer-Encoding: chunked"
        )
        writer.write(head)
        piece = b"x" * 16384
        for _ in range(8):  # 128 KiB, twice the limit, and never the final chunk
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert answer.startswith(b"HTTP/1.1 413")
    await close(writer)
    assert upstream.requests == []


async def test_many_requests_over_one_keepalive_connection(gateway: Gateway, upstream: Upstream) -> None:
    opened = 0

    async def on_open(session: Any, ctx: Any, params: Any) -> None:
        nonlocal opened
        opened += 1

    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(on_open)
    connector = aiohttp.TCPConnector(limit=1)
    headers = {"Content-Type": "application/json", **openai_headers(upstream)}
    url = gateway.url + "/v1/chat/completions"
    kinds = [
        (msgspec.json.encode(CHAT), 200),
        (msgspec.json.encode({**CHAT, "stream": True}), 200),
        (b"{broken", 400),
        (msgspec.json.encode({**CHAT, "mock": {"status": 429}}), 429),
        (msgspec.json.encode({**CHAT, "mock": {"fail": "drop"}}), 502),
    ]
    async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as session:
        for i in range(300):
            data, status = kinds[i % len(kinds)]
            async with session.post(url, data=data, headers=headers) as resp:
                assert resp.status == status
                assert resp.headers.get("Connection", "keep-alive").lower() != "close"
                await resp.read()
    assert opened == 1


async def test_a_client_gone_mid_stream_is_not_logged_as_an_error(
    gateway: Gateway, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    # A fast stream, dropped after its first event: some writes land after the client is gone.
    payload = msgspec.json.encode({**CHAT, "stream": True, "mock": {"chunks": 2000}})
    with caplog.at_level(logging.ERROR):
        for _ in range(15):
            reader, writer = await connect(gateway)
            writer.write(raw_request(gateway, openai_headers(upstream), len(payload)) + payload)
            await reader.readuntil(b"data: ")
            writer.transport.abort()
        assert await settles(lambda: upstream.state.active == 0)
        await asyncio.sleep(0.2)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors][:3]
