"""Cohere mapping cost against the msgspec floor: decoding the input into its Structs and
encoding them back, which any mapping must at least do. Budget: 3x the floor, the two timed
alternately (bench/conftest's ``interleaved_ratio``). Run:
``pytest bench/test_cohere_mapping.py --benchmark-group-by=group``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from bench.conftest import interleaved_ratio, require_measured
from fastgate._transforms import CohereStream, cohere_chat_request, cohere_chat_response
from fastgate.schema.cohere import cohere_chat_response_decoder, cohere_stream_event_decoder
from fastgate.schema.openai import chat_decoder, json_encoder

BUDGET = 3.0
DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "cohere"

REQUEST = msgspec.json.encode(
    {
        "model": "command-a-03-2025",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant. " * 10},
            *(
                {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}: " + "words " * 40}
                for i in range(8)
            ),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"x"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "result " * 20},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": f"tool_{i}",
                    "description": "does a thing",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                },
            }
            for i in range(4)
        ],
        "temperature": 0.3,
        "top_p": 0.9,
        "max_tokens": 512,
        "stop": ["END"],
    }
)
RESPONSE = (DATA / "chat_response.json").read_bytes()
_TEXT = [e for e in (DATA / "chat_stream.sse").read_bytes().split(b"\n\n") if e.strip()]
_TOOLS = [e for e in (DATA / "chat_stream_tools.sse").read_bytes().split(b"\n\n") if e.strip()]
#: One message: the recorded text events, then the recorded tool-call events and message-end.
STREAM = b"\n\n".join(_TEXT[:-1] + _TOOLS[1:]) + b"\n\n"
EVENTS = [line[len(b"data: ") :] for line in STREAM.splitlines() if line.startswith(b"data: ")]


def _stream_floor() -> None:
    for data in EVENTS:
        json_encoder.encode(cohere_stream_event_decoder.decode(data))


def _stream_mapping() -> None:
    mapper = CohereStream("command-a-03-2025", include_usage=True)
    mapper.feed(STREAM)
    mapper.finish()


CASES = {
    "request": (
        lambda: json_encoder.encode(chat_decoder.decode(REQUEST)),
        lambda: cohere_chat_request(REQUEST),
    ),
    "response": (
        lambda: json_encoder.encode(cohere_chat_response_decoder.decode(RESPONSE)),
        lambda: cohere_chat_response(RESPONSE, "command-a-03-2025"),
    ),
    "stream": (_stream_floor, _stream_mapping),
}


@pytest.mark.parametrize("side", ["floor", "mapping"])
@pytest.mark.parametrize("group", list(CASES))
def test_cohere(benchmark: Any, measure: Any, group: str, side: str) -> None:
    benchmark.group = f"cohere-{group}"
    floor, mapping = CASES[group]
    measure(floor if side == "floor" else mapping)


def test_budget_cohere_mapping_within_3x_of_msgspec_floor() -> None:
    require_measured("test_cohere[request-mapping]", "test_cohere[request-floor]")
    ratios = {g: interleaved_ratio(mapping, floor) for g, (floor, mapping) in CASES.items()}
    print("\ncohere mapping / msgspec floor:", {g: round(r, 2) for g, r in ratios.items()})
    assert all(r <= BUDGET for r in ratios.values()), ratios
