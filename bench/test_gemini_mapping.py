"""Gemini mapping per call vs. the floor: decoding and re-encoding the same payload once with msgspec.

A mapping has to read the whole payload and write a whole new one, so one untyped msgspec
decode + encode of the same bytes is the least any implementation could do. The budget is 3x
that floor, for the request (OpenAI chat -> Gemini), the answer (GenerateContentResponse ->
chat.completion) and one stream event (SSE event -> chat.completion.chunk frame).
"""

from __future__ import annotations

import msgspec
import pytest

from bench.conftest import interleaved_ratio, require_measured
from fastgate._transforms import GeminiStream, gemini_chat_request, gemini_chat_response

BUDGET = 3.0

REQUEST = msgspec.json.encode(
    {
        "model": "gemini-2.0-flash",
        "messages": [
            {"role": "system", "content": "You are a helpful travel assistant. Answer briefly."},
            {"role": "user", "content": "What is the weather in Paris and in Rome today?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "Sunny, 21C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "Cloudy, 18C"},
            {"role": "user", "content": "Which one is warmer, and what should I pack?"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "city": {"type": "string", "description": "City name"},
                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                        },
                        "required": ["city"],
                        "additionalProperties": False,
                    },
                },
            }
        ],
        "temperature": 0.3,
        "max_tokens": 512,
        "stream": False,
    }
)

RESPONSE = msgspec.json.encode(
    {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {
                            "text": "Paris is warmer at 21C and sunny, while Rome is cloudy at 18C. "
                            "Pack light layers, sunglasses for Paris and a light jacket for Rome."
                        }
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "NEGLIGIBLE"},
                ],
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 143,
            "candidatesTokenCount": 36,
            "totalTokenCount": 179,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 143}],
        },
        "modelVersion": "gemini-2.0-flash",
        "responseId": "yJ5GaKzZLYu2nvgP_4uDqAU",
    }
)

EVENT_PAYLOAD = msgspec.json.encode(
    {
        "candidates": [{"content": {"role": "model", "parts": [{"text": " warmer at 21C and"}]}, "index": 0}],
        "usageMetadata": {"promptTokenCount": 143, "totalTokenCount": 143},
        "modelVersion": "gemini-2.0-flash",
        "responseId": "2MBGaOCBEo-inssP3fS-qQI",
    }
)
EVENT = b"data: " + EVENT_PAYLOAD + b"\r\n\r\n"

_decode = msgspec.json.decode
_encode = msgspec.json.encode


def floor(payload: bytes) -> bytes:
    return _encode(_decode(payload))


def map_request() -> bytes:
    return gemini_chat_request(REQUEST)[1]


def map_response() -> bytes:
    return gemini_chat_response(RESPONSE, "gemini-2.0-flash", "google")


STREAM = GeminiStream("gemini-2.0-flash", "google")


def map_event() -> bytes:
    return STREAM.feed(EVENT)


def test_mappings_produce_what_they_should() -> None:
    assert msgspec.json.decode(map_request())["contents"][1]["role"] == "model"
    assert msgspec.json.decode(map_response())["choices"][0]["finish_reason"] == "stop"
    assert b'"content":" warmer at 21C and"' in map_event()


@pytest.mark.benchmark(group="gemini-request")
def test_request_mapping(measure) -> None:
    measure(map_request)


@pytest.mark.benchmark(group="gemini-request")
def test_request_floor(measure) -> None:
    measure(floor, REQUEST)


@pytest.mark.benchmark(group="gemini-response")
def test_response_mapping(measure) -> None:
    measure(map_response)


@pytest.mark.benchmark(group="gemini-response")
def test_response_floor(measure) -> None:
    measure(floor, RESPONSE)


@pytest.mark.benchmark(group="gemini-stream-event")
def test_event_mapping(measure) -> None:
    measure(map_event)


@pytest.mark.benchmark(group="gemini-stream-event")
def test_event_floor(measure) -> None:
    measure(floor, EVENT_PAYLOAD)


def test_budget_mapping_within_3x_of_the_floor() -> None:
    require_measured("test_request_mapping", "test_request_floor")
    request = interleaved_ratio(map_request, lambda: floor(REQUEST))
    response = interleaved_ratio(map_response, lambda: floor(RESPONSE))
    event = interleaved_ratio(map_event, lambda: floor(EVENT_PAYLOAD))
    print(f"\ngemini mapping / floor: request {request:.2f}, response {response:.2f}, event {event:.2f}")
    assert request < BUDGET
    assert response < BUDGET
    assert event < BUDGET
