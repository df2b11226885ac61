"""Reading the SSE bodies the gateway and the mock write."""

from __future__ import annotations

from typing import Any

import msgspec


def frames(raw: bytes) -> list[bytes]:
    """The events of an SSE body (split on blank lines), in order."""
    return [frame for frame in raw.split(b"\n\n") if frame]


def data_payloads(raw: bytes) -> list[bytes]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: ")]


def openai_chunks(raw: bytes) -> list[Any]:
    """An OpenAI stream's chunks decoded, ``"[DONE]"`` for its terminator; every event must be
    one ``data:`` line, as OpenAI writes them."""
    out: list[Any] = []
    for frame in frames(raw):
        assert frame.startswith(b"data: "), frame
        payload = frame[6:]
        out.append("[DONE]" if payload == b"[DONE]" else msgspec.json.decode(payload))
    return out


def named_events(raw: bytes) -> list[tuple[str, Any]]:
    """``(event name, decoded data)`` of a stream that names its events (Anthropic's), each event
    one ``event:`` line and one ``data:`` line."""
    out: list[tuple[str, Any]] = []
    for frame in frames(raw):
        event, data = frame.split(b"\n")
        assert event.startswith(b"event: ") and data.startswith(b"data: "), frame
        out.append((event[7:].decode(), msgspec.json.decode(data[6:])))
    return out
