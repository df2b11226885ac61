"""An upstream that closes idle keep-alive connections never fails a request: a connection it
closed is not written to; a request the upstream had begun to answer is never sent twice
(``test_no_double_send.py`` has every other fault)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestServer

from fastgate.mock.server import make_mock_app
from fastgate.ssrf import HostPolicy
from fastgate.upstream.dns import CachingResolver
from fastgate.upstream.pool import UpstreamPool
from tests.conftest import Gateway
from tests.faults.conftest import Baseline, open_fds

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = msgspec.json.encode(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    }
)


def via(url: str) -> dict[str, str]:
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": url, "Authorization": "Bearer sk-k"}


async def test_upstream_idle_timeout_never_fails_a_request(
    gateway: Gateway, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    # The mock closes a kept-alive connection after 50 ms idle; requests come either well
    # before that (the connection is reused) or after it (it is found closed, not written to).
    # A close at the very moment of the write is not among them: whether the upstream read the
    # request is then unknown, and a POST is not sent again (test_no_double_send.py).
    server = await aiohttp_server(make_mock_app(), keepalive_timeout=0.05)
    url = str(server.make_url("/v1"))
    rng = random.Random(5)
    for i in range(40):
        body = {**CHAT, "stream": i % 2 == 0}
        resp = await gateway.post("/v1/chat/completions", body, via(url))
        assert resp.status == 200, await resp.text()
        await resp.read()
        await asyncio.sleep(rng.choice((rng.uniform(0.0, 0.03), rng.uniform(0.07, 0.1))))


@pytest.fixture
async def raw_upstream() -> AsyncIterator[Callable[[Any], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Any) -> str:
        async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await handler(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(closing, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    return head + await reader.readexactly(length)


async def test_a_request_the_upstream_began_to_answer_is_not_sent_again(
    gateway: Gateway, raw_upstream: Any
) -> None:
    received = 0

    async def half_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            received += 1
            if received == 1:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER)
                await writer.drain()
                continue
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{"id":')
            await writer.drain()
            writer.transport.abort()
            return

    url = await raw_upstream(half_then_reset)
    assert (await gateway.post("/v1/chat/completions", CHAT, via(url))).status == 200
    resp = await gateway.post("/v1/chat/completions", CHAT, via(url))  # on the reused connection
    assert resp.status == 502
    assert received == 2


async def test_idle_pooled_connections_are_closed_after_the_idle_timeout(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    server = await aiohttp_server(make_mock_app())
    before = Baseline()
    pool = UpstreamPool(CachingResolver(HostPolicy()), 1.0, 1.0, idle_timeout=0.2)
    url = str(server.make_url("/v1/chat/completions"))

    async def one() -> None:
        resp = await pool.request(
            "POST", url, {"Content-Type": "application/json"}, msgspec.json.encode(CHAT)
        )
        assert resp.status == 200
        await resp.read()

    await asyncio.gather(*(one() for _ in range(8)))
    assert open_fds() >= before.fds + 8  # kept alive: both ends of each connection are ours
    await asyncio.sleep(0.5)  # nothing uses them: the sweep closes them
    await before.back()
    await pool.close()
