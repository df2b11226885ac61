"""Helpers shared by the google and vertex-ai tests: clients, headers, recorded payloads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
from openai import AsyncOpenAI

from tests.conftest import Gateway, Upstream
from tests.support.sdk import openai_client

DATA = Path(__file__).parent.parent / "data" / "google"
GOOGLE_KEY = "AIza-test-key-0123456789"
MODEL = "gemini-2.0-flash"
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "strict": True,
        "parameters": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
            },
            "required": ["city"],
        },
    },
}


def recorded(name: str) -> bytes:
    return (DATA / name).read_bytes()


def mock_root(upstream: Upstream) -> str:
    return str(upstream.server.make_url("")).rstrip("/")


def google_headers(upstream: Upstream, **extra: str) -> dict[str, str]:
    """x-portkey-* headers sending ``google`` traffic to the mock (the key comes from the client)."""
    return {"x-portkey-provider": "google", "x-portkey-custom-host": mock_root(upstream) + "/v1beta", **extra}


def client(gateway: Gateway, headers: dict[str, str], key: str = GOOGLE_KEY) -> AsyncOpenAI:
    return openai_client(gateway.url + "/v1", headers, key)


def sent(upstream: Upstream, index: int = -1) -> dict[str, Any]:
    """The JSON body of a request the mock received."""
    return msgspec.json.decode(upstream.requests[index]["body"])
