"""Streams relayed event by event, ended properly, and cancelled with the client."""

from __future__ import annotations

import asyncio
import itertools
import time

import msgspec

from tests.conftest import Gateway, Upstream, openai_headers
from tests.support.sse import frames

CHAT = {
    "model": "m",
    "stream": True,
    "messages": [{"role": "user", "content": "one two three four five six"}],
}


async def test_stream_passthrough_ends_with_done(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream))
    assert resp.status == 200
    assert resp.content_type == "text/event-stream"
    events = frames(await resp.read())
    assert events[-1] == b"data: [DONE]"
    chunks = [msgspec.json.decode(e[6:]) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == (
        "Mock reply to: one two three four five six"
    )


async def test_events_are_flushed_as_they_arrive(gateway: Gateway, upstream: Upstream) -> None:
    body = {**CHAT, "mock": {"chunks": 4, "chunk_delay_ms": 150}}
    resp = await gateway.post("/v1/chat/completions", body, openai_headers(upstream))
    arrivals: list[float] = []
    buf = b""
    async for data in resp.content.iter_any():
        buf += data
        while b"\n\n" in buf:
            _, buf = buf.split(b"\n\n", 1)
            arrivals.append(time.monotonic())
    # role chunk + 4 content chunks + finish + [DONE], each content chunk 150 ms after the last:
    # a buffering relay would deliver them together.
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert len(arrivals) == 7
    assert sum(1 for g in gaps if g > 0.1) >= 4, gaps


async def test_upstream_error_before_first_byte_is_json(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post(
        "/v1/chat/completions", {**CHAT, "mock": {"status": 503}}, openai_headers(upstream)
    )
    assert resp.status == 503
    assert resp.content_type == "application/json"
    assert (await resp.json())["provider"] == "openai"


async def test_mid_stream_drop_ends_with_error_event_and_done(gateway: Gateway, upstream: Upstream) -> None:
    body = {**CHAT, "mock": {"fail": "drop_mid_stream", "chunks": 6}}
    resp = await gateway.post("/v1/chat/completions", body, openai_headers(upstream))
    assert resp.status == 200
    events = frames(await resp.read())
    assert events[-1] == b"data: [DONE]"
    error = msgspec.json.decode(events[-2][6:])
    assert error["error"]["type"] == "api_error" and error["provider"] == "openai"
    assert all(b'"chat.completion.chunk"' in e for e in events[:-2])


async def test_mid_stream_error_event_from_upstream_is_relayed(gateway: Gateway, upstream: Upstream) -> None:
    body = {**CHAT, "mock": {"fail": "error_mid_stream", "chunks": 6}}
    resp = await gateway.post("/v1/chat/completions", body, openai_headers(upstream))
    events = frames(await resp.read())
    assert events[-1] == b"data: [DONE]"
    assert any(b"mock failed mid-stream" in e for e in events)


async def test_client_disconnect_cancels_upstream(gateway: Gateway, upstream: Upstream) -> None:
    body = {**CHAT, "mock": {"chunks": 50, "chunk_delay_ms": 100}}
    resp = await gateway.post("/v1/chat/completions", body, openai_headers(upstream))
    await resp.content.readuntil(b"\n\n")
    assert upstream.state.active == 1
    resp.close()
    for _ in range(50):
        if upstream.state.active == 0:
            break
        await asyncio.sleep(0.02)
    assert upstream.state.active == 0
    # The gateway is fine afterwards.
    again = await gateway.post("/v1/chat/completions", {**CHAT, "stream": False}, openai_headers(upstream))
    assert again.status == 200


async def test_stalled_stream_times_out_with_error_event(make_gateway, upstream: Upstream) -> None:
    gw = await make_gateway(read_timeout=0.3)
    body = {**CHAT, "mock": {"fail": "stall_mid_stream", "chunks": 6}}
    resp = await gw.post("/v1/chat/completions", body, openai_headers(upstream))
    events = frames(await resp.read())
    assert events[-1] == b"data: [DONE]"
    assert b'"error"' in events[-2]


async def test_in_process_mock_streams(gateway: Gateway) -> None:
    resp = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-provider": "mock"})
    events = frames(await resp.read())
    assert events[-1] == b"data: [DONE]"
    assert len(events) == 7
