"""What the JSON decoder does not refuse on its own: bad UTF-8 it skips, duplicate keys it merges.

The view decoder reads three fields and skips the rest without validating their text, and
msgspec keeps the last of duplicate keys; a body forwarded untouched could then mean one thing
to the gateway and another to an upstream that keeps the first. The body checks cost a scan in
C on the common path (an ASCII body, each key once) and more work only when a body fails it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastgate._transforms import quoted_twice
from fastgate.errors import bad_request

#: The top-level keys the gateway decides on (routing, streaming); must not be duplicated.
_READ_KEYS = ("model", "stream", "stream_options")
_QUOTED = tuple(f'"{key}"'.encode() for key in _READ_KEYS)


def check_text(body: bytes) -> None:
    """A 400 for a body that is not UTF-8 (RFC 8259 §8.1: JSON text exchanged is UTF-8)."""
    if body.isascii():
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"Request body is not valid UTF-8 (byte {exc.start})") from None


def duplicate_key(
    text: str | bytes, keys: Iterable[str] | None = None, *, top_level: bool = False
) -> str | None:
    """The first key that occurs twice in one object of ``text`` (only ``keys``, if given).

    ``text`` must already be known to be valid JSON: anything the parser refuses says None.
    """
    wanted = None if keys is None else frozenset(keys)
    found: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        names = [k for k, _ in items]
        dups = [k for k in names if (wanted is None or k in wanted) and names.count(k) > 1]
        if top_level:
            found[:] = dups[:1]  # objects are built inside out: the outermost one comes last
        elif dups and not found:
            found.append(dups[0])
        return dict(items)

    try:
        json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None
    return found[0] if found else None


def check_duplicate_keys(body: bytes) -> None:
    """A 400 when a key the gateway reads appears twice in the top-level object.

    A quoted key can only occur in JSON text as a string token, so a key seen once is never
    duplicated; only a body where it is seen more often (one compiled pass over the quote marks
    finds them) is parsed again to look.
    """
    twice = quoted_twice(body, _QUOTED)
    if not twice:  # most bodies: no comprehension (a frame of its own) made for nothing
        return
    suspects = [quoted[1:-1].decode() for quoted in twice]
    if (key := duplicate_key(body, suspects, top_level=True)) is not None:
        raise bad_request(f"Request body has the key {key!r} more than once", param=key)
