"""Busy polling: the loop polls through a wait on an origin that answers, or a client that comes
back, within the window, and sleeps through the others; a wait ends with its first byte, its
connection's end or the window; a gateway polls by default and answers as any other."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from fastgate.server.busy_poll import BusyPoll, Requests
from fastgate.settings import settings_from_env
from fastgate.ssrf import HostPolicy
from fastgate.upstream.connection import UpstreamConnectionError
from fastgate.upstream.dns import CachingResolver
from fastgate.upstream.pool import UpstreamPool
from tests.conftest import Handler, Upstream, openai_headers

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


class InFlight:
    in_flight = 0
    crowd = 0.0


class CountingPoll(BusyPoll):
    """Counts the waits it was told of and the polling callback's runs (loop turns not slept)."""

    __slots__ = ("expected", "runs")

    def __init__(self, window_s: float, requests: Requests | None = None) -> None:
        super().__init__(asyncio.get_running_loop(), window_s, requests or InFlight())
        self.expected = 0
        self.runs = 0

    def start(self, expected_s: float, now: float, own_requests: int) -> bool:
        polled = super().start(expected_s, now, own_requests)
        self.expected += polled
        return polled

    def _poll(self) -> None:
        self.runs += 1
        super()._poll()


async def _until_idle(poll: BusyPoll, limit_s: float = 5.0) -> float:
    """Seconds until the poll stopped; fails the test if it outlives ``limit_s``."""
    started = time.monotonic()
    while poll.polling:
        assert time.monotonic() - started < limit_s, "the loop kept polling"
        await asyncio.sleep(0.001)
    return time.monotonic() - started


async def test_a_wait_is_polled_until_its_answer_arrives() -> None:
    poll = CountingPoll(5.0)
    assert not poll.polling  # nothing expected: nothing polls
    assert poll.start(0.001, time.monotonic(), 0)
    await asyncio.sleep(0.02)
    assert poll.polling and poll.runs > 10, "the loop slept through the wait"
    poll.arrived()
    assert await _until_idle(poll, 1.0) < 1.0
    stopped_at = poll.runs
    await asyncio.sleep(0.05)
    assert poll.runs == stopped_at, "the loop went on polling with nothing to wait for"


async def test_overlapping_waits_poll_until_the_last_ends() -> None:
    poll = CountingPoll(5.0)
    poll.start(0.001, time.monotonic(), 0)
    poll.start(0.001, time.monotonic(), 0)
    poll.arrived()
    await asyncio.sleep(0.02)
    assert poll.polling, "one wait's answer stopped the poll while another was open"
    poll.arrived()
    await _until_idle(poll, 1.0)


async def test_a_wait_past_the_window_stops_polling() -> None:
    poll = CountingPoll(0.05)
    poll.start(0.001, time.monotonic(), 0)
    waited = await _until_idle(poll)
    assert waited >= 0.04, "the poll stopped before its window"
    poll.arrived()  # the late answer: nothing starts again
    await asyncio.sleep(0.02)
    assert not poll.polling


async def test_waits_not_known_or_longer_than_the_window_are_slept_through() -> None:
    poll = CountingPoll(0.01)
    assert not poll.start(-1.0, time.monotonic(), 0)  # never timed yet
    assert not poll.start(0.02, time.monotonic(), 0)
    assert not poll.polling and poll.expected == 0


async def test_a_wait_while_other_requests_are_in_flight_is_slept_through() -> None:
    requests = InFlight()
    poll = CountingPoll(0.01, requests)
    requests.in_flight = 1
    assert poll.start(0.001, time.monotonic(), 1)  # an upstream wait of the one request in flight
    poll.arrived()
    assert not poll.start(0.001, time.monotonic(), 0)  # a client's, while that request is served
    requests.in_flight = 2
    assert not poll.start(0.001, time.monotonic(), 1)  # the other request's answer wakes the loop
    requests.in_flight, requests.crowd = 0, 1.5
    assert not poll.start(0.001, time.monotonic(), 0)  # a worker that serves many at a time
    assert poll.expected == 1


async def test_stop_ends_the_poll() -> None:
    poll = CountingPoll(5.0)
    poll.start(0.001, time.monotonic(), 0)
    poll.stop()
    assert not poll.polling
    runs = poll.runs
    await asyncio.sleep(0.02)
    assert poll.runs == runs


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(CachingResolver(HostPolicy()), 1.0, 2.0)
    yield p
    await p.close()


def _answering(delays: list[float]) -> Handler:
    """A keep-alive upstream that waits ``delays[i]`` (the last one from then on) before answer i."""
    answered = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                await asyncio.sleep(delays[min(answered, len(delays) - 1)])
                answered += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    return handler


async def _ask(pool: UpstreamPool, url: str) -> bytes:
    resp = await pool.request("POST", url, {}, b"{}")
    return await resp.read()


async def test_a_fast_origin_is_polled_once_its_speed_is_known(pool: UpstreamPool, raw_server: Any) -> None:
    poll = pool.busy_poll = CountingPoll(5.0)
    url = await raw_server(_answering([0.0]))
    assert await _ask(pool, url) == b"ok"
    assert poll.expected == 0, "an origin of unknown speed was polled"
    for n in range(1, 6):
        assert await _ask(pool, url) == b"ok"
        assert poll.expected == n
        await _until_idle(poll, 1.0)  # within the 5 s window: the answer ended the wait


async def test_a_slow_origin_is_never_polled(pool: UpstreamPool, raw_server: Any) -> None:
    poll = pool.busy_poll = CountingPoll(0.05)
    url = await raw_server(_answering([0.1]))
    for _ in range(3):
        assert await _ask(pool, url) == b"ok"
    assert poll.expected == 0 and poll.runs == 0


