"""Back-pressure: clients faster than the upstream meet a bounded number of requests in flight
and a 503 with ``Retry-After`` past it, never an unbounded queue."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Gateway, Upstream, openai_headers

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def test_requests_past_the_limit_get_503_with_retry_after(
    make_gateway: Any, upstream: Upstream
) -> None:
    gw: Gateway = await make_gateway(max_in_flight=5)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, upstream.state.active)
            await asyncio.sleep(0.005)

    watcher = asyncio.ensure_future(watch())
    slow = {**CHAT, "stream": True, "mock": {"chunks": 3, "chunk_delay_ms": 150}}
    responses = await asyncio.gather(
        *(gw.post("/v1/chat/completions", slow, openai_headers(upstream)) for _ in range(40))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses.count(200) == 5, statuses
    assert statuses.count(503) == 35, statuses
    for resp in responses:
        body = await resp.read()
        if resp.status == 503:
            assert resp.headers["Retry-After"] == "1"
            assert resp.content_type == "application/json"
            assert b'"gateway_overloaded"' in body
        else:
            assert body.endswith(b"data: [DONE]\n\n")
    watcher.cancel()
    assert peak == 5  # never more upstream calls at once than the limit
    # Capacity comes back as soon as the slow requests are done; health checks are never refused.
    again = await gw.post("/v1/chat/completions", CHAT, openai_headers(upstream))
    assert again.status == 200
    assert (await gw.get("/health")).status == 200


async def test_health_is_answered_while_saturated(make_gateway: Any, upstream: Upstream) -> None:
    gw: Gateway = await make_gateway(max_in_flight=1)
    slow = gw.post("/v1/chat/completions", {**CHAT, "mock": {"delay_ms": 300}}, openai_headers(upstream))
    task = asyncio.ensure_future(slow)
    while upstream.state.active == 0:
        await asyncio.sleep(0.01)
    assert (await gw.get("/health")).status == 200
    assert (await gw.post("/v1/chat/completions", CHAT, openai_headers(upstream))).status == 503
    assert (await task).status == 200
