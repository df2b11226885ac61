"""A closed connection is freed when it closes, not left to the cycle collector.

A reference cycle per connection (say, a task that keeps its cancellation, whose traceback holds
the connection, which holds the task) is freed only by a full collection, which a steady server
seldom runs: under connection churn (a load test's clients reconnecting) the gateway's memory grew
by ~1.4 KB per connection. Each test ends connections one way (or, for requests on every
routing road, keeps one open), then asks the collector what it would free: nothing of the
gateway's may be in it.
"""

from __future__ import annotations

import asyncio
import gc
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest

import fastgate
from tests.conftest import Gateway, Upstream, config_target, openai_headers, raw_request

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say something"}]}
GATEWAY_CODE = str(Path(fastgate.__file__).parent)
MOCK_CODE = str(Path(fastgate.__file__).parent / "mock")
SETTLE_S = 3.0


def _gateway_code(filename: str) -> bool:
    return filename.startswith(GATEWAY_CODE) and not filename.startswith(MOCK_CODE)


def _of_gateway(obj: object) -> str | None:
    """What ``obj`` is, if it belongs to the gateway (its type, or the code it runs)."""
    if isinstance(obj, types.FrameType):
        code = obj.f_code
    elif isinstance(obj, types.CoroutineType):
        code = obj.cr_code
    elif isinstance(obj, types.TracebackType):
        code = obj.tb_frame.f_code
    else:
        module = type(obj).__module__ or ""
        if module.startswith("fastgate") and not module.startswith("fastgate.mock"):
            return f"{module}.{type(obj).__qualname__}"
        return None
    return f"{type(obj).__name__} of {code.co_qualname}" if _gateway_code(code.co_filename) else None


async def _settled(gw: Gateway) -> None:
    """Until the gateway has seen every client close (and a few loop turns for the rest)."""
    deadline = time.monotonic() + SETTLE_S
    while gw.server.connections and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not gw.server.connections, "the gateway did not see the client close"
    for _ in range(5):
        await asyncio.sleep(0.01)


@pytest.fixture
async def collector() -> AsyncIterator[Callable[[], list[str]]]:
    """Automatic collection off for the test; ``garbage()`` lists the gateway's objects that only
    the collector would free (everything else it frees is the test's, aiohttp's or the mock's)."""
    gc.collect()
    gc.disable()

    def garbage() -> list[str]:
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            gc.collect()
            found = sorted({name for obj in gc.garbage if (name := _of_gateway(obj)) is not None})
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
        return found

    try:
        yield garbage
    finally:
        gc.enable()


def _request(upstream: Upstream, body: dict[str, Any], provider: str, config: dict[str, Any] | None) -> bytes:
    fields = openai_headers(upstream, provider)
    if config is not None:
        fields["x-portkey-config"] = msgspec.json.encode(config).decode()
    lines = [f"{k}: {v}" for k, v in fields.items()]
    data = msgspec.json.encode(body)
    return raw_request("POST", "/v1/chat/completions", "Content-Type: application/json", *lines, body=data)


async def _exchange(
    gw: Gateway,
    upstream: Upstream,
    body: dict[str, Any],
    then: Callable[[asyncio.StreamReader], Awaitable[Any]],
    provider: str = "openai",
    config: dict[str, Any] | None = None,
) -> None:
    """One connection: the request sent, ``then`` on what comes back, the connection closed."""
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    try:
        writer.write(_request(upstream, body, provider, config))
        await writer.drain()
        await asyncio.wait_for(then(reader), 5)
    finally:
        writer.close()
    await _settled(gw)


