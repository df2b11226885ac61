"""The compiled request parser (``RequestParser``) against valid, hostile and random bytes.

The properties that keep request smuggling out: however a connection's bytes are cut into
reads, the parser reaches the same verdict (the same request, the same refusal, or "not yet");
random and mutated bytes end only in ``RequestRefused``; pipelined requests come out one by one,
each exactly as it was sent. Then each refusal the server relies on, one by one.
"""

from __future__ import annotations

import string
import time
import tracemalloc
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgate._transforms import RequestParser, RequestRefused, response_head

MAX_BODY = 4096
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TCHAR = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
#: Header names the generator leaves to the framing it chooses itself.
FRAMING = {"host", "content-length", "transfer-encoding", "connection", "expect"}
#: Field-value bytes: visible ASCII and obs-text, spaces and tabs inside (RFC 9110 §5.5).
VCHAR = bytes(range(0x21, 0x7F)) + bytes(range(0x80, 0x100))


@dataclass
class Sent:
    raw: bytes
    method: str
    target: str
    body: bytes
    #: Header fields the parser must return as given (lower-cased name → value).
    fields: dict[str, str]


def parsed(p: RequestParser) -> tuple[Any, ...]:
    return (p.method, p.target, p.headers, p.body, p.keep_alive, p.expect_continue)


def verdict(data: bytes, cuts: list[int]) -> tuple[Any, ...]:
    """What one parser makes of ``data`` fed in the pieces that ``cuts`` delimit."""
    p = RequestParser(MAX_BODY)
    bounds = [0, *sorted(cuts), len(data)]
    done = False
    try:
        for start, end in pairwise(bounds):
            done = p.feed(data[start:end])
    except RequestRefused as exc:
        assert exc.status in {400, 413, 431, 501, 505}, exc.status
        assert exc.message and exc.args == (exc.message,)
        return ("refused",)
    if not done:
        return ("incomplete",)
    return ("done", *parsed(p), p.buffered)


_vchar = st.sampled_from(VCHAR).map(lambda b: bytes([b]))
_inner = st.lists(st.sampled_from([*VCHAR, 0x20, 0x09]), max_size=20).map(bytes)
#: Field values as the parser returns them: no whitespace at either end (it is stripped).
field_values = st.one_of(st.just(b""), _vchar, st.tuples(_vchar, _inner, _vchar).map(b"".join))


@st.composite
def requests(draw: st.DrawFn) -> Sent:
    """A valid request: any method, target and fields; no body, a Content-Length or chunks."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "X-CUSTOM"]))
    target = "/" + draw(st.text(string.ascii_letters + string.digits + "/-._~%?=&", max_size=30))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    fields: dict[str, str] = {}
    lines = [f"{method} {target} ".encode() + version, b"Host: gw.example"]
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.text(TCHAR, min_size=1, max_size=12))
        if name.lower() in FRAMING or name.lower() in fields:
            continue
        value = draw(field_values)
        spaces = draw(st.sampled_from([b"", b" ", b"  ", b"\t", b" \t"]))
        lines.append(name.encode() + b":" + spaces + value + spaces)
        fields[name.lower()] = value.decode("utf-8", "surrogateescape")
    if version == b"HTTP/1.1" and draw(st.booleans()):
        lines.append(b"Connection: " + draw(st.sampled_from([b"close", b"keep-alive", b"Keep-Alive"])))
    body = draw(st.binary(max_size=200))
    framing = draw(st.sampled_from(["length", "chunked", "none"] if not body else ["length", "chunked"]))
    payload = b""
    if framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        cuts = sorted(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=4))) if body else []
        bounds = [0, *(c for c in cuts if c < len(body)), len(body)]
        for start, end in pairwise(bounds):
            if end > start:
                ext = draw(st.sampled_from([b"", b";x=1", b' ; name="q v"', b";a;b=c"]))
                digits = draw(st.sampled_from(["%x", "%X", "%04x"])) % (end - start)
                payload += digits.encode() + ext + b"\r\n" + body[start:end] + b"\r\n"
        payload += b"0\r\n"
        if draw(st.booleans()):
            payload += b"X-Checksum: abc\r\n"
        payload += b"\r\n"
    raw = b"\r\n".join(lines) + b"\r\n\r\n" + payload
    if draw(st.booleans()):
        raw = b"\r\n" + raw  # an empty line before the request line is allowed (RFC 9112 §2.2)
    return Sent(raw, method, target, body, fields)


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[int]:
    return draw(st.lists(st.integers(0, len(data)), max_size=10))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid request with a few bytes replaced, inserted or deleted: hostile near-misses."""
    raw = bytearray(draw(requests()).raw)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw) - 1))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 58, 59, 127, 0xFF, ord("0"), ord("a")]))
        how = draw(st.sampled_from(["replace", "insert", "delete"]))
        if how == "replace":
            raw[at] = byte
        elif how == "insert":
            raw.insert(at, byte)
        else:
            del raw[at]
    return bytes(raw)


