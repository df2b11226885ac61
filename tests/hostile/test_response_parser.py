"""The upstream client's compiled response parser (``ResponseParser``) held to the request parser's
grammar: what an upstream sends means one thing, or it is an ``HTTPParseError`` (a 502, and the
connection is closed); a lenient reading would let one answer be read as two, or two as one.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import HTTPParseError, ResponseParser

OK = b"HTTP/1.1 200 OK\r\n"
CHUNKED = b"Transfer-Encoding: chunked\r\n"


def answer(*lines: bytes, status: bytes = OK) -> bytes:
    return status + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def verdict(data: bytes, cuts: list[int]) -> tuple[Any, ...]:
    """What one parser makes of ``data`` fed in the pieces ``cuts`` delimit."""
    p = ResponseParser()
    bounds = [0, *sorted(cuts), len(data)]
    body = []
    try:
        for start, end in pairwise(bounds):
            body += p.feed(data[start:end])
    except HTTPParseError:
        return ("refused",)
    return (p.done, p.status, p.headers, b"".join(body), p.keep_alive, p.leftover)


REFUSED: dict[str, bytes] = {
    "bare LF in a header line": answer(b"X-A: a\nInjected: 1", b"Content-Length: 0"),
    "bare CR in a header line": answer(b"X-A: a\rInjected: 1", b"Content-Length: 0"),
    "NUL in a value": answer(b"X-A: a\x00b", b"Content-Length: 0"),
    "DEL in a value": answer(b"X-A: a\x7fb", b"Content-Length: 0"),
    "ESC in the reason": answer(b"Content-Length: 0", status=b"HTTP/1.1 200 O\x1bK\r\n"),
    "obs-fold": answer(b"X-A: one", b" two", b"Content-Length: 0"),
    "obs-fold with a tab": answer(b"X-A: one", b"\tContent-Length: 5", b"Content-Length: 0"),
    "space in a field name": answer(b"X A: v", b"Content-Length: 0"),
    "space before the colon": answer(b"Content-Length : 0"),
    "parenthesis in a field name": answer(b"X(A): v", b"Content-Length: 0"),
    "non-ASCII field name": answer(b"X-\xc3\xa9: v", b"Content-Length: 0"),
    "empty field name": answer(b": v", b"Content-Length: 0"),
    "line without a colon": answer(b"X-A v", b"Content-Length: 0"),
    "four-digit status": answer(b"Content-Length: 0", status=b"HTTP/1.1 2000 OK\r\n"),
    "no space after the status": answer(b"Content-Length: 0", status=b"HTTP/1.1 200OK\r\n"),
    "two-digit status": answer(b"Content-Length: 0", status=b"HTTP/1.1 20 OK\r\n"),
    "status below 100": answer(b"Content-Length: 0", status=b"HTTP/1.1 099 Odd\r\n"),
    "no version": answer(b"Content-Length: 0", status=b"200 OK\r\n"),
    "HTTP/2 status line": answer(b"Content-Length: 0", status=b"HTTP/2 200 OK\r\n"),
    "lower-case version": answer(b"Content-Length: 0", status=b"http/1.1 200 OK\r\n"),
    "an empty line first": b"\r\n" + answer(b"Content-Length: 0"),
    "LF line ends": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "Transfer-Encoding gzip": answer(b"Transfer-Encoding: gzip") + b"ok",
    "Transfer-Encoding chunked, gzip": answer(b"Transfer-Encoding: chunked, gzip") + b"0\r\n\r\n",
    "Transfer-Encoding chunked twice": answer(CHUNKED[:-2], CHUNKED[:-2]) + b"0\r\n\r\n",
    "Transfer-Encoding chunked, chunked": answer(b"Transfer-Encoding: chunked, chunked") + b"0\r\n\r\n",
    "Transfer-Encoding ending in chunked": answer(b"Transfer-Encoding: xchunked") + b"0\r\n\r\n",
    "empty Transfer-Encoding": answer(b"Transfer-Encoding:", b"Content-Length: 2") + b"ok",
    "space after the chunk size": answer(CHUNKED[:-2]) + b"2 \r\nok\r\n0\r\n\r\n",
    "text after the chunk size": answer(CHUNKED[:-2]) + b"2 garbage\r\nok\r\n0\r\n\r\n",
    "bare LF in a chunk extension": answer(CHUNKED[:-2]) + b"2;a\nb\r\nok\r\n0\r\n\r\n",
    "chunk extension not a token": answer(CHUNKED[:-2]) + b"2;a=b c\r\nok\r\n0\r\n\r\n",
    "bare LF ending a chunk": answer(CHUNKED[:-2]) + b"2\r\nok\n0\r\n\r\n",
    "trailer without a colon": answer(CHUNKED[:-2]) + b"2\r\nok\r\n0\r\nnot a field\r\n\r\n",
    "bare LF in a trailer": answer(CHUNKED[:-2]) + b"2\r\nok\r\n0\r\nX-T: a\nb\r\n\r\n",
}


@pytest.mark.parametrize("case", REFUSED)
def test_refused(case: str) -> None:
    raw = REFUSED[case]
    with pytest.raises(HTTPParseError):
        ResponseParser().feed(raw)
    # However the bytes are cut: a byte per read, and in sevens.
    assert verdict(raw, list(range(len(raw)))) == ("refused",)
    assert verdict(raw, list(range(0, len(raw), 7))) == ("refused",)


def test_an_answer_with_lf_line_ends_is_refused_before_the_next_arrives() -> None:
    """Read as a head that has not ended, it would take the next answer's bytes as its own."""
    p = ResponseParser()
    with pytest.raises(HTTPParseError):
        p.feed(b"HTTP/1.1 200 OK\nContent-Length: 2\n")


