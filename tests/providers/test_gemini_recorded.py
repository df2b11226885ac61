"""Payloads recorded from Google's API reference (tests/data/google), replayed by a loopback server
and read through the gateway by the openai SDK."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

import msgspec
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import given, settings
from hypothesis import strategies as st
from openai import AsyncOpenAI

from fastgate._transforms import GeminiStream
from tests.conftest import Gateway
from tests.providers.gemini_support import client, recorded
from tests.support.sse import data_payloads


class Replay:
    """Answers every Gemini API call with one recorded body."""

    def __init__(self, server: TestServer, state: dict[str, object]) -> None:
        self.server = server
        self.state = state

    def play(self, name: str, status: int = 200) -> None:
        self.state.update(body=recorded(name), status=status, sse=name.endswith(".sse"))

    def client(self, gateway: Gateway, **headers: str) -> AsyncOpenAI:
        host = str(self.server.make_url("/v1beta"))
        return client(gateway, {"x-portkey-provider": "google", "x-portkey-custom-host": host, **headers})


@pytest.fixture
async def replay(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Replay:
    state: dict[str, object] = {}

    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        kind = "text/event-stream" if state["sse"] else "application/json"
        return web.Response(status=int(str(state["status"])), body=state["body"], content_type=kind)  # type: ignore[arg-type]

    app = web.Application()
    app.router.add_post("/v1beta/models/{call}", answer)
    return Replay(await aiohttp_server(app), state)


ASK = [{"role": "user", "content": "hi"}]


async def test_text_answer(gateway: Gateway, replay: Replay) -> None:
    replay.play("generate_content_text.json")
    async with replay.client(gateway) as c:
        answer = await c.chat.completions.create(model="gemini-2.0-flash", messages=ASK)  # type: ignore[arg-type]
    assert answer.id == "yJ5GaKzZLYu2nvgP_4uDqAU"
    assert answer.choices[0].message.content is not None
    assert answer.choices[0].message.content.startswith("AI learns patterns")
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        8,
        19,
        27,
    )


async def test_function_call_answer(gateway: Gateway, replay: Replay) -> None:
    replay.play("generate_content_function_call.json")
    async with replay.client(gateway) as c:
        answer = await c.chat.completions.create(model="gemini-2.0-flash", messages=ASK)  # type: ignore[arg-type]
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.function.name == "schedule_meeting"
    assert msgspec.json.decode(call.function.arguments) == {
        "attendees": ["Bob", "Alice"],
        "date": "2025-03-14",
        "time": "10:00",
        "topic": "Q3 planning",
    }


async def test_thinking_answer_usage(gateway: Gateway, replay: Replay) -> None:
    replay.play("generate_content_thinking.json")
    async with replay.client(gateway) as c:
        answer = await c.chat.completions.create(model="gemini-2.5-flash", messages=ASK)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "There are 4 prime numbers below 10: 2, 3, 5 and 7."
    usage = answer.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 20 + 149, 181)
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 149
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 4


async def test_blocked_prompt(gateway: Gateway, replay: Replay) -> None:
    replay.play("generate_content_blocked.json")
    async with replay.client(gateway) as c:
        answer = await c.chat.completions.create(model="gemini-2.0-flash", messages=ASK)  # type: ignore[arg-type]
    assert [(ch.finish_reason, ch.message.content) for ch in answer.choices] == [("content_filter", "")]
    assert answer.usage is not None and answer.usage.prompt_tokens == 9


async def test_streamed_text(gateway: Gateway, replay: Replay) -> None:
    replay.play("stream_text.sse")
    async with replay.client(gateway) as c:
        stream = await c.chat.completions.create(
            model="gemini-2.0-flash",
            messages=ASK,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "The quick brown fox jumps over the lazy dog."
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 19


async def test_streamed_parallel_function_calls(gateway: Gateway, replay: Replay) -> None:
    replay.play("stream_function_calls.sse")
    resp = await gateway.session.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gemini-2.0-flash", "messages": ASK, "stream": True},
        headers={
            "x-portkey-provider": "google",
            "x-portkey-custom-host": str(replay.server.make_url("/v1beta")),
            "Authorization": "Bearer k",
        },
    )
    payloads = data_payloads(await resp.read())
    assert payloads[-1] == b"[DONE]"
    chunks = [msgspec.json.decode(p) for p in payloads[:-1]]
    calls = [tc for ch in chunks for tc in ch["choices"][0]["delta"].get("tool_calls", [])]
    assert [(tc["index"], tc["function"]["name"]) for tc in calls] == [
        (0, "get_current_temperature"),
        (1, "get_current_temperature"),
    ]
    assert [msgspec.json.decode(tc["function"]["arguments"]) for tc in calls] == [
        {"location": "London"},
        {"location": "Paris"},
    ]
    assert len({tc["id"] for tc in calls}) == 2
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("name", "status", "exc", "code"),
    [
        ("error_invalid_key.json", 400, openai.BadRequestError, "INVALID_ARGUMENT"),
        ("error_quota.json", 429, openai.RateLimitError, "RESOURCE_EXHAUSTED"),
    ],
)
async def test_errors(
    gateway: Gateway, replay: Replay, name: str, status: int, exc: type[openai.APIStatusError], code: str
) -> None:
    replay.play(name, status)
    async with replay.client(gateway) as c:
        with pytest.raises(exc) as err:
            await c.chat.completions.create(model="gemini-2.0-flash", messages=ASK)  # type: ignore[arg-type]
    body = err.value.body
    assert isinstance(body, dict) and body["code"] == code
    assert body["message"].startswith("google error: ")


async def test_embeddings(gateway: Gateway, replay: Replay) -> None:
    replay.play("batch_embed_contents.json")
    async with replay.client(gateway) as c:
        result = await c.embeddings.create(
            model="text-embedding-004", input=["a", "b"], encoding_format="float"
        )
    assert [d.embedding[:2] for d in result.data] == [
        [0.013168523, -0.008711934],
        [-0.021940224, 0.0053911027],
    ]
    assert result.model == "text-embedding-004"


def _mapped(reads: list[bytes]) -> list[object]:
    stream = GeminiStream("gemini-2.0-flash", "google", include_usage=True)
    out = b"".join(stream.feed(r) for r in reads) + stream.finish()
    chunks: list[object] = []
    for payload in data_payloads(out):
        if payload == b"[DONE]":
            chunks.append("[DONE]")
            continue
        chunk = msgspec.json.decode(payload)
        del chunk["id"], chunk["created"]  # per stream, not per read
        chunks.append(chunk)
    return chunks


WHOLE_STREAM = recorded("stream_text.sse")
EXPECTED = _mapped([WHOLE_STREAM])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(WHOLE_STREAM) - 1), max_size=12, unique=True))
def test_stream_mapping_does_not_depend_on_read_boundaries(cuts: list[int]) -> None:
    edges = [0, *sorted(cuts), len(WHOLE_STREAM)]
    reads = [WHOLE_STREAM[a:b] for a, b in itertools.pairwise(edges)]
    assert _mapped(reads) == EXPECTED
    assert len(EXPECTED) == 6 and EXPECTED[-1] == "[DONE]"  # 3 text chunks, finish, usage, [DONE]
