"""Messages ingress mapping cost against the floor: decoding and re-encoding the same payload once
with msgspec.

One benchmark group per pair; the budget (each mapping within 3x its floor, issue 23) is checked
on the two timed alternately (bench/conftest's ``interleaved_ratio``). The request is a Claude
Code turn (system blocks, a thinking block, a tool call and its result, tools, cache marks), the
answer OpenAI's tool-call example, the stream a recorded chat stream of text and two tool calls.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import msgspec
import pytest

from bench.conftest import interleaved_ratio, require_measured
from fastgate._transforms import ChatToMessagesStream, chat_to_messages_answer, messages_to_chat_request

DATA = Path(__file__).parent.parent / "tests" / "data" / "messages"
REQUEST = (DATA / "claude_code_request.json").read_bytes()
ANSWER = (DATA / "chat_answer_tool_calls.json").read_bytes()
STREAM = (DATA / "chat_stream_tool_calls.sse").read_bytes()
FRAMES = [frame + b"\n\n" for frame in STREAM.split(b"\n\n") if frame]
TEXT_FRAME = FRAMES[1]  # a content delta, as OpenAI writes it
TEXT_DATA = TEXT_FRAME[6:].rstrip()
STREAM_DATA = [frame[6:].rstrip() for frame in FRAMES if frame != b"data: [DONE]\n\n"]

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def floor(payload: bytes) -> bytes:
    return _encode(_decode(payload))


@pytest.mark.benchmark(group="request: Anthropic messages -> OpenAI chat")
def test_request_mapping(measure) -> None:
    body, _ = measure(messages_to_chat_request, REQUEST)
    assert b'"reasoning_effort":"medium"' in body


@pytest.mark.benchmark(group="request: Anthropic messages -> OpenAI chat")
def test_request_floor(measure) -> None:
    measure(floor, REQUEST)


@pytest.mark.benchmark(group="response: chat.completion -> Anthropic message")
def test_response_mapping(measure) -> None:
    assert b'"stop_reason":"tool_use"' in measure(chat_to_messages_answer, ANSWER)


@pytest.mark.benchmark(group="response: chat.completion -> Anthropic message")
def test_response_floor(measure) -> None:
    measure(floor, ANSWER)


def _open_stream() -> ChatToMessagesStream:
    stream = ChatToMessagesStream()
    stream.feed(FRAMES[0] + TEXT_FRAME)  # message_start and the text block are written
    return stream


@pytest.mark.benchmark(group="stream event: chat chunk -> text_delta")
def test_stream_event_mapping(measure) -> None:
    stream = _open_stream()
    assert b'"type":"text_delta"' in measure(stream.feed, TEXT_FRAME)
    assert not stream.done


@pytest.mark.benchmark(group="stream event: chat chunk -> text_delta")
def test_stream_event_floor(measure) -> None:
    measure(floor, TEXT_DATA)


def map_stream() -> bytes:
    stream = ChatToMessagesStream()
    return stream.feed(STREAM) + stream.finish()


def reencode_stream_events() -> list[bytes]:
    return [floor(data) for data in STREAM_DATA]


@pytest.mark.benchmark(group="stream: text and two tool calls -> Anthropic events")
def test_stream_mapping(measure) -> None:
    assert measure(map_stream).endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


@pytest.mark.benchmark(group="stream: text and two tool calls -> Anthropic events")
def test_stream_floor(measure) -> None:
    assert len(measure(reencode_stream_events)) == len(STREAM_DATA)


BUDGET = 3.0


def test_budget_mappings_within_3x_of_the_msgspec_floor() -> None:
    require_measured(
        "test_request_mapping", "test_request_floor", "test_response_mapping", "test_response_floor"
    )
    request = interleaved_ratio(lambda: messages_to_chat_request(REQUEST), lambda: floor(REQUEST))
    response = interleaved_ratio(lambda: chat_to_messages_answer(ANSWER), lambda: floor(ANSWER))
    print(f"\nmessages mapping / floor: request {request:.2f}, response {response:.2f}")
    assert request < BUDGET, f"request mapping {request:.2f}x its floor"
    assert response < BUDGET, f"response mapping {response:.2f}x its floor"


def test_budget_stream_within_3x_of_the_msgspec_floor() -> None:
    require_measured(
        "test_stream_event_mapping", "test_stream_event_floor", "test_stream_mapping", "test_stream_floor"
    )
    event = interleaved_ratio(partial(_open_stream().feed, TEXT_FRAME), lambda: floor(TEXT_DATA))
    stream = interleaved_ratio(map_stream, reencode_stream_events, rounds=20)
    print(f"\nmessages text delta / floor {event:.2f}, stream / its events re-encoded {stream:.2f}")
    assert event < BUDGET, f"a text delta costs {event:.2f}x decoding and re-encoding it"
    assert stream < BUDGET, f"a stream costs {stream:.2f}x decoding and re-encoding its events"
