"""The compiled pass that picks which read keys a body may hold twice."""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import quoted_twice

KEYS = (b'"model"', b'"stream"', b'"stream_options"')


def _overlapping(body: bytes, key: bytes) -> int:
    return sum(1 for i in range(len(body)) if body.startswith(key, i))


def test_keys_seen_twice_are_named_in_order() -> None:
    body = b'{"model":"a","stream":true,"messages":[{"content":"model"}],"model":"b"}'
    assert quoted_twice(body, KEYS) == [b'"model"']
    assert quoted_twice(b'{"stream":1,"stream_options":{},"stream":2,"model":"m"}', KEYS) == [b'"stream"']
    assert quoted_twice(b"", KEYS) == []
    assert quoted_twice(b'"', KEYS) == []  # a quote as the last byte


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from([*KEYS, b'"', b"model", b"stream", b":", b",", b"{", b"}", b"x", b'"mode"']),
        max_size=30,
    )
)
def test_never_misses_a_repeated_key(pieces: list[bytes]) -> None:
    """Every key found twice by a plain search is named; nothing named occurs only once."""
    body = b"".join(pieces)
    named = quoted_twice(body, KEYS)
    for key in KEYS:
        if body.count(key) > 1:
            assert key in named
    for key in named:
        assert _overlapping(body, key) > 1


def test_real_request_body() -> None:
    body = msgspec.json.encode(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert quoted_twice(body, KEYS) == []