# ---------------------------------------------------------------------- properties


@PROPERTY
@given(st.data())
def test_any_split_of_a_valid_request_gives_the_request(data: st.DataObject) -> None:
    sent = data.draw(requests())
    whole = verdict(sent.raw, [])
    assert whole[0] == "done", whole
    _, method, target, headers, body, _, _, leftover = whole
    assert (method, target, body, leftover) == (sent.method, sent.target, sent.body, 0)
    assert headers["host"] == "gw.example"
    assert {k: headers[k] for k in sent.fields} == sent.fields
    assert verdict(sent.raw, data.draw(splits(sent.raw))) == whole


@PROPERTY
@given(st.data())
def test_a_request_is_complete_exactly_when_its_last_byte_arrives(data: st.DataObject) -> None:
    raw = data.draw(requests()).raw
    p = RequestParser(MAX_BODY)
    for i in range(len(raw)):
        assert p.feed(raw[i : i + 1]) == (i == len(raw) - 1)


@PROPERTY
@given(st.data())
def test_mutated_requests_get_one_verdict_however_they_are_cut(data: st.DataObject) -> None:
    raw = data.draw(mutated())
    assert verdict(raw, data.draw(splits(raw))) == verdict(raw, [])


@PROPERTY
@given(st.binary(max_size=300), st.data())
def test_random_bytes_raise_nothing_but_request_refused(raw: bytes, data: st.DataObject) -> None:
    assert verdict(raw, data.draw(splits(raw))) == verdict(raw, [])


@PROPERTY
@given(st.binary(max_size=200))
def test_random_bytes_after_a_head_raise_nothing_but_request_refused(tail: bytes) -> None:
    """Deeper than random bytes get: into the fields, a chunked body, a sized body."""
    for prefix in (b"POST / HTTP/1.1\r\n", head(CHUNKED), head(b"Content-Length: 10")):
        raw = prefix + tail
        assert verdict(raw, list(range(0, len(raw), 5))) == verdict(raw, [])


@PROPERTY
@given(st.data())
def test_pipelined_requests_parse_one_by_one_after_reset(data: st.DataObject) -> None:
    sent = data.draw(st.lists(requests(), min_size=2, max_size=4))
    stream = b"".join(s.raw for s in sent)
    expected = [verdict(s.raw, [])[1:-1] for s in sent]
    bounds = [0, *sorted(data.draw(splits(stream))), len(stream)]
    p = RequestParser(MAX_BODY)
    got = []
    for start, end in pairwise(bounds):
        complete = p.feed(stream[start:end])
        while complete:
            got.append(parsed(p))
            p.reset()
            complete = p.feed(b"")
    assert got == expected
    assert p.buffered == 0 and not p.started


# ---------------------------------------------------------------------- refusals


