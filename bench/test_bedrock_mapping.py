"""Bedrock mapping cost against the msgspec floor, and the event-stream decoder's throughput.

Budget: each mapping at most 3x the msgspec decode+encode floor of the same payload, the two
timed alternately (bench/conftest's ``interleaved_ratio``: the request ratio's pytest-benchmark
medians, measured one after the other, moved 1.9-3.25x between runs). The decoder is compared
with botocore's pure-Python ``EventStreamBuffer`` (the idiomatic way) on the same realistic
multi-frame stream in TCP-segment-sized reads, and its MB/s printed.
Run: ``pytest bench/test_bedrock_mapping.py --benchmark-group-by=group -s``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from botocore.eventstream import EventStreamBuffer

from bench.conftest import MEDIANS, interleaved_ratio, require_measured
from fastgate._transforms import (
    BedrockStream,
    EventStreamDecoder,
    bedrock_chat_request,
    bedrock_chat_response,
)
from fastgate.mock.bedrock_format import event
from fastgate.schema.openai import chat_decoder, json_encoder

BUDGET = 3.0
DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "bedrock"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
REQUEST = (DATA / "openai_chat_request.json").read_bytes()
RESPONSE = (DATA / "converse_tool_use.json").read_bytes()
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


def _open_stream() -> BedrockStream:
    mapper = BedrockStream(MODEL)
    mapper.feed(event("messageStart", {"role": "assistant"}))
    return mapper


_MAPPER = _open_stream()
CASES = {
    "request": (
        lambda: json_encoder.encode(chat_decoder.decode(REQUEST)),
        lambda: bedrock_chat_request(REQUEST),
    ),
    "response": (
        lambda: json_encoder.encode(_any.decode(RESPONSE)),
        lambda: bedrock_chat_response(RESPONSE, MODEL),
    ),
    # One text delta through an open stream: frame decode and CRCs, mapping, one SSE chunk.
    "stream-event": (event_floor, lambda: _MAPPER.feed(DELTA)),
}


@pytest.mark.parametrize("side", ["floor", "mapping"])
@pytest.mark.parametrize("group", list(CASES))
def test_bedrock(benchmark: Any, measure: Any, group: str, side: str) -> None:
    benchmark.group = f"bedrock-{group}"
    floor, mapping = CASES[group]
    measure(floor if side == "floor" else mapping)


def test_budget_bedrock_mapping_within_3x_of_msgspec_floor() -> None:
    require_measured("test_bedrock[request-mapping]", "test_bedrock[request-floor]")
    ratios = {g: interleaved_ratio(mapping, floor) for g, (floor, mapping) in CASES.items()}
    print("\nbedrock mapping / msgspec floor:", {g: round(r, 2) for g, r in ratios.items()})
    assert all(r <= BUDGET for r in ratios.values()), ratios


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


def test_decoders_agree() -> None:
    assert decode_compiled() == decode_botocore() == 404


@pytest.mark.benchmark(group="eventstream-decode")
def test_eventstream_compiled(measure: Any) -> None:
    measure(decode_compiled)


@pytest.mark.benchmark(group="eventstream-decode")
def test_eventstream_botocore(measure: Any) -> None:
    measure(decode_botocore)


def test_budget_eventstream_decoder_beats_botocore() -> None:
    require_measured("test_eventstream_compiled", "test_eventstream_botocore")
    relative = interleaved_ratio(decode_compiled, decode_botocore, rounds=20, number=5)
    megabytes = len(STREAM) / 1e6
    print(
        f"\nevent-stream decode, {len(STREAM)} bytes in {len(READS)} reads: "
        f"compiled {megabytes / MEDIANS['test_eventstream_compiled']:.0f} MB/s, "
        f"botocore {megabytes / MEDIANS['test_eventstream_botocore']:.0f} MB/s"
    )
    assert relative < 1.0
