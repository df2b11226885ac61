"""Anthropic mapping cost against the floor: decoding and re-encoding the same payload once with msgspec.

One benchmark group per pair; the budget is mapping within 3x its floor, measured in the same run:

    /work/main/.venv/bin/python -m pytest bench/test_anthropic_mapping.py --benchmark-group-by=group
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from fastgate._transforms import AnthropicStream, anthropic_to_openai_chat, openai_chat_to_anthropic

DATA = Path(__file__).parent.parent / "tests" / "data" / "anthropic"
CHAT_REQUEST = (DATA / "chat_request.json").read_bytes()
MESSAGE = (DATA / "message_tool_use.json").read_bytes()
START = (DATA / "stream_tool_use.sse").read_bytes().split(b"event: content_block_delta")[0]
TEXT_EVENT = (
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Okay, let\'s check"}}\n\n'
)
TEXT_DATA = TEXT_EVENT.split(b"data: ", 1)[1].rstrip()

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def floor(payload: bytes) -> bytes:
    return _encode(_decode(payload))


@pytest.mark.benchmark(group="request: OpenAI chat -> Anthropic messages")
def test_request_mapping(benchmark) -> None:
    assert b'"max_tokens":300' in benchmark(openai_chat_to_anthropic, CHAT_REQUEST)


@pytest.mark.benchmark(group="request: OpenAI chat -> Anthropic messages")
def test_request_floor(benchmark) -> None:
    benchmark(floor, CHAT_REQUEST)


@pytest.mark.benchmark(group="response: Anthropic message -> chat.completion")
def test_response_mapping(benchmark) -> None:
    assert b'"tool_calls"' in benchmark(anthropic_to_openai_chat, MESSAGE, "anthropic")


@pytest.mark.benchmark(group="response: Anthropic message -> chat.completion")
def test_response_floor(benchmark) -> None:
    benchmark(floor, MESSAGE)


@pytest.mark.benchmark(group="stream event: text delta -> chunk")
def test_stream_event_mapping(benchmark) -> None:
    stream = AnthropicStream("anthropic")
    stream.feed(START)
    assert b"let's check" in benchmark(stream.feed, TEXT_EVENT)
    assert not stream.done


@pytest.mark.benchmark(group="stream event: text delta -> chunk")
def test_stream_event_floor(benchmark) -> None:
    benchmark(floor, TEXT_DATA)
