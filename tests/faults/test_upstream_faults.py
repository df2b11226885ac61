"""Every way an upstream can fail ends in a clear OpenAI-shaped error, in bounded time, and the
next request through the same gateway works.

Each case is a real socket event on a loopback mock (refused, reset, stalled, truncated, endless)
or a well-formed but wrong answer (HTML, text, invalid JSON, a 200 carrying an error).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.conftest import Gateway, Upstream, openai_headers
from tests.support.sse import frames

CHAT = {"model": "m", "messages": [{"role": "user", "content": "one two three four five six"}]}
#: Small limits, so every stall and endless answer is cut off within a second or so.
LIMITS: dict[str, Any] = {"read_timeout": 0.3, "max_stream_seconds": 0.8, "max_response_bytes": 256 * 1024}
#: Longest any case may take: the largest limit plus slack for a loaded CI machine.
BOUND = 2.5

# (mock directives, expected status of a non-streamed request)
FAULTS: dict[str, tuple[dict[str, Any], int]] = {
    "reset before headers": ({"fail": "drop"}, 502),
    "reset mid-response": ({"fail": "truncate"}, 502),
    "stall before headers": ({"delay_ms": 5000}, 504),
    "stall mid-body": ({"fail": "stall_body"}, 504),
    "invalid JSON": ({"fail": "invalid_json"}, 502),
    "HTML error page": ({"fail": "html"}, 502),
    "wrong content type": ({"fail": "wrong_content_type"}, 502),
    "200 with an error body": ({"fail": "error_200"}, 502),
    "endless body": ({"fail": "endless"}, 502),
}
# Failures that only a stream can show.
STREAM_FAULTS: dict[str, dict[str, Any]] = {
    "reset mid-stream": {"fail": "drop_mid_stream", "chunks": 6},
    "stall mid-stream": {"fail": "stall_mid_stream", "chunks": 6},
    "endless stream": {"fail": "endless", "chunks": 6},
    "error event mid-stream": {"fail": "error_mid_stream", "chunks": 6},
}


def assert_openai_error(data: dict[str, Any]) -> dict[str, Any]:
    assert set(data) <= {"error", "provider"}, data
    error = data["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["type"] in {"api_error", "timeout_error", "server_error"}, error
    return error


async def assert_recovers(gw: Gateway, upstream: Upstream, stream: bool) -> None:
    resp = await gw.post("/v1/chat/completions", {**CHAT, "stream": stream}, openai_headers(upstream))
    assert resp.status == 200
    body = await resp.read()
    assert (b"data: [DONE]" in body) if stream else (b'"chat.completion"' in body)


@pytest.fixture
async def gw(make_gateway: Any) -> Gateway:
    return await make_gateway(**LIMITS)


@pytest.mark.parametrize("case", FAULTS)
async def test_fault_without_stream_is_a_json_error(gw: Gateway, upstream: Upstream, case: str) -> None:
    directives, status = FAULTS[case]
    started = time.monotonic()
    resp = await gw.post("/v1/chat/completions", {**CHAT, "mock": directives}, openai_headers(upstream))
    assert resp.status == status
    assert resp.content_type == "application/json"
    error = assert_openai_error(await resp.json())
    assert error["message"].startswith("openai error: ")
    assert time.monotonic() - started < BOUND
    await assert_recovers(gw, upstream, stream=False)


@pytest.mark.parametrize("case", [*(c for c in FAULTS if c != "reset mid-response"), *STREAM_FAULTS])
async def test_fault_in_a_stream_ends_with_an_error(gw: Gateway, upstream: Upstream, case: str) -> None:
    directives = FAULTS[case][0] if case in FAULTS else STREAM_FAULTS[case]
    started = time.monotonic()
    body = {**CHAT, "stream": True, "mock": directives}
    resp = await gw.post("/v1/chat/completions", body, openai_headers(upstream))
    if resp.status != 200:
        # Failed before the first byte: a plain JSON error with the failure's status.
        assert resp.status >= 500
        assert resp.content_type == "application/json"
        assert_openai_error(await resp.json())
    else:
        assert resp.content_type == "text/event-stream"
        events = frames(await resp.read())
        assert events[-1] == b"data: [DONE]", events[-3:]
        assert events[-2].startswith(b"data: ")
        assert_openai_error(msgspec.json.decode(events[-2][6:]))
        assert b"[DONE]" not in b"".join(events[:-1])
    assert time.monotonic() - started < BOUND
    await assert_recovers(gw, upstream, stream=True)


async def test_refused_connection_then_recovery(
    gw: Gateway, upstream: Upstream, unused_tcp_port: int
) -> None:
    headers = {**openai_headers(upstream), "x-portkey-custom-host": f"http://127.0.0.1:{unused_tcp_port}/v1"}
    for stream in (False, True):
        started = time.monotonic()
        resp = await gw.post("/v1/chat/completions", {**CHAT, "stream": stream}, headers)
        assert resp.status == 502
        assert_openai_error(await resp.json())
        assert time.monotonic() - started < BOUND
        await assert_recovers(gw, upstream, stream)


async def test_passthrough_upstream_broken_mid_body_cuts_the_client_off_quietly(
    gw: Gateway, upstream: Upstream, caplog: pytest.LogCaptureFixture
) -> None:
    # A raw relay cannot send an error event: the client must see an incomplete body, not a
    # clean end, and the gateway must not log a traceback for the upstream's failure.
    async def half_then_reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n"
        )
        writer.write(b"x" * 10)
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.transport.abort()

    server = await asyncio.start_server(half_then_reset, "127.0.0.1", 0)
    host = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    headers = {**openai_headers(upstream), "x-portkey-custom-host": host}
    with caplog.at_level(logging.ERROR):
        started = time.monotonic()
        resp = await gw.get("/v1/files/file-1/content", headers=headers)
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(resp.read(), BOUND)  # a hang would be a TimeoutError
        assert time.monotonic() - started < BOUND
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    server.close()
    await server.wait_closed()
    await assert_recovers(gw, upstream, stream=False)
