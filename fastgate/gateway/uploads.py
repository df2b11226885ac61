"""An upload's body as the upstream attempts read it: streamed, and sent again when it can be.

The client's body arrives once (``server/upload.py``) and goes to the upstream as it arrives. A
retry or a fallback needs it from its start again: what was read is kept while it stays within
``REPLAY_BYTES``, so an upload that small (most audio clips) can be retried and fall back like any
request; a larger one is sent once, and its first answer is final. Reading the leading fields of a
multipart form (``model`` comes before the file in what the SDKs send) uses the same buffer: the
upstream then gets the body from its first byte.
"""

from __future__ import annotations

import re

from fastgate.server.upload import BodyStream

#: Bytes of an upload kept so that another attempt can send it again.
REPLAY_BYTES = 4 * 1024 * 1024
#: How much of a multipart body is looked through for the fields before its first file.
_FORM_HEAD_BYTES = 64 * 1024
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(rb'\bname="([^"]*)"', re.IGNORECASE)
_FILENAME = re.compile(rb"\bfilename\*?=", re.IGNORECASE)


class ReplayableBody:
    """Reads a ``BodyStream`` for an upstream attempt; ``rewind`` starts a new attempt at the
    first byte (``replayable`` says whether it still can)."""

    __slots__ = ("_at", "_kept", "_kept_size", "_stream", "length", "replayable")

    def __init__(self, stream: BodyStream) -> None:
        self._stream = stream
        self.length = stream.length
        self._kept: list[bytes] = []
        self._kept_size = 0
        #: The next kept piece to replay (== len(_kept): read from the client).
        self._at = 0
        self.replayable = True

    async def read(self) -> bytes | None:
        if self._at < len(self._kept):
            self._at += 1
            return self._kept[self._at - 1]
        piece = await self._stream.read()
        if piece is None:
            return None
        if piece and self.replayable:
            if self._kept_size + len(piece) > REPLAY_BYTES:
                self.replayable = False
                self._kept.clear()
                self._at = 0
            else:
                self._kept.append(piece)
                self._kept_size += len(piece)
                self._at += 1
        return piece

    def wake(self) -> None:
        self._stream.wake()

    def rewind(self) -> None:
        """The next read is the body's first byte again (only while ``replayable``)."""
        assert self.replayable, "an upload past REPLAY_BYTES is sent once"
        self._at = 0

    async def form_fields(self, content_type: str) -> dict[str, str]:
        """The text fields of a multipart form (RFC 7578) that come before its first file, read
        from at most its first 64 KiB; the body is rewound to its start afterwards."""
        match = _BOUNDARY.search(content_type)
        if match is None:
            return {}
        delimiter = b"--" + match.group(1).encode("latin-1")
        head = b""
        while len(head) < _FORM_HEAD_BYTES and _FILENAME.search(head) is None:
            piece = await self.read()
            if piece is None:
                continue
            if not piece:
                break
            head += piece
        if self.replayable:
            self.rewind()
        return _leading_fields(head[:_FORM_HEAD_BYTES], delimiter)


def _leading_fields(head: bytes, delimiter: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for part in head.split(delimiter)[1:]:
        headers, sep, value = part.partition(b"\r\n\r\n")
        if not sep or _FILENAME.search(headers):
            break  # a file (or a part cut short by the look's end): the fields before it are all
        name = _NAME.search(headers)
        if name is None or not value.endswith(b"\r\n"):
            break
        fields[name.group(1).decode("utf-8", "replace")] = value[:-2].decode("utf-8", "replace")
    return fields
