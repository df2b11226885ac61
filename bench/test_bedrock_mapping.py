"""Bedrock mapping cost against the msgspec floor, and the event-stream decoder's throughput.

Run: ``python -m pytest bench/test_bedrock_mapping.py --benchmark-group-by=group``.
Budget: each mapping costs at most 3x the msgspec decode+encode of the same payload, measured in
the same run (the ratio is asserted; the table shows both). The decoder is compared with
botocore's pure-Python ``EventStreamBuffer`` on the same multi-frame stream, and its MB/s printed.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from botocore.eventstream import EventStreamBuffer

from fastgate._transforms import (
    BedrockStream,
    EventStreamDecoder,
    bedrock_chat_request,
    bedrock_chat_response,
)
from fastgate.mock.bedrock_format import event
from fastgate.schema.openai import chat_decoder, json_encoder

DATA = pathlib.Path(__file__).parent.parent / "tests" / "data" / "bedrock"
REQUEST = (DATA / "openai_chat_request.json").read_bytes()
RESPONSE = (DATA / "converse_tool_use.json").read_bytes()
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
BUDGET = 3.0
_any = msgspec.json.Decoder()
DELTA = event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "The quick brown fox jumps "}})
DELTA_PAYLOAD = b'{"contentBlockIndex":0,"delta":{"text":"The quick brown fox jumps "},"p":"abcdefgh"}'


def realistic_stream(deltas: int = 400) -> bytes:
    """A long Claude answer: text deltas of 10-60 characters between the framing events."""
    words = ["Bedrock", "streams", "its", "answer", "as", "binary", "event-stream", "frames", "with", "CRCs"]
    frames = [event("messageStart", {"role": "assistant"})]
    for i in range(deltas):
        text = " ".join(words[: 2 + i % 9]) + " "
        frames.append(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}}))
    frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
    frames.append(event("messageStop", {"stopReason": "end_turn"}))
    frames.append(event("metadata", {"usage": {"inputTokens": 20, "outputTokens": 900, "totalTokens": 920}}))
    return b"".join(frames)


STREAM = realistic_stream()
READS = [STREAM[i : i + 1400] for i in range(0, len(STREAM), 1400)]  # one TCP segment per read


def best_of(fn: Callable[[], Any], loops: int = 300, repeats: int = 7) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def assert_within_budget(mapping: Callable[[], Any], floor: Callable[[], Any]) -> None:
    ratio = best_of(mapping) / best_of(floor)
    print(f"\nmapping / msgspec floor = {ratio:.2f}x (budget {BUDGET}x)")
    assert ratio <= BUDGET


def request_floor() -> bytes:
    return json_encoder.encode(chat_decoder.decode(REQUEST))


def response_floor() -> bytes:
    return json_encoder.encode(_any.decode(RESPONSE))


def event_floor() -> bytes:
    """Decode the event's JSON, encode the OpenAI chunk it becomes (no framing, no CRC)."""
    delta = _any.decode(DELTA_PAYLOAD)["delta"]
    chunk = {
        "id": "chatcmpl-x",
        "created": 0,
        "model": MODEL,
        "choices": [
            {"index": 0, "delta": {"content": delta["text"]}, "finish_reason": None, "logprobs": None}
        ],
        "object": "chat.completion.chunk",
        "provider": "bedrock",
    }
    return json_encoder.encode(chunk)


def map_event() -> bytes:
    mapper = BedrockStream(MODEL)
    return mapper.feed(DELTA)


@pytest.mark.benchmark(group="bedrock-request")
def test_request_floor(benchmark: Any) -> None:
    benchmark(request_floor)


@pytest.mark.benchmark(group="bedrock-request")
def test_request_mapping(benchmark: Any) -> None:
    benchmark(bedrock_chat_request, REQUEST)
    assert_within_budget(lambda: bedrock_chat_request(REQUEST), request_floor)


@pytest.mark.benchmark(group="bedrock-response")
def test_response_floor(benchmark: Any) -> None:
    benchmark(response_floor)


@pytest.mark.benchmark(group="bedrock-response")
def test_response_mapping(benchmark: Any) -> None:
    benchmark(bedrock_chat_response, RESPONSE, MODEL)
    assert_within_budget(lambda: bedrock_chat_response(RESPONSE, MODEL), response_floor)


@pytest.mark.benchmark(group="bedrock-stream-event")
def test_stream_event_floor(benchmark: Any) -> None:
    benchmark(event_floor)


@pytest.mark.benchmark(group="bedrock-stream-event")
def test_stream_event_mapping(benchmark: Any) -> None:
    mapper = BedrockStream(MODEL)
    mapper.feed(event("messageStart", {"role": "assistant"}))
    benchmark(mapper.feed, DELTA)
    # The event's share of a stream: decode the frame, map it, write one SSE chunk.
    mapper = BedrockStream(MODEL)
    mapper.feed(event("messageStart", {"role": "assistant"}))
    assert_within_budget(lambda: mapper.feed(DELTA), event_floor)


def decode_compiled() -> int:
    decoder = EventStreamDecoder()
    return sum(len(decoder.feed(read)) for read in READS)


def decode_botocore() -> int:
    buffer = EventStreamBuffer()
    count = 0
    for read in READS:
        buffer.add_data(read)
        count += sum(1 for _ in buffer)
    return count


@pytest.mark.benchmark(group="eventstream-decode")
def test_eventstream_decoder_throughput(benchmark: Any) -> None:
    assert decode_compiled() == decode_botocore() == 404
    benchmark(decode_compiled)
    ours = best_of(decode_compiled, loops=20)
    theirs = best_of(decode_botocore, loops=5)
    mb = len(STREAM) / 1e6
    print(
        f"\nevent-stream decode of {len(STREAM)} bytes in {len(READS)} reads: "
        f"compiled {mb / ours:.0f} MB/s, botocore {mb / theirs:.0f} MB/s ({theirs / ours:.1f}x)"
    )
    assert ours < theirs


@pytest.mark.benchmark(group="eventstream-decode")
def test_eventstream_botocore_baseline(benchmark: Any) -> None:
    benchmark(decode_botocore)
