"""Anthropic mapping cost against the floor: decoding and re-encoding the same payload once with msgspec.

One benchmark group per pair; the budget (mapping within 3x its floor) is checked on the two
timed alternately (bench/conftest's ``interleaved_ratio``).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import msgspec
import pytest

from bench.conftest import interleaved_ratio, require_measured
from bench.inproc import anthropic_frames
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


def _text_stream(deltas: int) -> list[bytes]:
    """The stream bench/inproc.py replays, in its two reads: the opening events, then the rest."""
    frames = anthropic_frames(deltas)
    return [b"".join(frames[:2]), b"".join(frames[2:])]


STREAM_READS = _text_stream(20)
STREAM_DATA = [line[6:] for read in STREAM_READS for line in read.split(b"\n") if line.startswith(b"data: ")]

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def floor(payload: bytes) -> bytes:
    return _encode(_decode(payload))


@pytest.mark.benchmark(group="request: OpenAI chat -> Anthropic messages")
def test_request_mapping(measure) -> None:
    assert b'"max_tokens":300' in measure(openai_chat_to_anthropic, CHAT_REQUEST)


@pytest.mark.benchmark(group="request: OpenAI chat -> Anthropic messages")
def test_request_floor(measure) -> None:
    measure(floor, CHAT_REQUEST)


@pytest.mark.benchmark(group="response: Anthropic message -> chat.completion")
def test_response_mapping(measure) -> None:
    assert b'"tool_calls"' in measure(anthropic_to_openai_chat, MESSAGE, "anthropic")


@pytest.mark.benchmark(group="response: Anthropic message -> chat.completion")
def test_response_floor(measure) -> None:
    measure(floor, MESSAGE)


@pytest.mark.benchmark(group="stream event: text delta -> chunk")
def test_stream_event_mapping(measure) -> None:
    stream = AnthropicStream("anthropic")
    stream.feed(START)
    assert b"let's check" in measure(stream.feed, TEXT_EVENT)
    assert not stream.done


@pytest.mark.benchmark(group="stream event: text delta -> chunk")
def test_stream_event_floor(measure) -> None:
    measure(floor, TEXT_DATA)


def map_stream() -> bytes:
    stream = AnthropicStream("anthropic")
    return b"".join([stream.feed(read) for read in STREAM_READS])


def decode_stream_events() -> list[object]:
    return [_decode(data) for data in STREAM_DATA]


@pytest.mark.benchmark(group="stream: 20-delta text answer -> chunks")
def test_stream_mapping(measure) -> None:
    out = measure(map_stream)
    assert out.count(b"data: ") == 23 and out.endswith(b"data: [DONE]\n\n")


@pytest.mark.benchmark(group="stream: 20-delta text answer -> chunks")
def test_stream_floor(measure) -> None:
    assert len(measure(decode_stream_events)) == 25


BUDGET = 3.0


def _open_stream() -> AnthropicStream:
    stream = AnthropicStream("anthropic")
    stream.feed(START)
    return stream


def test_budget_mapping_within_3x_of_the_msgspec_floor() -> None:
    require_measured("test_request_mapping", "test_request_floor")
    request = interleaved_ratio(lambda: openai_chat_to_anthropic(CHAT_REQUEST), lambda: floor(CHAT_REQUEST))
    response = interleaved_ratio(
        lambda: anthropic_to_openai_chat(MESSAGE, "anthropic"), lambda: floor(MESSAGE)
    )
    print(f"\nanthropic mapping / floor: request {request:.2f}, response {response:.2f}")
    assert request < BUDGET, f"request mapping {request:.2f}x its floor"
    assert response < BUDGET, f"response mapping {response:.2f}x its floor"


def test_budget_text_deltas_are_copied_not_decoded() -> None:
    # A text delta's text goes out as the JSON it came in: mapping one costs well under decoding
    # and re-encoding it into a dict (~0.2x when written; ~0.8x when the mapper decoded each delta
    # again), a whole stream under merely decoding its events (~0.4x when written).
    require_measured("test_stream_event_mapping", "test_stream_event_floor")
    event = interleaved_ratio(partial(_open_stream().feed, TEXT_EVENT), lambda: floor(TEXT_DATA))
    stream = interleaved_ratio(map_stream, decode_stream_events, rounds=20)
    print(f"\nanthropic text delta / floor {event:.2f}, text stream / its events decoded {stream:.2f}")
    assert event < 0.6, f"a text delta costs {event:.2f}x decoding and re-encoding it"
    assert stream < 1.2, f"a text stream costs {stream:.2f}x decoding its events"
