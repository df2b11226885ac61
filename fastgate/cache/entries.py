"""What a cache entry holds and how it is replayed.

An entry is one kind byte and the answer as the upstream's mapping gave it: ``J`` + a JSON body,
or ``S`` + an SSE stream: OpenAI's (``chat.completion.chunk`` events ending in ``data: [DONE]``),
or Anthropic's as a native Messages target relays it (ending in ``message_stop``). A hit on a
streaming request is therefore replayed as a proper stream, and only a stream that finished
cleanly (its last event reached, no error event) is stored.
"""

from __future__ import annotations

JSON = b"J"
SSE = b"S"
_DONE = b"data: [DONE]\n\n"
_ERROR_EVENT = b'data: {"error":'


class StreamFormat:
    """How a stream of one format ends: its last event, and its error event's start."""

    __slots__ = ("error", "last")

    def __init__(self, last: bytes, error: bytes) -> None:
        self.last = last
        self.error = error


OPENAI_SSE = StreamFormat(_DONE, _ERROR_EVENT)
#: https://docs.anthropic.com/en/docs/build-with-claude/streaming: ``message_stop`` ends a stream,
#: an ``error`` event a failed one.
ANTHROPIC_SSE = StreamFormat(b"event: message_stop\n", b"event: error\n")


def json_entry(body: bytes) -> bytes:
    return JSON + body


#: Streams longer than this are relayed but not cached (the copy would live in memory).
MAX_STREAM_BYTES = 4 * 1024 * 1024


class StreamRecorder:
    """Collects a stream's output as it is written; ``entry()`` is None unless it ended cleanly.
    ``fmt`` None: a JSON body relayed as it came, whole once it ended."""

    __slots__ = ("fmt", "parts", "size")

    def __init__(self, fmt: StreamFormat | None = OPENAI_SSE) -> None:
        self.fmt = fmt
        self.parts: list[bytes] | None = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        if self.parts is None:
            return
        self.size += len(chunk)
        if self.size > MAX_STREAM_BYTES:
            self.parts = None
            return
        self.parts.append(chunk)

    def entry(self) -> bytes | None:
        if self.parts is None:
            return None
        data = b"".join(self.parts)
        fmt = self.fmt
        if fmt is None:
            return JSON + data
        last = data.rfind(fmt.last)
        if last < 0 or data.find(b"\n\n", last) != len(data) - 2 or fmt.error in data:
            return None
        return SSE + data
