"""What a recorded stream becomes in the cache."""

from __future__ import annotations

import pytest

from fastgate.cache import entries
from fastgate.cache.entries import SSE, StreamRecorder

CHUNK = b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"}}]}\n\n'
DONE = b"data: [DONE]\n\n"


def test_a_clean_stream_is_an_entry() -> None:
    recorder = StreamRecorder()
    for part in (CHUNK, CHUNK, DONE):
        recorder.add(part)
    assert recorder.entry() == SSE + CHUNK + CHUNK + DONE


@pytest.mark.parametrize(
    "parts",
    [
        [CHUNK],  # never finished
        [CHUNK, b'data: {"error":{"message":"boom","type":"api_error"}}\n\n', DONE],  # error event
    ],
)
def test_unfinished_or_failed_streams_are_not(parts: list[bytes]) -> None:
    recorder = StreamRecorder()
    for part in parts:
        recorder.add(part)
    assert recorder.entry() is None


def test_a_stream_over_the_size_bound_is_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(entries, "MAX_STREAM_BYTES", len(CHUNK) * 2)
    recorder = StreamRecorder()
    for part in (CHUNK, CHUNK, CHUNK, DONE):
        recorder.add(part)
    assert recorder.entry() is None
    assert recorder.parts is None


START = b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}\n\n'
STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
ERROR = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'


@pytest.mark.parametrize(
    ("parts", "stored"),
    [
        ([START, STOP], True),
        ([START], False),  # never finished
        ([START, ERROR], False),  # Anthropic's error event
        ([START, STOP, ERROR], False),
        ([START, STOP[:-2]], False),  # the last event cut short
    ],
)
def test_an_anthropic_stream_is_an_entry_only_when_it_reached_message_stop(
    parts: list[bytes], stored: bool
) -> None:
    recorder = StreamRecorder(entries.ANTHROPIC_SSE)
    for part in parts:
        recorder.add(part)
    assert recorder.entry() == (SSE + b"".join(parts) if stored else None)


def test_a_relayed_json_body_is_a_json_entry() -> None:
    recorder = StreamRecorder(None)
    for part in (b'{"type": "mes', b'sage"}'):
        recorder.add(part)
    assert recorder.entry() == entries.JSON + b'{"type": "message"}'
