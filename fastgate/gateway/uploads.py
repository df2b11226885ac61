"""An upload's body as the upstream attempts read it: streamed, and sent again when it can be.

The client's body arrives once (``server/upload.py``) and goes to the upstream as it arrives. A
retry or a fallback needs it from its start again: what was read is kept while it stays within
``REPLAY_BYTES``, so an upload that small (most audio clips) can be retried and fall back like any
request; a larger one is sent once, and its first answer is final. Reading the leading fields of a
multipart form (``model`` comes before the file in what the SDKs send) uses the same buffer: the
upstream then gets the body from its first byte, those fields changed where a target's
``override_params`` says so (``with_fields``: a model routed as ``groq/whisper-large-v3`` reaches
Groq as ``whisper-large-v3``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from fastgate.providers.base import BodySource
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

    __slots__ = ("_at", "_form", "_kept", "_kept_size", "_stream", "length", "replayable")

    def __init__(self, stream: BodyStream) -> None:
        self._stream = stream
        self.length = stream.length
        self._kept: list[bytes] = []
        self._kept_size = 0
        #: The next kept piece to replay (== len(_kept): read from the client).
        self._at = 0
        self.replayable = True
        #: The form's leading fields as read (their bytes, before the first file's part), and
        #: each field's name, value and where its value lies in them.
        self._form: tuple[bytes, list[tuple[str, str, int, int]]] | None = None

    async def read(self) -> bytes | None:
        if self._at < len(self._kept):
            self._at += 1
            return self._kept[self._at - 1]
        piece = await self._stream.read()
        if piece:
            self._keep(piece)
        return piece

    def _keep(self, piece: bytes) -> None:
        """A piece read from the client, kept while the body is within ``REPLAY_BYTES``."""
        if self.replayable:
            if self._kept_size + len(piece) > REPLAY_BYTES:
                self.replayable = False
                self._kept.clear()
                self._at = 0
            else:
                self._kept.append(piece)
                self._kept_size += len(piece)
                self._at += 1

    def wake(self) -> None:
        self._stream.wake()

    def attach(self, sink: Callable[[bytes], None]) -> bool:
        """Pieces pushed to ``sink`` as they arrive (kept too, while the body is replayable),
        once the kept ones have all been read again; False until then."""
        if self._at < len(self._kept):
            return False

        def kept(piece: bytes) -> None:
            self._keep(piece)
            sink(piece)

        return self._stream.attach(kept)

    def detach(self) -> None:
        self._stream.detach()

    def throttle(self, held: bool) -> None:
        self._stream.throttle(held)

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
        if not self.replayable:
            return {}
        self.rewind()
        head = head[:_FORM_HEAD_BYTES]
        fields, end = _leading_fields(head, delimiter)
        if end >= 0:
            self._form = (head[:end], fields)
        return {name: value for name, value, _, _ in fields}

    def with_fields(self, values: Mapping[str, object]) -> BodySource:
        """The body with the values of these leading form fields replaced (a field the form
        does not have is not added), as the next attempt reads it from its first byte."""
        if self._form is None:
            return self
        head, fields = self._form
        out, at = [], 0
        for name, value, start, end in fields:
            if name in values and isinstance(values[name], str | int | float) and str(values[name]) != value:
                out += [head[at:start], str(values[name]).encode()]
                at = end
        if not out:
            return self
        return _RewrittenForm(self, b"".join(out) + head[at:], len(head))


class _RewrittenForm:
    """A form whose first ``skip`` bytes are sent as ``prefix`` instead."""

    __slots__ = ("_body", "_prefix", "_skip", "length")

    def __init__(self, body: ReplayableBody, prefix: bytes, skip: int) -> None:
        self._body = body
        self._prefix = prefix
        self._skip = skip
        self.length = body.length + len(prefix) - skip if body.length >= 0 else -1

    async def read(self) -> bytes | None:
        if not self._skip:
            return await self._body.read()
        got = b""  # the leading fields were kept when they were first read: no wait for them
        while len(got) < self._skip:
            piece = await self._body.read()
            if piece is None:
                continue
            if not piece:
                break
            got += piece
        rest, self._skip = got[self._skip :], 0
        return self._prefix + rest

    def wake(self) -> None:
        self._body.wake()

    def attach(self, sink: Callable[[bytes], None]) -> bool:
        return not self._skip and self._body.attach(sink)

    def detach(self) -> None:
        self._body.detach()

    def throttle(self, held: bool) -> None:
        self._body.throttle(held)

    def with_fields(self, values: Mapping[str, object]) -> BodySource:
        return self


def _leading_fields(head: bytes, delimiter: bytes) -> tuple[list[tuple[str, str, int, int]], int]:
    """The text fields before the first file: (name, value, value's start, value's end), and
    where the first file's part begins (-1: not within ``head``)."""
    fields: list[tuple[str, str, int, int]] = []
    at = head.find(delimiter)
    while at >= 0:
        headers_at = at + len(delimiter)
        blank = head.find(b"\r\n\r\n", headers_at)
        if blank < 0:
            return fields, -1
        headers = head[headers_at:blank]
        if _FILENAME.search(headers):
            return fields, at
        name = _NAME.search(headers)
        following = head.find(b"\r\n" + delimiter, blank + 4)
        if name is None or following < 0:
            return fields, -1
        value = head[blank + 4 : following]
        fields.append(
            (name.group(1).decode("utf-8", "replace"), value.decode("utf-8", "replace"), blank + 4, following)
        )
        at = following + 2
    return fields, -1
