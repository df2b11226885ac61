"""What a cache entry holds and how it is replayed.

An entry is one kind byte and the answer the client received: ``J`` + an OpenAI JSON body, or
``S`` + the OpenAI SSE stream as written to the client (``chat.completion.chunk`` events ending
in ``data: [DONE]``). A hit on a streaming request is therefore replayed as a proper stream, and
only a stream that finished cleanly (``[DONE]`` reached, no error event) is stored.
"""

from __future__ import annotations

JSON = b"J"
SSE = b"S"
_DONE = b"data: [DONE]\n\n"
_ERROR_EVENT = b'data: {"error":'


def json_entry(body: bytes) -> bytes:
    return JSON + body


#: Streams longer than this are relayed but not cached (the copy would live in memory).
MAX_STREAM_BYTES = 4 * 1024 * 1024


class StreamRecorder:
    """Collects a stream's output as it is written; ``entry()`` is None unless it ended cleanly."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
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
        if not data.endswith(_DONE) or _ERROR_EVENT in data:
            return None
        return SSE + data
