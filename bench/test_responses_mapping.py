"""Responses ingress mapping cost against the floor: decoding and re-encoding the same payload once
with msgspec.

One benchmark group per direction; the budget (each within 3x its floor, issue 23) is checked on
the two timed alternately (bench/conftest's ``interleaved_ratio``).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from bench.conftest import interleaved_ratio, require_measured
from fastgate._transforms import ChunkWriter, anthropic_to_openai_chat, responses_to_chat
from fastgate.schema.openai import Usage
from fastgate.schema.responses import request_decoder

DATA = Path(__file__).parent.parent / "tests" / "data"
#: An agent's turn: instructions, a tool loop with reasoning, images and a file, a JSON schema.
REQUEST = (DATA / "responses" / "request.json").read_bytes()
#: The chat.completion a mapped provider answers with (Anthropic's tool-use Message, mapped).
CHAT = anthropic_to_openai_chat((DATA / "anthropic" / "message_tool_use.json").read_bytes(), "anthropic")
TURN = responses_to_chat(request_decoder.decode(REQUEST))


def _chat_stream(deltas: int) -> bytes:
    """A text answer as a mapped provider streams it (ChunkWriter), usage included."""
    writer = ChunkWriter("chatcmpl-bench", "claude-sonnet-4-5", "anthropic", include_usage=True)
    pieces = [writer.content(f"word{i} ") for i in range(deltas)]
    return writer.role() + b"".join(pieces) + writer.finish("stop", Usage(412, deltas, 412 + deltas))


STREAM = _chat_stream(20)
STREAM_DATA = [line[6:] for line in STREAM.split(b"\n") if line.startswith(b"data: {")]

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def floor(payload: bytes) -> bytes:
    return _encode(_decode(payload))


def map_request() -> bytes:
    return responses_to_chat(request_decoder.decode(REQUEST)).body


def map_stream() -> bytes:
    mapper = TURN.stream_mapper()
    return mapper.feed(STREAM) + mapper.finish()


def stream_floor() -> list[bytes]:
    return [floor(data) for data in STREAM_DATA]


@pytest.mark.benchmark(group="request: Responses -> OpenAI chat")
def test_request_mapping(measure) -> None:
    assert b'"reasoning_effort":"medium"' in measure(map_request)


@pytest.mark.benchmark(group="request: Responses -> OpenAI chat")
def test_request_floor(measure) -> None:
    measure(floor, REQUEST)


@pytest.mark.benchmark(group="response: chat.completion -> Response")
def test_response_mapping(measure) -> None:
    assert b'"type":"function_call"' in measure(TURN.answer, CHAT)


@pytest.mark.benchmark(group="response: chat.completion -> Response")
def test_response_floor(measure) -> None:
    measure(floor, CHAT)


@pytest.mark.benchmark(group="stream: 20-delta text answer -> Responses events")
def test_stream_mapping(measure) -> None:
    out = measure(map_stream)
    assert out.count(b"event: response.output_text.delta\n") == 20
    assert out.endswith(b"\n\n") and b"event: response.completed\n" in out


@pytest.mark.benchmark(group="stream: 20-delta text answer -> Responses events")
def test_stream_floor(measure) -> None:
    assert len(measure(stream_floor)) == 23


BUDGET = 3.0


def test_budget_mapping_within_3x_of_the_msgspec_floor() -> None:
    require_measured("test_request_mapping", "test_request_floor")
    request = interleaved_ratio(map_request, lambda: floor(REQUEST))
    response = interleaved_ratio(lambda: TURN.answer(CHAT), lambda: floor(CHAT))
    stream = interleaved_ratio(map_stream, stream_floor, rounds=20)
    print(f"\nresponses mapping / floor: request {request:.2f}, response {response:.2f}, stream {stream:.2f}")
    assert request < BUDGET, f"request mapping {request:.2f}x its floor"
    assert response < BUDGET, f"response mapping {response:.2f}x its floor"
    assert stream < BUDGET, f"stream mapping {stream:.2f}x its floor"


LONG_STREAM = _chat_stream(200)
LONG_STREAM_DATA = [line[6:] for line in LONG_STREAM.split(b"\n") if line.startswith(b"data: {")]


def map_long_stream() -> bytes:
    mapper = TURN.stream_mapper()
    return mapper.feed(LONG_STREAM) + mapper.finish()


def decode_long_stream_events() -> list[object]:
    return [_decode(data) for data in LONG_STREAM_DATA]


def test_budget_text_deltas_are_copied_not_decoded() -> None:
    # A mapped provider's text delta goes out as the JSON it came in: a 200-delta answer costs well
    # under merely decoding its chunks (~0.3x when copied; ~1.5x when each chunk was decoded and
    # its event encoded).
    require_measured("test_stream_mapping", "test_stream_floor")
    ratio = interleaved_ratio(map_long_stream, decode_long_stream_events, rounds=20, number=20)
    print(f"\nresponses 200-delta stream / its chunks decoded {ratio:.2f}")
    assert ratio < 0.6, f"a text stream costs {ratio:.2f}x decoding its chunks"
