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


class StreamRecorder:
    """Collects a stream's output as it is written; ``entry()`` is None unless it ended cleanly."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        self.parts.append(chunk)

    def entry(self) -> bytes | None:
        data = b"".join(self.parts)
        if not data.endswith(_DONE) or _ERROR_EVENT in data:
            return None
        return SSE + data
