"""What the JSON decoder does not refuse on its own: bad UTF-8 it skips, duplicate keys it merges.

The view decoder reads three fields and skips the rest without validating their text, and
msgspec keeps the last of duplicate keys; a body forwarded untouched could then mean one thing
to the gateway and another to an upstream that keeps the first. Both checks cost a scan in C
on the common path (an ASCII body, each key once) and more work only when a body fails it.
"""

from __future__ import annotations

import json
from typing import Any

from fastgate.errors import bad_request

#: The top-level keys the gateway decides on (routing, streaming); must not be duplicated.
_READ_KEYS = ("model", "stream", "stream_options")
_QUOTED = tuple((key, f'"{key}"'.encode()) for key in _READ_KEYS)


def check_text(body: bytes) -> None:
    """A 400 for a body that is not UTF-8 (RFC 8259 §8.1: JSON text exchanged is UTF-8)."""
    if body.isascii():
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"Request body is not valid UTF-8 (byte {exc.start})") from None


def check_duplicate_keys(body: bytes) -> None:
    """A 400 when a key the gateway reads appears twice in the top-level object.

    A quoted key can only occur in JSON text as a string token, so a key seen once is never
    duplicated; only a body where it is seen more often is parsed again to look.
    """
    suspects = [key for key, quoted in _QUOTED if body.count(quoted) > 1]
    if not suspects:
        return
    seen: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        seen[:] = [k for k in suspects if keys.count(k) > 1]  # the outermost object is built last
        return dict(items)

    try:
        json.loads(body, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return  # the decoder that matters has already accepted it; nothing more to say here
    if seen:
        raise bad_request(f"Request body has the key {seen[0]!r} more than once", param=seen[0])
