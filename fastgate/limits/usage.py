"""Usage as responses report it: from an OpenAI JSON body, or from a stream's usage chunk.

Streams report usage only in a last chunk (``choices: []``) and only when the request asked
for it (``stream_options.include_usage``, OpenAI API reference, "Create chat completion").
When a token limit applies and the client did not ask, the gateway asks upstream itself
(:func:`with_stream_usage`) and :class:`UsageTap` removes that extra chunk before the client
sees it, so the client receives the stream it asked for.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate.schema.openai import Usage


class UsageView(msgspec.Struct):
    """What the stages read of an OpenAI answer: the model it names and its usage (the content
    is skipped by the decoder)."""

    model: str | None = None
    usage: Usage | None = None


class ChunkView(msgspec.Struct):
    model: str | None = None
    choices: list[msgspec.Raw] = []
    usage: Usage | None = None


usage_decoder = msgspec.json.Decoder(UsageView)
_chunk_decoder = msgspec.json.Decoder(ChunkView)
_USAGE_MARK = b'"usage":{'
_DATA = b"data: "
_END = b"\n\n"
INCLUDE_USAGE: dict[str, Any] = {"stream_options": {"include_usage": True}}


def body_usage(body: bytes) -> UsageView:
    """Usage of a JSON answer (zero when the body has none or is not an OpenAI object)."""
    try:
        return usage_decoder.decode(body)
    except msgspec.DecodeError:
        return UsageView()


def with_stream_usage(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``override_params`` that make the upstream report a stream's usage."""
    return {**(overrides or {}), **INCLUDE_USAGE}


class UsageTap:
    """Watches OpenAI SSE on its way to the client for the usage chunk.

    ``strip``: the client did not ask for usage, so the usage-only chunk is removed. Events are
    looked at only when they contain ``"usage":{``, so content chunks pass without a decode.
    """

    __slots__ = ("model", "pending", "strip", "usage")

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self.usage: Usage | None = None
        self.model: str | None = None
        self.pending = b""

    def feed(self, out: bytes) -> bytes:
        if not out or (not self.pending and _USAGE_MARK not in out and out.endswith(_END)):
            return out
        data = self.pending + out
        # Mappers write whole events, but an unfinished tail is kept until it completes, so a
        # usage event is never let through in halves.
        end = data.rfind(_END)
        if end < 0:
            self.pending = data
            return b""
        cut = end + 2
        self.pending = data[cut:]
        events = data[:cut].split(b"\n\n")
        kept: list[bytes] = []
        for event in events[:-1]:
            if _USAGE_MARK in event and event.startswith(_DATA):
                try:
                    chunk = _chunk_decoder.decode(event[len(_DATA) :])
                except msgspec.DecodeError:
                    chunk = ChunkView()
                if chunk.usage is not None:
                    self.usage = chunk.usage
                    self.model = chunk.model
                    if self.strip and not chunk.choices:
                        continue
            kept.append(event + b"\n\n")
        return b"".join(kept)

    def flush(self) -> bytes:
        """An unfinished last event, passed on as it is when the stream ends."""
        tail, self.pending = self.pending, b""
        return tail