def refusal(raw: bytes, max_body: int = MAX_BODY) -> RequestRefused:
    p = RequestParser(max_body)
    with pytest.raises(RequestRefused) as info:
        p.feed(raw)
    return info.value


def head(*lines: bytes) -> bytes:
    return b"\r\n".join([b"POST /v1/chat/completions HTTP/1.1", b"Host: gw", *lines]) + b"\r\n\r\n"


CHUNKED = b"Transfer-Encoding: chunked"
REFUSED: dict[str, tuple[bytes, int]] = {
    "Content-Length with Transfer-Encoding": (
        head(b"Content-Length: 5", CHUNKED) + b"5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    "Transfer-Encoding with Content-Length": (head(CHUNKED, b"Content-Length: 5") + b"0\r\n\r\n", 400),
    "two different Content-Lengths": (head(b"Content-Length: 5", b"Content-Length: 6") + b"hello!", 400),
    "two Content-Lengths in one field": (head(b"Content-Length: 5, 5") + b"hello", 400),
    "signed Content-Length": (head(b"Content-Length: +5") + b"hello", 400),
    "hex Content-Length": (head(b"Content-Length: 0x5") + b"hello", 400),
    "Transfer-Encoding gzip": (head(b"Transfer-Encoding: gzip") + b"x", 501),
    "Transfer-Encoding gzip, chunked": (head(b"Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n", 501),
    "Transfer-Encoding chunked twice": (head(CHUNKED, CHUNKED) + b"0\r\n\r\n", 501),
    "Transfer-Encoding identity": (head(b"Transfer-Encoding: identity") + b"x", 501),
    "obs-fold": (head(b"X-A: one", b" two"), 400),
    "obs-fold with a tab": (head(b"X-A: one", b"\ttwo: three"), 400),
    "space before the colon": (head(b"Content-Length : 5") + b"hello", 400),
    "tab before the colon": (head(b"Transfer-Encoding\t: chunked") + b"0\r\n\r\n", 400),
    "bare LF between fields": (b"GET / HTTP/1.1\r\nHost: gw\nX-A: b\r\n\r\n", 400),
    "bare LF line ends only": (b"GET / HTTP/1.1\nHost: gw\n\n", 400),
    "bare CR between fields": (b"GET / HTTP/1.1\r\nHost: gw\rX-A: b\r\n\r\n", 400),
    "NUL in a value": (b"GET / HTTP/1.1\r\nHost: gw\r\nX-A: a\x00b\r\n\r\n", 400),
    "DEL in a value": (b"GET / HTTP/1.1\r\nHost: gw\r\nX-A: a\x7fb\r\n\r\n", 400),
    "NUL in the request line": (b"GET /\x00 HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "no Host on HTTP/1.1": (b"GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    "two Hosts": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    # One-character and empty values are shared string objects: still two fields.
    "the same one-letter Host twice": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    "the same empty Host twice": (b"GET / HTTP/1.1\r\nHost:\r\nHost:\r\n\r\n", 400),
    "invalid header name": (head(b"X(A): b"), 400),
    "empty header name": (head(b": b"), 400),
    "line without a colon": (head(b"X-A b"), 400),
    "lower-case version": (b"GET / http/1.1\r\nHost: gw\r\n\r\n", 400),
    "no version": (b"GET /\r\nHost: gw\r\n\r\n", 400),
    "two spaces in the request line": (b"GET  / HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "method not a token": (b"G(T / HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "raw non-ASCII in the target": (b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "invalid UTF-8 in the target": (b"GET /\xff HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "fragment in the target": (b"GET /health#top HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "fragment in an absolute-form target": (b"GET http://gw#top HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "target neither a path nor a URL": (b"GET index.html HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "authority-form target": (b"GET gw:443 HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "absolute-form without authority": (b"GET http:///health HTTP/1.1\r\nHost: gw\r\n\r\n", 400),
    "HTTP/2.0 request line": (b"GET / HTTP/2.0\r\nHost: gw\r\n\r\n", 505),
    "HTTP/0.9 request line": (b"GET / HTTP/0.9\r\nHost: gw\r\n\r\n", 505),
    "invalid chunk size": (head(CHUNKED) + b"zz\r\nhello\r\n0\r\n\r\n", 400),
    "negative chunk size": (head(CHUNKED) + b"-5\r\nhello\r\n0\r\n\r\n", 400),
    "0x chunk size": (head(CHUNKED) + b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    "empty chunk size": (head(CHUNKED) + b"\r\nhello\r\n0\r\n\r\n", 400),
    "space before the chunk size": (head(CHUNKED) + b" 5\r\nhello\r\n0\r\n\r\n", 400),
    "text after the chunk size": (head(CHUNKED) + b"5 xyz\r\nhello\r\n0\r\n\r\n", 400),
    # Whitespace after the size only before a ";", and extensions as RFC 9112 §7.1.1 spells them.
    "space after the chunk size": (head(CHUNKED) + b"5 \r\nhello\r\n0\r\n\r\n", 400),
    "tab after the chunk size": (head(CHUNKED) + b"5\t\r\nhello\r\n0\r\n\r\n", 400),
    "empty chunk extension": (head(CHUNKED) + b"5;\r\nhello\r\n0\r\n\r\n", 400),
    "chunk extension without a name": (head(CHUNKED) + b"5;=v\r\nhello\r\n0\r\n\r\n", 400),
    "two semicolons in a chunk line": (head(CHUNKED) + b"5;;a\r\nhello\r\n0\r\n\r\n", 400),
    "chunk extension name not a token": (head(CHUNKED) + b"5;a/b\r\nhello\r\n0\r\n\r\n", 400),
    "chunk extension with an empty value": (head(CHUNKED) + b"5;a=\r\nhello\r\n0\r\n\r\n", 400),
    "chunk extension value not a token": (head(CHUNKED) + b"5;a=b c\r\nhello\r\n0\r\n\r\n", 400),
    "unterminated quoted chunk extension": (head(CHUNKED) + b'5;a="b\r\nhello\r\n0\r\n\r\n', 400),
    "text after a quoted chunk extension": (head(CHUNKED) + b'5;a="b"c\r\nhello\r\n0\r\n\r\n', 400),
    "quote inside a token chunk extension": (head(CHUNKED) + b'5;a=b"c"\r\nhello\r\n0\r\n\r\n', 400),
    "whitespace ending a chunk line": (head(CHUNKED) + b"5;a=b \r\nhello\r\n0\r\n\r\n", 400),
    "whitespace ending the last chunk line": (head(CHUNKED) + b"0 \r\n\r\n", 400),
    "overlong chunk size": (head(CHUNKED) + b"1" * 20 + b"\r\nhello\r\n0\r\n\r\n", 400),
    "bare LF ending a chunk size": (head(CHUNKED) + b"5\nhello\r\n0\r\n\r\n", 400),
    "bare LF in a chunk extension": (head(CHUNKED) + b"5;a\nb\r\nhello\r\n0\r\n\r\n", 400),
    "bare CR in a chunk extension": (head(CHUNKED) + b"5;a\rb\r\nhello\r\n0\r\n\r\n", 400),
    "NUL in a chunk extension": (head(CHUNKED) + b"5;a=\x00\r\nhello\r\n0\r\n\r\n", 400),
    "no CRLF after chunk data": (head(CHUNKED) + b"5\r\nhelloXX0\r\n\r\n", 400),
    "bare LF after chunk data": (head(CHUNKED) + b"5\r\nhello\n0\r\n\r\n", 400),
    "chunk longer than its size": (head(CHUNKED) + b"3\r\nhello\r\n0\r\n\r\n", 400),
    "bare LF in a trailer": (head(CHUNKED) + b"0\r\nX-T: a\nb\r\n\r\n", 400),
    "trailer without a colon": (head(CHUNKED) + b"0\r\nGET / HTTP/1.1\r\n\r\n", 400),
    "header line over 8190 bytes": (head(b"X-Long: " + b"a" * 8190), 431),
    "129 header fields": (head(*(b"X-%d: v" % i for i in range(128))), 431),
    "head over 64 KiB in one read": (head(*(b"X-%d: " % i + b"v" * 1000 for i in range(70))), 431),
    "trailers over 128 fields": (head(CHUNKED) + b"0\r\n" + b"X-T: v\r\n" * 129 + b"\r\n", 431),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refused(case: str) -> None:
    raw, status = REFUSED[case]
    exc = refusal(raw)
    assert exc.status == status, exc.message
    # However the bytes are cut, the verdict is a refusal, never a request.
    assert verdict(raw, list(range(0, len(raw), max(7, len(raw) // 64)))) == ("refused",)


@pytest.mark.parametrize(
    "prefix",
    [
        b"GET / HTTP/1.1\nHost: gw\n",  # a client that ends lines with LF alone
        b"GET / HTTP/1.1\r\nHost: gw\r\nX-A: \x00",
        b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 9000,
        b"POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5;\n",
        b"POST / HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n",
    ],
)
def test_a_head_that_can_never_be_valid_is_refused_before_it_ends(prefix: bytes) -> None:
    """A bare LF or a NUL is refused as it arrives: the client is not left waiting for a 408."""
    refusal(prefix)


def test_content_length_over_max_body_is_413_before_the_body() -> None:
    exc = refusal(head(b"Content-Length: %d" % (MAX_BODY + 1)))
    assert exc.status == 413


def test_chunked_body_over_max_body_is_413_at_the_chunk_that_crosses_it() -> None:
    p = RequestParser(MAX_BODY)
    assert not p.feed(head(CHUNKED) + b"800\r\n" + b"a" * 0x800 + b"\r\n")
    assert not p.feed(b"800\r\n" + b"b" * 0x800 + b"\r\n")  # 4096 bytes: exactly the limit
    with pytest.raises(RequestRefused) as info:
        p.feed(b"1\r\n")
    assert info.value.status == 413


def test_body_of_exactly_max_body_is_accepted() -> None:
    p = RequestParser(MAX_BODY)
    assert p.feed(head(b"Content-Length: %d" % MAX_BODY) + b"x" * MAX_BODY)
    assert p.body == b"x" * MAX_BODY


def test_header_line_of_8190_bytes_and_128_fields_are_accepted() -> None:
    p = RequestParser(MAX_BODY)
    assert p.feed(head(b"X-Long: " + b"a" * (8190 - 8), *(b"X-%d: v" % i for i in range(126))))
    assert len(p.headers) == 128


# ---------------------------------------------------------------------- semantics


def parse(raw: bytes) -> RequestParser:
    p = RequestParser(MAX_BODY)
    assert p.feed(raw)
    return p


def test_repeated_fields_are_joined_and_names_lower_cased() -> None:
    p = parse(b"GET /a?b=c HTTP/1.1\r\nHost: gw\r\nX-Tag: one\r\nx-tag:two\r\nACCEPT:\t*/* \r\n\r\n")
    assert (p.method, p.target) == ("GET", "/a?b=c")
    assert p.headers == {"host": "gw", "x-tag": "one, two", "accept": "*/*"}
    p = parse(b"GET / HTTP/1.1\r\nHost: gw\r\nX-A: 1\r\nX-A: 1\r\nX-B:\r\nX-B:\r\n\r\n")
    assert p.headers == {"host": "gw", "x-a": "1, 1", "x-b": ", "}


@pytest.mark.parametrize(
    ("target", "path"),
    [
        (b"http://gw.example/v1/models?x=1", "/v1/models?x=1"),
        (b"HTTPS://gw.example:8443/health", "/health"),
        (b"http://gw.example", "/"),
        (b"http://gw.example?q", "/?q"),
        (b"*", "*"),
    ],
)
def test_absolute_form_target_is_served_as_its_path(target: bytes, path: str) -> None:
    """A server must accept the absolute-form (RFC 9112 §3.2.2)."""
    assert parse(b"OPTIONS " + target + b" HTTP/1.1\r\nHost: other\r\n\r\n").target == path


def test_identical_content_lengths_are_one() -> None:
    assert parse(head(b"Content-Length: 2", b"Content-Length: 2") + b"ok").body == b"ok"


@pytest.mark.parametrize(
    ("raw", "keep_alive"),
    [
        (b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: Close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        # HTTP/1.0 with chunked framing: closed after the answer (RFC 9112 §6.1).
        (b"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False),
        # A later HTTP/1.x minor version is served as HTTP/1.1 (RFC 9110 §2.5).
        (b"GET / HTTP/1.2\r\nHost: gw\r\n\r\n", True),
        # Every Connection field is a list of options; a close in any of them wins (RFC 9112 §9.6).
        (b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive, close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: Upgrade,CLOSE\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: ,, close ,\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: TE, Keep-Alive\r\n\r\n", True),
        # Options are whole tokens: these name none.
        (b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: closed\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: gw\r\nConnection: keep-alive\r\nConnection: x-close\r\n\r\n", True),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive-ish\r\n\r\n", False),
    ],
)
def test_keep_alive(raw: bytes, keep_alive: bool) -> None:
    assert parse(raw).keep_alive is keep_alive


def test_expect_100_continue_is_known_when_the_head_is_done() -> None:
    p = RequestParser(MAX_BODY)
    assert not p.feed(head(b"Expect: 100-continue", b"Content-Length: 5"))
    assert p.head_done and p.expect_continue and p.started and p.buffered == 0
    assert p.feed(b"hello") and p.body == b"hello"


def test_expect_100_continue_is_ignored_on_http_1_0() -> None:
    p = RequestParser(MAX_BODY)
    assert not p.feed(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    assert p.head_done and not p.expect_continue


@pytest.mark.parametrize(
    "line",
    [
        b"5;a",
        b"5 ;a",
        b"5\t;a",
        b"5; a = b",
        b'5;a="q \\" v"',
        b'5;a=b;c="d";e',
        b'5;a="\xff\t"',
        b"5;a=b ;c",
    ],
)
def test_chunk_extensions_of_every_valid_form_are_read_past(line: bytes) -> None:
    """``*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`` (RFC 9112 §7.1.1)."""
    assert parse(head(CHUNKED) + line + b"\r\nhello\r\n0\r\n\r\n").body == b"hello"


def test_chunk_extensions_and_trailers_are_dropped() -> None:
    p = parse(head(CHUNKED) + b"5 ; a=b\r\nhello\r\n1;x\r\n!\r\n0\r\nX-T: 1\r\n\r\n")
    assert p.body == b"hello!"
    assert "x-t" not in p.headers


def test_bytes_after_a_request_wait_for_reset() -> None:
    p = RequestParser(MAX_BODY)
    second = b"GET /two HTTP/1.1\r\nHost: gw\r\n\r\n"
    assert p.feed(b"GET /one HTTP/1.1\r\nHost: gw\r\n\r\n" + second[:10])
    assert p.feed(second[10:])  # still the first request: the rest is buffered
    assert p.target == "/one" and p.buffered == len(second)
    p.reset()
    assert p.feed(b"") and p.target == "/two" and p.buffered == 0


MIB = 1024 * 1024


def fed(reads: list[bytes], max_body: int) -> tuple[int, RequestParser]:
    """A parser fed ``reads``, and tracemalloc's peak above what was allocated before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        p = RequestParser(max_body)
        for data in reads:
            p.feed(data)
        return tracemalloc.get_traced_memory()[1] - base, p
    finally:
        tracemalloc.stop()


def test_a_body_in_one_byte_chunks_costs_its_own_size() -> None:
    """A bytes object and a list slot per chunk, then a join, once took ~88 bytes a byte."""
    size = MIB
    per_read = 64 * 1024 // 6
    block = b"1\r\nx\r\n" * per_read
    reads = [head(CHUNKED), *[block] * (size // per_read), b"1\r\nx\r\n" * (size % per_read) + b"0\r\n\r\n"]
    peak, p = fed(reads, size)
    assert p.body == b"x" * size
    assert peak < 2 * size, f"{peak / size:.2f}x the body"


def test_a_body_split_over_many_reads_costs_its_own_size() -> None:
    size = 256 * 1024
    body = bytes(range(256)) * (size // 256)
    peak, p = fed([head(b"Content-Length: %d" % size), *(body[i : i + 1] for i in range(size))], size)
    assert p.body == body
    assert peak < 2 * size, f"{peak / size:.2f}x the body"


def test_pipelined_requests_parse_in_linear_time() -> None:
    """Each request is parsed where it lies: no copy of all that follows it (quadratic)."""
    count = 60_000  # about 1.9 MB in one read: seconds when each request copied the rest
    p = RequestParser(MAX_BODY)
    started = time.perf_counter()
    complete, served = p.feed(b"GET /a HTTP/1.1\r\nHost: gw\r\n\r\n" * count), 0
    while complete:
        served += 1
        p.reset()
        complete = p.feed(b"")
    assert served == count
    assert time.perf_counter() - started < 1.0


# ---------------------------------------------------------------------- response_head

DATE = b"Date: Sun, 22 Nov 2026 00:00:00 GMT\r\n\r\n"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-Lf", "a\nInjected: yes"),
        ("X-Cr", "a\rInjected: yes"),
        ("X-Crlf", "a\r\nInjected: yes"),
        ("X-Nul", "a\x00b"),
        ("X-Del", "a\x7fb"),
        ("X-Esc", "a\x1bb"),
        ("X Space", "v"),
        ("X(Paren)", "v"),
        ("X-Lf\nInjected", "v"),
        ("", "v"),
    ],
)
def test_response_head_drops_a_field_a_client_could_misread(name: str, value: str) -> None:
    head = response_head(200, {name: value, "X-Ok": "a\tb c"}, "application/json", 2, True, DATE)
    assert head == (
        b"HTTP/1.1 200 OK\r\nX-Ok: a\tb c\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nServer: fastgate\r\n" + DATE
    )


@pytest.mark.parametrize("content_type", ["text/plain\nInjected: yes", "text/plain\rX: y", "text/\x00plain"])
def test_response_head_drops_a_content_type_a_client_could_misread(content_type: str) -> None:
    head = response_head(200, {}, content_type, -1, False, DATE)
    assert (
        head
        == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\nServer: fastgate\r\n"
        + DATE
    )


def test_response_head_of_any_size_and_text_goes_out_byte_for_byte() -> None:
    """Heads past the stack buffer grow on the heap; non-ASCII values go out as the client's
    bytes were (surrogateescape), whatever their number."""
    long = "x" * 5000
    raw = b"caf\xc3\xa9 \xff".decode("utf-8", "surrogateescape")
    fields = {f"X-{i}": long if i % 2 else raw for i in range(6)}
    head = response_head(404, fields, "text/plain; charset=utf-8", 123456789012, True, DATE, True)
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 404 Not Found"
    assert lines[1:7] == [b"X-%d: " % i + (b"x" * 5000 if i % 2 else b"caf\xc3\xa9 \xff") for i in range(6)]
    assert lines[7:11] == [
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Length: 123456789012",
        b"Connection: keep-alive",
        b"Server: fastgate",
    ]
    assert head.endswith(DATE)
