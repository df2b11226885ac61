"""Chat chunk streams as Anthropic's event stream: event order and shape checked against the
``anthropic`` SDK's event types and its stream accumulator, reads split anywhere, and the SDK
itself as the client of a loopback server that answers through the Messages mappings."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from itertools import pairwise
from typing import Any

import anthropic
import msgspec
import pydantic
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from anthropic.lib.streaming._messages import accumulate_event
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import (
    AnthropicStream,
    ChatToMessagesStream,
    ChunkWriter,
    chat_error_to_messages,
    chat_to_messages_answer,
    estimate_messages_tokens,
    messages_to_chat_request,
)
from tests.support.payloads import recorded, recorded_json
from tests.support.sse import named_events

TOOL_STREAM = recorded("messages", "chat_stream_tool_calls.sse")
REASONING_STREAM = recorded("messages", "chat_stream_reasoning.sse")
TOOL_ANSWER = recorded("messages", "chat_answer_tool_calls.json")
EVENTS: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(anthropic.types.RawMessageStreamEvent)


def parse(sse: bytes) -> list[tuple[str, Any]]:
    """Anthropic SSE as (event, data) pairs; each event's name is its data's type."""
    events = named_events(sse)
    assert all(name == data["type"] for name, data in events)
    return events


def run(sse: bytes, step: int = 0, model: str = "") -> bytes:
    stream = ChatToMessagesStream(model)
    step = step or len(sse)
    out = b"".join(stream.feed(sse[i : i + step]) for i in range(0, len(sse), step))
    return out + stream.finish()


def accumulated(sse: bytes) -> anthropic.types.Message:
    """The SDK's stream accumulator over the events (each validated as the SDK's type first)."""
    message: Any = None
    buffers: dict[int, bytes] = {}
    for name, data in parse(sse):
        if name == "ping":
            continue
        assert name != "error", data
        message = accumulate_event(
            event=EVENTS.validate_python(data), current_snapshot=message, json_bufs=buffers
        )
    return anthropic.types.Message.model_validate(message.to_dict())


def test_tool_call_stream_has_anthropics_event_sequence() -> None:
    events = parse(run(TOOL_STREAM))
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "content_block_start",
        *["content_block_delta"] * 3,
        "content_block_stop",
        "content_block_start",
        *["content_block_delta"] * 2,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0][1]["message"]
    assert start["id"] == "msg_chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG" and start["content"] == []
    assert start["model"] == "gpt-4o-2024-08-06" and start["stop_reason"] is None
    assert events[2][1] == {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    }
    assert events[7][1]["content_block"] == {
        "type": "tool_use",
        "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA",
        "name": "get_weather",
        "input": {},
    }
    assert events[8][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"lo'}
    assert [data["index"] for name, data in events if name == "content_block_stop"] == [0, 1, 2]
    assert events[-2][1] == {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {
            "input_tokens": 2082 - 1920,
            "output_tokens": 51,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1920,
        },
    }


def test_the_sdks_accumulator_builds_the_answers_message() -> None:
    streamed = accumulated(run(TOOL_STREAM))
    whole = anthropic.types.Message.model_validate_json(chat_to_messages_answer(TOOL_ANSWER))
    # The streamed text has the recording's own words; the rest is the same Message.
    assert streamed.content[0].text == 'Checking both cities "now".'  # type: ignore[union-attr]
    assert streamed.content[1:] == whole.content[1:]
    assert (streamed.id, streamed.model, streamed.stop_reason) == (whole.id, whole.model, whole.stop_reason)
    assert streamed.usage == whole.usage


def test_reasoning_stream_with_crlf_lines_opens_a_thinking_block_first() -> None:
    message = accumulated(run(REASONING_STREAM))
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].thinking == "9.11 vs 9.9: compare tenths."  # type: ignore[union-attr]
    assert message.content[1].text == "9.9 is larger."  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.usage.input_tokens == 17
    assert message.usage.output_tokens == 30


@given(st.lists(st.integers(min_value=1, max_value=len(TOOL_STREAM) - 1), max_size=12))
@settings(max_examples=200, deadline=None)
def test_reads_split_anywhere_give_the_same_events(cuts: list[int]) -> None:
    points = [0, *sorted(set(cuts)), len(TOOL_STREAM)]
    stream = ChatToMessagesStream()
    out = b"".join(stream.feed(TOOL_STREAM[a:b]) for a, b in pairwise(points))
    whole = run(TOOL_STREAM)
    assert out + stream.finish() == whole


@pytest.mark.parametrize("step", [1, 3, 64])
def test_byte_by_byte_reads(step: int) -> None:
    assert run(REASONING_STREAM, step) == run(REASONING_STREAM)


@pytest.mark.parametrize(
    ("name", "include_usage"),
    [("stream_text.sse", True), ("stream_thinking.sse", True), ("stream_tool_use.sse", False)],
)
def test_anthropic_streams_come_back_through_the_pivot(name: str, include_usage: bool) -> None:
    # Anthropic's own events → fastgate's Anthropic mapping (non-strict: thinking kept) → back.
    original = recorded("anthropic", name)
    chat = AnthropicStream("anthropic", include_usage=include_usage, strict=False)
    chunks = chat.feed(original) + chat.finish()
    again = accumulated(run(chunks))
    first = accumulated(original)
    assert again.content == first.content
    assert (again.id, again.model, again.stop_reason) == (first.id, first.model, first.stop_reason)
    if include_usage:
        assert again.usage.output_tokens == first.usage.output_tokens
        assert again.usage.input_tokens == first.usage.input_tokens


def test_a_mid_stream_error_is_anthropics_error_event() -> None:
    w = ChunkWriter("chatcmpl-1", "gpt-x")
    events = parse(run(w.role() + w.content("Hal") + w.error("openai error: overloaded", "overloaded_error")))
    assert [name for name, _ in events][-1] == "error"
    assert events[-1][1] == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "openai error: overloaded"},
    }
    w = ChunkWriter("chatcmpl-1", "gpt-x")
    events = parse(run(w.content("x") + w.error("boom", "server_error")))
    assert events[-1][1]["error"]["type"] == "api_error"


def test_a_stream_cut_before_its_finish_ends_with_an_error_event() -> None:
    w = ChunkWriter("chatcmpl-1", "gpt-x")
    events = parse(run(w.role() + w.content("Hal")))
    assert [name for name, _ in events] == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "error",
    ]
    assert events[-1][1]["error"]["type"] == "api_error"


def test_a_finished_stream_without_done_still_closes_the_message() -> None:
    w = ChunkWriter("chatcmpl-1", "gpt-x")
    sse = w.content("Hi") + w.finish("length")
    sse = sse[: sse.rindex(b"data: [DONE]")]
    message = accumulated(run(sse))
    assert message.stop_reason == "max_tokens" and message.content[0].text == "Hi"  # type: ignore[union-attr]


def test_a_malformed_event_ends_the_stream_with_an_error() -> None:
    events = parse(run(b'data: {"choices": [\n\ndata: [DONE]\n\n'))
    assert [name for name, _ in events] == ["error"]
    assert "malformed" in events[0][1]["error"]["message"]


def test_an_empty_answer_still_opens_and_closes_the_message() -> None:
    message = accumulated(run(b"data: [DONE]\n\n", model="claude-x"))
    assert message.content == [] and message.model == "claude-x" and message.id.startswith("msg_")


def test_non_strict_thinking_blocks_keep_their_signature() -> None:
    w = ChunkWriter("chatcmpl-1", "claude-x")
    sse = (
        w.role()
        + w.extra(content_blocks=[{"index": 0, "delta": {"thinking": "Let me think."}}])
        + w.extra(content_blocks=[{"index": 0, "delta": {"signature": "sig-1"}}])
        + w.extra(content_blocks=[{"index": 1, "delta": {"type": "redacted_thinking", "data": "opaque"}}])
        + w.extra(content="Hi", content_blocks=[{"index": 2, "delta": {"text": "Hi"}}])
        + w.finish("end_turn")
    )
    message = accumulated(run(sse))
    assert [b.to_dict() for b in message.content] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Hi"},
    ]


def test_refusal_and_stop_sequence_in_a_stream() -> None:
    frame = b'data: {"choices":[{"index":0,"delta":{"refusal":"No."},"finish_reason":null}]}\n\n'
    message = accumulated(
        run(frame + b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    )
    assert message.stop_reason == "refusal" and message.content[0].text == "No."  # type: ignore[union-attr]
    vllm = (
        b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop","stop_reason":"END"}]}'
        b"\n\n"
    )
    message = accumulated(run(vllm + b"data: [DONE]\n\n"))
    assert message.stop_reason == "stop_sequence" and message.stop_sequence == "END"


# ---- the anthropic SDK as the client ------------------------------------------------------------


def messages_app(seen: list[dict[str, Any]]) -> web.Application:
    """Answers ``/v1/messages`` as the wiring will: the request mapped to the chat pivot, a
    recorded chat answer mapped back (streamed in small writes), errors in Anthropic's shape."""

    async def create(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        chat, req = messages_to_chat_request(body)
        seen.append(json.loads(chat))
        if "overloaded" in bytes(req.messages[-1].content).decode():
            error = b'{"error": {"message": "openai error: slow down", "type": "rate_limit_error"}}'
            return web.Response(
                status=429, body=chat_error_to_messages(429, error), content_type="application/json"
            )
        if not req.stream:
            return web.Response(
                body=chat_to_messages_answer(TOOL_ANSWER, req.model or ""), content_type="application/json"
            )
        stream = ChatToMessagesStream(req.model or "")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(0, len(TOOL_STREAM), 97):
            out = stream.feed(TOOL_STREAM[i : i + 97])
            if out:
                await resp.write(out)
        await resp.write(stream.finish())
        await resp.write_eof()
        return resp

    async def count_tokens(request: web.Request) -> web.Response:
        return web.Response(
            body=estimate_messages_tokens(await request.read()), content_type="application/json"
        )

    app = web.Application()
    app.router.add_post("/v1/messages", create)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    return app


@pytest.fixture
async def sdk(aiohttp_server: Any) -> AsyncIterator[tuple[anthropic.AsyncAnthropic, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []
    server: TestServer = await aiohttp_server(messages_app(seen))
    client = anthropic.AsyncAnthropic(base_url=str(server.make_url("")), api_key="sk-ant-test", max_retries=0)
    yield client, seen
    await client.close()


REQUEST = recorded_json("messages", "claude_code_request.json")
SDK_FIELDS = {
    k: REQUEST[k] for k in ("model", "max_tokens", "system", "messages", "tools", "metadata", "thinking")
}


async def test_the_sdks_stream_helper_reads_the_mapped_stream(sdk: Any) -> None:
    client, seen = sdk
    async with client.messages.stream(**SDK_FIELDS) as stream:
        texts = [text async for text in stream.text_stream]
        message = await stream.get_final_message()
    assert "".join(texts) == 'Checking both cities "now".'
    assert [b.type for b in message.content] == ["text", "tool_use", "tool_use"]
    assert message.content[1].input == {"location": "Paris, France"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use" and message.usage.cache_read_input_tokens == 1920
    assert seen[0]["stream"] is True and seen[0]["reasoning_effort"] == "high"


async def test_the_sdks_create_and_count_tokens(sdk: Any) -> None:
    client, _ = sdk
    message = await client.messages.create(**{**SDK_FIELDS, "max_tokens": 4096})
    assert isinstance(message, anthropic.types.Message) and message.stop_reason == "tool_use"
    assert message.content[2].input == {"location": "Bogotá, Colombia"}  # type: ignore[union-attr]
    counted = await client.messages.count_tokens(model="m", messages=[{"role": "user", "content": "x" * 40}])
    assert counted.input_tokens == 10


async def test_the_sdk_raises_its_own_error_class(sdk: Any) -> None:
    client, _ = sdk
    with pytest.raises(anthropic.RateLimitError) as info:
        await client.messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "overloaded"}]
        )
    assert info.value.status_code == 429
    assert info.value.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "openai error: slow down"},
    }


def test_chunk_writer_frames_encode_like_msgspec() -> None:
    # The recorded streams are what OpenAI writes; the writer's frames must map the same way.
    w = ChunkWriter("chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "gpt-4o-2024-08-06", None, True)
    usage = msgspec.Raw(b'{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}')
    sse = w.role() + w.content("Hi") + w.finish("stop", usage)
    message = accumulated(run(sse))
    assert message.content[0].text == "Hi" and message.usage.input_tokens == 3  # type: ignore[union-attr]


@given(st.lists(st.binary(max_size=40) | st.sampled_from(TOOL_STREAM.split(b"\n\n")), max_size=12))
@settings(max_examples=300, deadline=None)
def test_any_bytes_end_in_message_stop_or_an_error_event(pieces: list[bytes]) -> None:
    stream = ChatToMessagesStream()
    out = b"".join(stream.feed(piece + b"\n\n") for piece in pieces) + stream.finish()
    assert stream.done
    events = parse(out)
    assert events[-1][0] in ("message_stop", "error")
    assert [name for name, _ in events].count("error") <= 1
