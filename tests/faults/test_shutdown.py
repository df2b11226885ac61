"""SIGTERM on a real ``fastgate serve`` process: in-flight requests and streams finish, new
connections are refused, and the process exits 0; past the grace period it exits anyway, and a
stream it had to end gets an error event and ``[DONE]``, not a bare cut."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from typing import Any

import aiohttp
import msgspec
import pytest

from tests.test_cli import free_port, running, wait_ready

MOCK = {"x-portkey-provider": "mock"}


def chat(stream: bool, **directives: Any) -> dict[str, Any]:
    return {
        "model": "m",
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
        "mock": directives,
    }


async def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the gateway did not exit"
        await asyncio.sleep(0.05)
    return proc.returncode


async def refused(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_drains_requests_and_streams_then_exits(workers: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    with running("serve", "--port", str(port), "--workers", workers) as proc:
        wait_ready(f"http://127.0.0.1:{port}/health")
        async with aiohttp.ClientSession() as session:
            streams = [
                await session.post(url, json=chat(True, chunks=8, chunk_delay_ms=100), headers=MOCK)
                for _ in range(3)
            ]
            for resp in streams:
                assert resp.status == 200
                await resp.content.readuntil(b"\n\n")  # the stream is under way
            plain = asyncio.ensure_future(session.post(url, json=chat(False, delay_ms=600), headers=MOCK))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert await refused(port), "a new connection was accepted after SIGTERM"
            for resp in streams:
                body = await resp.read()
                assert body.endswith(b"data: [DONE]\n\n")
                assert b'"error"' not in body
            answer = await plain
            assert answer.status == 200
            assert (await answer.json())["choices"][0]["message"]["content"] == "Mock reply to: hi"
        assert await wait_exit(proc, 10) == 0
        # The drain took as long as the longest stream, not the whole grace period.
        assert time.monotonic() - started < 5


@pytest.mark.timeout(60)
@pytest.mark.parametrize("provider", ["mock", "openai"])
async def test_streams_longer_than_the_grace_period_end_with_an_error_event_and_done(
    monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    """In-process (``mock``) and relayed from an upstream over HTTP (``openai`` to ``fastgate mock``)."""
    monkeypatch.setenv("FASTGATE_SHUTDOWN_GRACE", "1")
    port, mock_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"x-portkey-provider": provider, "x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1"}
    with running("mock", "--port", str(mock_port)), running("serve", "--port", str(port)) as proc:
        wait_ready(f"http://127.0.0.1:{mock_port}/v1/models")
        wait_ready(f"http://127.0.0.1:{port}/health")
        async with aiohttp.ClientSession() as session:
            resp = await session.post(url, json=chat(True, chunks=40, chunk_delay_ms=200), headers=headers)
            first = await resp.content.readuntil(b"\n\n")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert await wait_exit(proc, 10) == 0
            assert 0.8 < time.monotonic() - started < 5
            body = first + await resp.read()  # a complete chunked body: no ClientPayloadError
    events = [e.removeprefix(b"data: ") for e in body.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    error = msgspec.json.decode(events[-2])["error"]
    assert "shutting down" in error["message"]
    assert error["type"] == "api_error"
    assert len(events) < 40  # the 8 s stream was ended, not played out
