"""Busy polling: the loop polls for its window after each read, then sleeps again; requests through
a polling gateway are answered as through any other, and its poll stops with the server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest

from fastgate.server.busy_poll import BusyPoll
from fastgate.settings import settings_from_env
from tests.conftest import Upstream, openai_headers

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


class CountingPoll(BusyPoll):
    """Counts the polling callback's runs: each is one turn of the loop that did not sleep."""

    __slots__ = ("runs",)

    def __init__(self, loop: asyncio.AbstractEventLoop, window_s: float) -> None:
        super().__init__(loop, window_s)
        self.runs = 0

    def _poll(self) -> None:
        self.runs += 1
        super()._poll()


async def _until_idle(poll: BusyPoll, limit_s: float = 5.0) -> None:
    deadline = time.monotonic() + limit_s
    while poll.polling:
        assert time.monotonic() < deadline, "the loop kept polling past its window"
        await asyncio.sleep(0.01)


async def test_the_loop_polls_through_the_window_then_sleeps() -> None:
    poll = CountingPoll(asyncio.get_running_loop(), 0.05)
    assert not poll.polling and poll.runs == 0  # nothing read yet: nothing polls
    poll.poke()
    assert poll.polling
    await asyncio.sleep(0.02)
    assert poll.polling and poll.runs > 10, "the loop slept inside the window"
    await _until_idle(poll)
    stopped_at = poll.runs
    await asyncio.sleep(0.1)
    assert poll.runs == stopped_at, "the loop went on polling with nothing read"


async def test_each_read_extends_the_window_and_stop_ends_it() -> None:
    poll = CountingPoll(asyncio.get_running_loop(), 0.4)
    started = time.monotonic()
    poll.poke()
    await asyncio.sleep(0.25)
    poll.poke()  # a read at 0.25 s: polling goes on until ~0.65 s
    await asyncio.sleep(0.25)
    assert poll.polling, "the second read did not extend the window"
    poll.stop()
    assert not poll.polling
    runs = poll.runs
    await asyncio.sleep(0.05)
    assert poll.runs == runs
    assert time.monotonic() - started < 5


async def test_a_polling_gateway_answers_and_goes_back_to_sleep(
    make_gateway: Any, upstream: Upstream
) -> None:
    gw = await make_gateway(busy_poll_us=20_000)
    poll = gw.server.busy_poll
    assert poll is not None and gw.app.gateway.pool is not None
    assert gw.app.gateway.pool.busy_poll is poll  # reads from upstreams poke it too
    assert not poll.polling
    resp = await gw.post("/v1/chat/completions", CHAT, openai_headers(upstream))
    assert resp.status == 200
    answer = msgspec.json.decode(await resp.read())
    assert answer["choices"][0]["message"]["content"] == "Mock reply to: hello"
    assert poll.polling, "a read did not start the poll"
    await _until_idle(poll)
    streamed = await gw.post("/v1/chat/completions", {**CHAT, "stream": True}, openai_headers(upstream))
    assert streamed.status == 200
    events = [line for line in (await streamed.read()).split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"data: [DONE]" and len(events) > 2
    await _until_idle(poll)


async def test_polling_is_off_unless_asked_for(gateway: Any) -> None:
    assert gateway.server.busy_poll is None
    assert gateway.app.gateway.pool.busy_poll is None


@pytest.mark.parametrize(("env", "expected"), [(None, 0), ("250", 250)])
def test_busy_poll_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: str | None, expected: int
) -> None:
    if env is None:
        monkeypatch.delenv("FASTGATE_BUSY_POLL_US", raising=False)
    else:
        monkeypatch.setenv("FASTGATE_BUSY_POLL_US", env)
    assert settings_from_env().busy_poll_us == expected
    assert settings_from_env(busy_poll_us=40).busy_poll_us == 40  # the CLI flag wins