async def test_an_origin_that_slows_down_is_no_longer_polled(pool: UpstreamPool, raw_server: Any) -> None:
    poll = pool.busy_poll = CountingPoll(0.05)
    url = await raw_server(_answering([0.0, 0.0, 0.0, 0.15]))
    for _ in range(3):
        await _ask(pool, url)
    assert poll.expected == 2  # the first answer made it known, the next two were polled
    # Each 150 ms answer moves the smoothed time an eighth of the way: past 50 ms within 4.
    for _ in range(4):
        await _ask(pool, url)
    polled = poll.expected
    assert polled <= 6
    for _ in range(2):
        await _ask(pool, url)
    assert poll.expected == polled, "a wait far past the window was still polled"


async def test_a_connection_lost_before_its_answer_ends_the_wait(pool: UpstreamPool, raw_server: Any) -> None:
    poll = pool.busy_poll = CountingPoll(5.0)
    answered = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        if answered == 0:
            answered += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        # From the second request on: closed (by the fixture) without an answer.

    url = await raw_server(handler)
    assert await _ask(pool, url) == b"ok"
    with pytest.raises(UpstreamConnectionError):
        await _ask(pool, url)
    assert poll.expected == 1
    # Within the 5 s window: only the lost connection can have ended the wait.
    assert await _until_idle(poll, 1.0) < 1.0


async def _polling_gateway(make_gateway: Any, window_s: float) -> tuple[Any, CountingPoll]:
    gw = await make_gateway()
    poll = CountingPoll(window_s, gw.app.dispatch)
    gw.server.busy_poll = gw.app.gateway.pool.busy_poll = poll
    return gw, poll


async def _health(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    length = next(
        int(line[15:]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
    )
    await reader.readexactly(length)


async def test_a_client_that_comes_back_fast_is_polled_for(make_gateway: Any) -> None:
    gw, poll = await _polling_gateway(make_gateway, 5.0)
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    await _health(reader, writer)
    assert poll.expected == 0, "a client of unknown pace was polled for"
    for n in range(1, 4):
        await _health(reader, writer)
        assert poll.expected == n  # the wait for the next request, begun as this answer went out
    assert poll.polling
    writer.close()
    # Within the 5 s window: only the closed connection can have ended the wait.
    assert await _until_idle(poll, 1.0) < 1.0


async def test_a_client_that_takes_its_time_is_not_polled_for(make_gateway: Any) -> None:
    gw, poll = await _polling_gateway(make_gateway, 0.02)
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    for _ in range(3):
        await _health(reader, writer)
        await asyncio.sleep(0.06)
    writer.close()
    assert poll.expected == 0 and poll.runs == 0


async def test_a_gateway_polls_by_default_and_answers(make_gateway: Any, upstream: Upstream) -> None:
    gw, poll = await _polling_gateway(make_gateway, 0.25)
    for _ in range(3):
        resp = await gw.post("/v1/chat/completions", CHAT, openai_headers(upstream))
        assert resp.status == 200
        answer = msgspec.json.decode(await resp.read())
        assert answer["choices"][0]["message"]["content"] == "Mock reply to: hello"
    # The loopback mock answers, and this client comes back, within 250 ms.
    assert poll.expected >= 3
    streamed = await gw.post("/v1/chat/completions", {**CHAT, "stream": True}, openai_headers(upstream))
    assert streamed.status == 200
    events = [line for line in (await streamed.read()).split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"data: [DONE]" and len(events) > 2
    await _until_idle(poll, 1.0)


async def test_a_crowded_worker_stops_polling_until_it_serves_one_at_a_time_again(
    make_gateway: Any, upstream: Upstream
) -> None:
    gw, poll = await _polling_gateway(make_gateway, 0.25)

    async def one() -> None:
        resp = await gw.post("/v1/chat/completions", CHAT, openai_headers(upstream))
        assert resp.status == 200
        await resp.read()

    for _ in range(3):
        await one()
    assert gw.app.dispatch.crowd < 0.5 and poll.expected >= 3
    slow = {**CHAT, "mock": {"delay_ms": 50}}
    crowd = [gw.post("/v1/chat/completions", slow, openai_headers(upstream)) for _ in range(16)]
    for resp in await asyncio.gather(*crowd):
        assert resp.status == 200
        await resp.read()
    assert gw.app.dispatch.crowd >= 1.0
    before = poll.expected
    await one()
    assert poll.expected == before, "a worker that just served 16 at once polled"
    for _ in range(30):  # each request alone moves the smoothed crowd an eighth of the way to 0
        await one()
    assert gw.app.dispatch.crowd < 1.0 and poll.expected > before


async def test_the_default_window_and_off(make_gateway: Any) -> None:
    default = await make_gateway()
    poll = default.server.busy_poll
    assert poll is not None and poll.window_s == pytest.approx(250e-6)
    assert default.app.gateway.pool.busy_poll is poll  # one poller for the clients and the upstreams
    off = await make_gateway(busy_poll_us=0)
    assert off.server.busy_poll is None and off.app.gateway.pool.busy_poll is None


@pytest.mark.parametrize(("env", "expected"), [(None, 250), ("0", 0), ("1000", 1000)])
def test_busy_poll_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: str | None, expected: int
) -> None:
    if env is None:
        monkeypatch.delenv("FASTGATE_BUSY_POLL_US", raising=False)
    else:
        monkeypatch.setenv("FASTGATE_BUSY_POLL_US", env)
    assert settings_from_env().busy_poll_us == expected
    assert settings_from_env(busy_poll_us=40).busy_poll_us == 40  # the CLI flag wins
