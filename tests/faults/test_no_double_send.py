"""The gateway never sends a POST twice on its own: a second send is a second bill.

Go's net/http transport is the rule (``persistConn.shouldRetryRequest``): a request goes again
on its own only when the upstream provably did not process it: nothing of it was written, or
the idle pooled connection was found closed before the write. Everything else is a 502, or a
retry the config's ``retry`` asks for. Each case is a real loopback upstream that counts what it
received, then resets (RST), closes (FIN) or goes quiet at one point of the exchange.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import openai
import pytest

from fastgate.ssrf import HostPolicy
from fastgate.upstream.dns import CachingResolver
from fastgate.upstream.pool import UpstreamPool, replayable
from tests.conftest import Gateway, Handler
from tests.faults.test_stale_connections import ANSWER

CHAT = {"model": "m", "messages": [{"role": "user", "content": "bill me once"}]}
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(ANSWER),
    ANSWER,
)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashing upstream or a load balancer does."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class Upstream:
    """Counts request heads and whole requests received; misbehaves on the ``fault_at``-th
    request of each connection (1: the first, on a new connection; 2: on a reused one)."""

    def __init__(self, fault: str, fault_at: int) -> None:
        self.fault = fault
        self.fault_at = fault_at
        self.heads = 0
        self.received = 0
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        for n in range(1, 10):
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            self.heads += 1
            length = (
                int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]) if b"ength:" in head else 0
            )
            if n == self.fault_at and self.fault == "reset mid-body":
                await reader.readexactly(length // 2)
                reset(writer)
                return
            await reader.readexactly(length)
            self.received += 1
            if n != self.fault_at:
                writer.write(OK)
                await writer.drain()
                continue
            if self.fault == "reset after receipt":
                reset(writer)
            elif self.fault == "close after receipt":
                writer.close()
            elif self.fault == "reset after half an answer":
                writer.write(OK[: len(OK) // 2])
                await writer.drain()
                reset(writer)
            return


def via(url: str, **config: Any) -> dict[str, str]:
    if config:
        target = {"provider": "openai", "api_key": "sk-k", "custom_host": url, **config}
        return {"x-portkey-config": msgspec.json.encode(target).decode()}
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": url, "Authorization": "Bearer sk-k"}


Start = Callable[[Handler], Awaitable[str]]
FAULTS = ["reset after receipt", "close after receipt", "reset mid-body", "reset after half an answer"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("fault_at", [1, 2], ids=["new-connection", "reused-connection"])
async def test_a_post_the_upstream_may_have_received_is_sent_once(
    gateway: Gateway, raw_server: Start, fault: str, fault_at: int, stream: bool
) -> None:
    upstream = Upstream(fault, fault_at)
    url = await raw_server(upstream.serve)
    for _ in range(fault_at - 1):  # leaves a kept-alive connection in the pool
        resp = await gateway.post("/v1/chat/completions", CHAT, via(url))
        assert resp.status == 200
        await resp.read()
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "stream": stream}, via(url))
    assert resp.status == 502, await resp.text()
    error = (await resp.json())["error"]
    assert error["message"].startswith("openai error: ") and error["type"] == "api_error"
    assert upstream.heads == fault_at, (
        f"the request reached the upstream {upstream.heads - fault_at + 1} times"
    )
    assert upstream.connections == 1


async def test_the_openai_sdk_sees_one_send_and_a_502(gateway: Gateway, raw_server: Start) -> None:
    upstream = Upstream("reset after receipt", 2)
    url = await raw_server(upstream.serve)
    client = openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key="sk-k", default_headers=via(url), max_retries=0
    )
    async with client:
        await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert caught.value.status_code == 502
    assert upstream.received == 2


async def test_a_retry_the_config_asks_for_sends_again(gateway: Gateway, raw_server: Start) -> None:
    upstream = Upstream("reset after receipt", 1)
    url = await raw_server(upstream.serve)
    retry = {"attempts": 1, "on_status_codes": [502]}
    gateway.app.gateway.retry_policy = msgspec.structs.replace(gateway.app.gateway.retry_policy, base_ms=1)
    resp = await gateway.post("/v1/chat/completions", CHAT, via(url, retry=retry))
    assert resp.status == 502
    assert resp.headers["x-portkey-retry-attempt-count"] == "-1"
    assert upstream.received == 2  # asked for: the first try and one retry, on new connections
    assert upstream.connections == 2


class ClosingUpstream:
    """Answers one request per connection, saying nothing of closing, then closes it idle."""

    def __init__(self) -> None:
        self.received = 0
        self.connections = 0
        self.closed = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(len(msgspec.json.encode(CHAT)))
        self.received += 1
        writer.write(OK)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        self.closed.set()


async def test_an_idle_connection_the_upstream_closed_is_not_written_to(
    gateway: Gateway, raw_server: Start
) -> None:
    upstream = ClosingUpstream()
    url = await raw_server(upstream.serve)
    for _ in range(3):
        resp = await gateway.post("/v1/chat/completions", CHAT, via(url))
        assert resp.status == 200, await resp.text()
        await upstream.closed.wait()
        upstream.closed.clear()
    assert upstream.received == 3 and upstream.connections == 3


async def test_a_close_the_event_loop_has_not_read_yet_is_seen_before_the_write(raw_server: Start) -> None:
    # The upstream's FIN is in the socket but the loop has not read it (reading is paused, as
    # when the loop has not come round to it): the pool asks the socket itself before reusing
    # the connection, so the POST goes on a new one.
    upstream = ClosingUpstream()
    url = await raw_server(upstream.serve)
    pool = UpstreamPool(CachingResolver(HostPolicy()), 2.0, 2.0)
    body = msgspec.json.encode(CHAT)
    try:
        resp = await pool.request("POST", url + "/v1/chat/completions", {}, body)
        assert await resp.read() == ANSWER
        [idle] = [conn for conns in pool._idle.values() for conn in conns]
        assert idle.transport is not None
        idle.transport.pause_reading()
        await upstream.closed.wait()
        await asyncio.sleep(0.05)
        assert not idle.closed, "the loop has not seen the close"
        resp = await pool.request("POST", url + "/v1/chat/completions", {}, body)
        assert resp.status == 200 and await resp.read() == ANSWER
        assert idle.closed and upstream.connections == 2 and upstream.received == 2
    finally:
        await pool.close()


async def test_an_idempotent_request_is_sent_again_after_a_reused_connection_broke(
    gateway: Gateway, raw_server: Start
) -> None:
    # Go's rule for GET (and any request with an Idempotency-Key): repeating it is harmless.
    upstream = Upstream("reset after receipt", 2)
    url = await raw_server(upstream.serve)
    headers = via(url)
    assert (await gateway.get("/v1/models", headers)).status == 200
    resp = await gateway.get("/v1/models", headers)
    assert resp.status == 200
    assert upstream.received == 3 and upstream.connections == 2


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", {}, True),
        ("HEAD", {}, True),
        ("OPTIONS", {}, True),
        ("POST", {}, False),
        ("DELETE", {}, False),
        ("POST", {"Idempotency-Key": "abc"}, True),
        ("POST", {"X-Idempotency-Key": "abc"}, True),
    ],
)
def test_which_requests_may_be_replayed(method: str, headers: dict[str, str], expected: bool) -> None:
    assert replayable(method, headers) is expected