async def _whole_answer(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    if b"chunked" in head.lower():
        await reader.readuntil(b"\r\n0\r\n\r\n")
    else:
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_connections_closed_after_their_answers(
    gateway: Gateway, upstream: Upstream, collector: Callable[[], list[str]], provider: str
) -> None:
    for body in (CHAT, {**CHAT, "stream": True}, {**CHAT, "mock": {"status": 429}}, {"model": 1}):
        await _exchange(gateway, upstream, body, _whole_answer, provider)
    assert not (found := collector()), "\n".join(found)


async def test_a_client_gone_before_its_answer(
    gateway: Gateway, upstream: Upstream, collector: Callable[[], list[str]]
) -> None:
    await _exchange(gateway, upstream, {**CHAT, "mock": {"delay_ms": 300}}, lambda r: asyncio.sleep(0.1))
    assert not (found := collector()), "\n".join(found)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_client_gone_mid_stream(
    gateway: Gateway, upstream: Upstream, collector: Callable[[], list[str]], provider: str
) -> None:
    slow = {**CHAT, "stream": True, "mock": {"chunks": 20, "chunk_delay_ms": 50}}
    await _exchange(gateway, upstream, slow, lambda r: r.readuntil(b"data: "), provider)
    assert not (found := collector()), "\n".join(found)


@pytest.mark.parametrize("fail", ["drop", "drop_mid_stream"])
async def test_an_upstream_that_drops_its_connection(
    gateway: Gateway, upstream: Upstream, collector: Callable[[], list[str]], fail: str
) -> None:
    body = {**CHAT, "stream": fail == "drop_mid_stream", "mock": {"fail": fail}}
    await _exchange(gateway, upstream, body, _whole_answer)
    assert not (found := collector()), "\n".join(found)


async def test_a_request_timeout_that_fires(
    gateway: Gateway, upstream: Upstream, collector: Callable[[], list[str]]
) -> None:
    late = {**CHAT, "mock": {"delay_ms": 500}}
    await _exchange(gateway, upstream, late, _whole_answer, config={"request_timeout": 100})
    assert not (found := collector()), "\n".join(found)


def _requests(upstream: Upstream) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(body, config) pairs that take every road through routing: fallback, retries, load
    balancing, conditions, timeouts, the cache, failures and streams."""
    good, bad = config_target(upstream, "sk-test-123"), config_target(upstream, "sk-test-123", status=503)
    fallback = {"strategy": {"mode": "fallback"}, "targets": [bad, good]}
    return [
        (CHAT, fallback),
        ({**CHAT, "stream": True}, fallback),
        (
            CHAT,
            {**config_target(upstream, "sk-test-123", fail_first=2, key="garbage"), "retry": {"attempts": 3}},
        ),
        (
            CHAT,
            {"strategy": {"mode": "loadbalance"}, "targets": [{**good, "weight": 1}, {**bad, "weight": 1}]},
        ),
        (
            CHAT,
            {
                "strategy": {
                    "mode": "conditional",
                    "conditions": [{"query": {"params.model": {"$eq": "gpt-4o-mini"}}, "then": "a"}],
                    "default": "b",
                },
                "targets": [{**good, "name": "a"}, {**bad, "name": "b"}],
            },
        ),
        (
            CHAT,
            {
                "strategy": {"mode": "fallback"},
                "targets": [
                    {**config_target(upstream, "sk-test-123", delay_ms=300), "request_timeout": 50},
                    good,
                ],
            },
        ),
        (CHAT, {**good, "cache": {"mode": "simple"}}),
        (CHAT, {**good, "cache": {"mode": "simple"}}),
        ({**CHAT, "mock": {"fail": "invalid_json"}}, good),
        ({**CHAT, "stream": True, "mock": {"fail": "error_mid_stream"}}, good),
        (CHAT, {"strategy": {"mode": "nonsense"}}),
    ]


async def test_requests_on_every_routing_road(
    gateway: Gateway, upstream: Upstream, collector: Callable[[], list[str]]
) -> None:
    seen: list[tuple[int, str]] = []
    for body, config in _requests(upstream):
        headers = {"x-portkey-config": msgspec.json.encode(config).decode()} if config else {}
        resp = await gateway.post("/v1/chat/completions", body, headers)
        await resp.read()
        seen.append((resp.status, resp.headers.get("x-portkey-cache-status", "")))
    assert not (found := collector()), "\n".join(found)
    # The roads were taken: the load balancer's pick is random, the rest is scripted.
    assert [s for s, _ in seen[:3]] == [200, 200, 200] and seen[3][0] in (200, 503)
    assert seen[4:] == [
        (200, "DISABLED"),
        (200, "DISABLED"),
        (200, "MISS"),
        (200, "HIT"),
        (502, "DISABLED"),
        (200, "DISABLED"),
        (400, ""),
    ]