@pytest.mark.parametrize(
    ("raw", "status", "headers", "body"),
    [
        (
            answer(b"Content-Length: 2", status=b"HTTP/1.1 200\r\n") + b"ok",
            200,
            [("content-length", "2")],
            b"ok",
        ),
        (answer(b"Content-Length: 0", status=b"HTTP/1.1 204 \r\n"), 204, [("content-length", "0")], b""),
        (
            answer(b"X-T: caf\xc3\xa9\t!", b"Content-Length: 0"),
            200,
            [("x-t", "café\t!"), ("content-length", "0")],
            b"",
        ),
        (
            answer(b"Transfer-Encoding: Chunked") + b'2 ;a=b;c="d e"\r\nok\r\n0\r\nX-T: 1\r\n\r\n',
            200,
            [("transfer-encoding", "Chunked")],
            b"ok",
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            + answer(b"Content-Length: 2")
            + b"ok",
            200,
            [("content-length", "2")],
            b"ok",
        ),
    ],
)
def test_valid_answers_are_read(raw: bytes, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    whole = verdict(raw, [])
    assert whole[:4] == (True, status, headers, body)
    assert verdict(raw, list(range(len(raw)))) == whole


@pytest.mark.parametrize(
    ("fields", "keep_alive"),
    [
        ((b"Content-Length: 0",), True),
        ((b"Connection: close", b"Content-Length: 0"), False),
        # Every Connection field is a list of options, and a close in any of them wins.
        ((b"Connection: close", b"Connection: keep-alive", b"Content-Length: 0"), False),
        ((b"Connection: keep-alive, Close", b"Content-Length: 0"), False),
        ((b"Connection: closed", b"Content-Length: 0"), True),
        # A coding besides chunked, or a Content-Length beside it: read as chunked, not reused.
        ((b"Transfer-Encoding: gzip, chunked",), False),
        ((b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"), False),
        ((b"Transfer-Encoding: chunked", b"Content-Length: 2"), False),
        ((b"Transfer-Encoding: chunked",), True),
        ((b"Transfer-Encoding: ,chunked;", b"Connection: keep-alive"), True),
    ],
)
def test_keep_alive(fields: tuple[bytes, ...], keep_alive: bool) -> None:
    chunked = any(f.lower().startswith(b"transfer-encoding") for f in fields)
    done, *_, kept, leftover = verdict(answer(*fields) + (b"0\r\n\r\n" if chunked else b""), [])
    assert (done, kept, leftover) == (True, keep_alive, b"")


@pytest.mark.parametrize(
    ("version", "fields", "keep_alive"),
    [
        (b"HTTP/1.0", (), False),
        (b"HTTP/1.0", (b"Connection: Keep-Alive",), True),
        (b"HTTP/1.0", (b"Connection: keep-alive", b"Connection: close"), False),
    ],
)
def test_keep_alive_of_http_1_0(version: bytes, fields: tuple[bytes, ...], keep_alive: bool) -> None:
    raw = answer(*fields, b"Content-Length: 0", status=version + b" 200 OK\r\n")
    assert verdict(raw, [])[4] is keep_alive


def test_a_read_of_tiny_chunks_is_one_piece() -> None:
    """One piece per read, however many chunks carried it: no object per chunk."""
    p = ResponseParser()
    assert p.feed(answer(CHUNKED[:-2])) == []
    pieces = p.feed(b"1\r\nx\r\n" * 10_000)
    assert pieces == [b"x" * 10_000]
    assert p.feed(b"0\r\n\r\n") == [] and p.done


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_cut_of_an_answer_gives_the_same_reading(data: st.DataObject) -> None:
    raw = data.draw(st.sampled_from([*REFUSED.values()]))
    fields = data.draw(st.lists(st.sampled_from([b"X-A: 1", b"Connection: close", b"X-B:\tv v"]), max_size=3))
    body = data.draw(st.binary(max_size=40))
    framed = [
        answer(*fields, b"Content-Length: %d" % len(body)) + body,
        answer(*fields, CHUNKED[:-2]) + (b"%x\r\n%b\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n",
        raw,
    ]
    for whole in framed:
        cuts = data.draw(st.lists(st.integers(0, len(whole)), max_size=8))
        assert verdict(whole, cuts) == verdict(whole, [])
