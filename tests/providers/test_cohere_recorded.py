"""Cohere payloads recorded from its API reference (tests/data/cohere/), replayed over HTTP
through the gateway, and the stream mapper fed the same bytes split at every offset."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec
import openai
import pytest
from aiohttp.test_utils import TestServer

from fastgate._transforms import CohereStream, cohere_chat_response
from tests.conftest import Gateway
from tests.support.payloads import recorded
from tests.support.replay import Replay, sdk, start_replay
from tests.support.sse import frames


@pytest.fixture
async def replay(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Replay:
    return await start_replay(aiohttp_server)


def client(gateway: Gateway, replay: Replay) -> openai.AsyncOpenAI:
    return sdk(gateway, {"x-portkey-provider": "cohere", "x-portkey-custom-host": replay.url})


async def test_recorded_text_answer(gateway: Gateway, replay: Replay) -> None:
    replay.serve(recorded("cohere", "chat_response.json"))
    c = client(gateway, replay)
    answer = await c.chat.completions.create(
        model="command-a-03-2025", messages=[{"role": "user", "content": "?"}]
    )
    assert answer.id == "c14c80c3-18eb-4519-9460-6c92edd8cfb4"
    assert answer.choices[0].message.content.startswith("LLMs stand for Large Language Models")  # type: ignore[union-attr]
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (
        215,
        25,
        240,
    )
    assert replay.received[0]["path"] == "/v2/chat"
    await c.close()


async def test_recorded_tool_answer(gateway: Gateway, replay: Replay) -> None:
    replay.serve(recorded("cohere", "chat_tool_response.json"))
    c = client(gateway, replay)
    answer = await c.chat.completions.create(
        model="command-a-03-2025", messages=[{"role": "user", "content": "?"}]
    )
    calls = answer.choices[0].message.tool_calls or []
    assert [c_.id for c_ in calls] == [
        "query_daily_sales_report_1jxjqhvx4jkq",
        "query_daily_sales_report_mt6nbz1pg3a0",
    ]
    assert [msgspec.json.decode(c_.function.arguments) for c_ in calls] == [
        {"day": "2023-09-29"},
        {"day": "2023-10-01"},
    ]
    assert answer.choices[0].finish_reason == "tool_calls"
    await c.close()


async def test_recorded_text_stream(gateway: Gateway, replay: Replay) -> None:
    replay.serve(recorded("cohere", "chat_stream.sse"))
    c = client(gateway, replay)
    stream = await c.chat.completions.create(
        model="command-a-03-2025",
        messages=[{"role": "user", "content": "?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [ch async for ch in stream]
    assert {ch.id for ch in chunks} == {"29f14a5a-11de-4cae-9800-25e4747408ea"}
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "A large language model is a neural network."
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 205
    await c.close()


async def test_recorded_tool_stream(gateway: Gateway, replay: Replay) -> None:
    replay.serve(recorded("cohere", "chat_stream_tools.sse"))
    c = client(gateway, replay)
    stream = await c.chat.completions.create(
        model="command-a-03-2025", messages=[{"role": "user", "content": "?"}], stream=True
    )
    args: dict[int, str] = {}
    ids: dict[int, str] = {}
    async for ch in stream:
        for d in (ch.choices[0].delta.tool_calls or ()) if ch.choices else ():
            args[d.index] = args.get(d.index, "") + ((d.function.arguments or "") if d.function else "")
            if d.id:
                ids[d.index] = d.id
    assert ids == {0: "query_daily_sales_report_r4fmd9ckqbv8", 1: "query_daily_sales_report_92hq0yfdzgmp"}
    assert [msgspec.json.decode(args[i]) for i in (0, 1)] == [{"day": "2023-09-29"}, {"day": "2023-10-01"}]
    await c.close()


async def test_recorded_embeddings(gateway: Gateway, replay: Replay) -> None:
    replay.serve(recorded("cohere", "embed_response.json"))
    c = client(gateway, replay)
    answer = await c.embeddings.create(
        model="embed-v4.0", input=["hello", "goodbye"], encoding_format="float"
    )
    assert answer.data[1].embedding == [0.0234375, 0.012939453, -0.0032215118, -0.05834961]
    assert answer.usage.prompt_tokens == 2
    await c.close()


async def test_recorded_error(gateway: Gateway, replay: Replay) -> None:
    replay.serve(recorded("cohere", "error_401.json"), status=401)
    c = client(gateway, replay)
    with pytest.raises(openai.AuthenticationError) as caught:
        await c.chat.completions.create(
            model="command-a-03-2025", messages=[{"role": "user", "content": "?"}]
        )
    assert caught.value.body == {
        "message": "cohere error: invalid api token",
        "type": "authentication_error",
        "param": None,
        "code": None,
    }
    await c.close()


def _comparable(out: bytes) -> list[object]:
    """The events decoded, ``created`` dropped (it may tick over a second boundary)."""
    items: list[object] = []
    for event in frames(out):
        if event == b"data: [DONE]":
            items.append(event)
            continue
        chunk = msgspec.json.decode(event[len(b"data: ") :])
        chunk.pop("created", None)
        items.append(chunk)
    return items


@pytest.mark.parametrize("name", ["chat_stream.sse", "chat_stream_tools.sse"])
def test_stream_mapper_is_indifferent_to_read_boundaries(name: str) -> None:
    data = recorded("cohere", name).replace(b"\n", b"\r\n")  # CRLF line ends too
    whole = CohereStream("m", include_usage=True)
    expected = _comparable(whole.feed(data) + whole.finish())
    assert whole.done and expected[-1] == b"data: [DONE]"
    for cut in range(1, len(data), 7):
        mapper = CohereStream("m", include_usage=True)
        assert _comparable(mapper.feed(data[:cut]) + mapper.feed(data[cut:]) + mapper.finish()) == expected


def test_stream_without_message_end_ends_with_error() -> None:
    data = recorded("cohere", "chat_stream.sse")
    truncated = data[: data.index(b"event: message-end")]
    mapper = CohereStream("m")
    out = mapper.feed(truncated) + mapper.finish()
    events = frames(out)
    assert events[-1] == b"data: [DONE]"
    assert b"stream ended before message-end" in events[-2]


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ({"billed_units": {"input_tokens": 17, "output_tokens": 25}}, (17, 25, 42)),
        (
            {"billed_units": {"input_tokens": 1}, "tokens": {"input_tokens": 9, "output_tokens": 2}},
            (9, 2, 11),
        ),
    ],
)
def test_usage_prefers_tokens_and_falls_back_to_billed_units(
    usage: dict[str, object], expected: tuple[int, int, int]
) -> None:
    body = msgspec.json.decode(recorded("cohere", "chat_response.json"))
    body["usage"] = usage
    answer = msgspec.json.decode(cohere_chat_response(msgspec.json.encode(body), "m"))
    got = answer["usage"]
    assert (got["prompt_tokens"], got["completion_tokens"], got["total_tokens"]) == expected
