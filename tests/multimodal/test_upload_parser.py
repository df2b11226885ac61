"""The request parser's streamed bodies: which requests stream, their pieces in any split, their
own limit, and the request pipelined after one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastgate._transforms import RequestParser, RequestRefused

UPLOADS = (frozenset({"/v1/files", "/v1/audio/transcriptions"}), (("/v1/uploads/", "/parts"),))


def parser(max_body: int = 1000, max_upload: int = 100_000) -> RequestParser:
    return RequestParser(max_body, max_upload, UPLOADS)


def head(path: str, framing: str, method: str = "POST") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n".encode()


@pytest.mark.parametrize(
    ("method", "path", "streams"),
    [
        ("POST", "/v1/files", True),
        ("POST", "/v1/files?purpose=batch", True),
        ("POST", "/v1/uploads/upload_abc/parts", True),
        ("POST", "/v1/uploads//parts", False),  # the parameter is a segment of its own
        ("POST", "/v1/uploads/upload_abc/complete", False),
        ("POST", "/v1/chat/completions", False),
        ("PUT", "/v1/files", False),
    ],
)
def test_which_requests_stream(method: str, path: str, streams: bool) -> None:
    p = parser()
    p.feed(head(path, "Content-Length: 5", method) + b"hello")
    assert p.streams_body is streams
    if streams:
        assert p.body == b"" and p.take_piece() == b"hello"
    else:
        assert p.body == b"hello"


@given(
    body=st.binary(min_size=1, max_size=3000),
    cuts=st.lists(st.integers(0, 3200), max_size=8),
    chunked=st.booleans(),
)
def test_pieces_are_the_body_however_it_is_split(body: bytes, cuts: list[int], chunked: bool) -> None:
    if chunked:
        framed = b"".join(
            b"%x\r\n%b\r\n" % (len(body[i : i + 700]), body[i : i + 700]) for i in range(0, len(body), 700)
        )
        raw = head("/v1/files", "Transfer-Encoding: chunked") + framed + b"0\r\n\r\n"
    else:
        raw = head("/v1/files", f"Content-Length: {len(body)}") + body
    p = parser()
    got, done, at = b"", False, 0
    for cut in [*sorted(c for c in cuts if c < len(raw)), len(raw)]:
        done = p.feed(raw[at:cut])
        got += p.take_piece()
        at = cut
    assert done and p.streams_body
    assert got == body


def test_an_upload_has_its_own_limit() -> None:
    p = parser(max_body=10, max_upload=50)
    p.feed(head("/v1/files", "Content-Length: 40"))  # over max_body, within max_upload
    assert p.streams_body and p.body_length == 40
    with pytest.raises(RequestRefused) as refused:
        parser(max_body=10, max_upload=50).feed(head("/v1/files", "Content-Length: 51"))
    assert refused.value.status == 413
    chunked = parser(max_body=10, max_upload=50)
    chunked.feed(head("/v1/files", "Transfer-Encoding: chunked") + b"1e\r\n" + b"a" * 30 + b"\r\n")
    with pytest.raises(RequestRefused) as midway:
        chunked.feed(b"1e\r\n")
    assert midway.value.status == 413


def test_the_request_after_a_streamed_body_waits_its_turn() -> None:
    p = parser()
    nxt = head("/v1/chat/completions", "Content-Length: 2") + b"{}"
    assert p.feed(head("/v1/files", "Content-Length: 3") + b"abc" + nxt)
    assert p.take_piece() == b"abc"
    p.reset()
    assert p.feed(b"") and p.body == b"{}" and not p.streams_body
