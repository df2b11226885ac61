"""fastgate's request parser against llhttp (Node's parser, through ``httptools``) on the same bytes.

Two parsers in front of each other must agree on where each message ends, or one of them reads a
request the other took for body (request smuggling). Each case is a stream of requests, built
from a grammar with hostile choices at the places framing depends on (lengths, codings, chunk
lines, line ends, duplicated and folded fields), plus the classic smuggling vectors; both parsers
read it and must agree, message by message, on method, target, headers, body and where it ends,
and on refusing. They may disagree only where a choice made for that message is one of the
known, deliberate differences: fastgate refuses more (``STRICTER``) and takes a few forms the RFC
allows that llhttp refuses (``LENIENT``); neither kind moves a message boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httptools
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgate._transforms import RequestParser, RequestRefused

#: fastgate refuses, llhttp takes: ...
STRICTER = {
    "no-host",  # an HTTP/1.1 request without Host (RFC 9112 §3.2)
    "two-hosts",
    "fragment",  # a fragment is never sent (RFC 9112 §3.2)
    "version",  # HTTP/0.9 and HTTP/2.0 request lines over HTTP/1.1: a 505
    "long-line",  # a header line over 8190 bytes: a 431
    "coding",  # a transfer coding besides chunked: a 501 (the gateway does not decode them)
    "chunk-ext",  # a chunk extension without a name or a value, or a quote inside a token
    # An empty line before a request line, cut by the previous message's length to a lone LF:
    # llhttp skips lone CRs and LFs there, fastgate only whole CRLFs (RFC 9112 §2.2).
    "empty-line-first",
}
#: fastgate takes, llhttp refuses: ...
LENIENT = {
    "method",  # any token as a method (llhttp knows a list)
    "minor-version",  # HTTP/1.2 read as 1.1 (RFC 9110 §2.5)
    "same-length-twice",  # identical Content-Length fields are one (RFC 9110 §8.6)
    "chunk-bws",  # whitespace around ";" and "=" in chunk extensions (RFC 9112 §7.1.1 BWS)
    "tab-after-coding",  # "chunked" then a tab: OWS (RFC 9112 §5.1), which llhttp refuses there
}
#: Long enough that no case is refused for its size by fastgate: llhttp sets no limit.
MAX_BODY = 1 << 20
DIFFERENTIAL = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Sent:
    raw: bytes
    #: The known differences this message's choices touch.
    tags: set[str] = field(default_factory=set)


@dataclass
class Read:
    """What a parser made of a stream: the messages it completed, and how it stopped."""

    messages: list[tuple[Any, ...]]
    #: "clean" (every byte read), "incomplete", "refused", or "closed" (a message that closes
    #: the connection: what follows it is not read as requests).
    end: str


def fastgate_read(stream: bytes) -> Read:
    p = RequestParser(MAX_BODY)
    messages: list[tuple[Any, ...]] = []
    try:
        complete = p.feed(stream)
        while complete:
            messages.append((p.method, p.target, p.headers, p.body))
            if not p.keep_alive:
                return Read(messages, "closed")
            p.reset()
            complete = p.feed(b"")
    except RequestRefused:
        return Read(messages, "refused")
    return Read(messages, "incomplete" if p.started else "clean")


class _Callbacks:
    def __init__(self) -> None:
        self.parser: Any = None
        self.messages: list[tuple[Any, ...]] = []
        self.current: dict[str, Any] | None = None

    def on_message_begin(self) -> None:
        self.current = {"url": b"", "headers": [], "body": b"", "head": True}

    def on_url(self, url: bytes) -> None:
        assert self.current is not None
        self.current["url"] += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self.current is not None
        if self.current["head"]:  # trailers come through here too: dropped, as fastgate does
            self.current["headers"].append((name, value))

    def on_headers_complete(self) -> None:
        assert self.current is not None
        self.current["head"] = False
        self.current["method"] = self.parser.get_method().decode()

    def on_body(self, body: bytes) -> None:
        assert self.current is not None
        self.current["body"] += body

    def on_message_complete(self) -> None:
        assert self.current is not None
        self.messages.append(_as_fastgate_reads_it(self.current))
        self.current = None


def _as_fastgate_reads_it(message: dict[str, Any]) -> tuple[Any, ...]:
    """llhttp's message in fastgate's terms: names lower-cased, values without the whitespace
    around them (RFC 9112 §5.1), repeated fields joined with ", ", an absolute-form target as
    its path and query (RFC 9112 §3.2.2)."""
    target = message["url"].decode("latin-1")
    if not target.startswith("/") and target != "*":
        parts = urlsplit(target)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers: dict[str, str] = {}
    for name, raw in message["headers"]:
        value = raw.strip(b" \t").decode("utf-8", "surrogateescape")
        key = name.decode("latin-1").lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return (message["method"], target, headers, message["body"])


def llhttp_read(stream: bytes) -> Read:
    callbacks = _Callbacks()
    parser = httptools.HttpRequestParser(callbacks)
    callbacks.parser = parser
    try:
        parser.feed_data(stream)
    except httptools.HttpParserError:
        return Read(callbacks.messages, "refused")
    return Read(callbacks.messages, "incomplete" if callbacks.current is not None else "clean")


def assert_agree(sent: list[Sent]) -> None:
    stream = b"".join(s.raw for s in sent)
    ours, theirs = fastgate_read(stream), llhttp_read(stream)
    common = min(len(ours.messages), len(theirs.messages))
    assert ours.messages[:common] == theirs.messages[:common], stream
    if ours.end == "closed" and len(theirs.messages) >= len(ours.messages):
        return  # both read the message that closes; llhttp refuses what follows, fastgate stops
    # Where the two stop apart, what the message being read chose explains it (a message whose
    # length was misread would shift the rest: every later message's choices count too).
    later = set().union(*(s.tags for s in sent[common:]))
    if len(ours.messages) == len(theirs.messages):
        if ours.end != theirs.end:
            assert {ours.end, theirs.end} <= {"refused", "closed", "clean", "incomplete"}
            known = STRICTER if ours.end == "refused" else LENIENT
            assert "refused" in (ours.end, theirs.end) and later & known, (stream, ours, theirs)
    elif len(ours.messages) < len(theirs.messages):
        assert ours.end == "refused" and later & STRICTER, (stream, ours, theirs)
    else:
        assert theirs.end == "refused" and later & LENIENT, (stream, ours, theirs)


# ---------------------------------------------------------------------- the grammar

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
TARGETS = [
    "/",
    "/v1/chat/completions",
    "/a?b=c&d=%20e",
    '/a"b{|}^`',
    "http://h.example:8080/p?q",
    "http://h.example",
]
VALUES = [b"v", b"", b"  spaced  out \t", b"caf\xc3\xa9", b"a\tb", b"\xff", b"a, b"]
#: Field lines both parsers refuse.
BAD_LINES = [
    b"X-Fold: a\r\n b",
    b"X-Space : v",
    b"X-Lf: a\nb",
    b"X-Cr: a\rb",
    b"X-Nul: a\x00b",
    b"X-Del: a\x7fb",
    b"X(A): v",
    b" X-Lead: v",
]
#: (extension, tags): after a chunk size.
EXTENSIONS = [
    (b"", set()),
    (b";a", set()),
    (b";a=b", set()),
    (b';a="x \\" y"', set()),
    (b";a=b;c", set()),
    (b" ;a", {"chunk-bws"}),
    (b"; a = b", {"chunk-bws"}),
    (b";a=", {"chunk-ext"}),
    (b";=b", {"chunk-ext"}),
    (b";;a", {"chunk-ext"}),
    (b';a=b"c"', {"chunk-ext"}),
    (b" ", set()),  # both refuse these
    (b"\t", set()),
    (b";a\nb", set()),
    (b";a=b ", set()),
    (b"x", set()),
]
#: (Transfer-Encoding field lines, tags).
CODINGS = [
    ([b"Transfer-Encoding: chunked"], set()),
    ([b"Transfer-Encoding: Chunked"], set()),
    ([b"Transfer-Encoding:  chunked  "], set()),
    ([b"Transfer-Encoding:  chunked \t"], {"tab-after-coding"}),
    ([b"Transfer-Encoding: gzip, chunked"], {"coding"}),
    ([b"Transfer-Encoding: chunked, chunked"], set()),
    ([b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], set()),
    ([b"Transfer-Encoding: identity"], set()),
    ([b"Transfer-Encoding: chunked,"], set()),
    ([b"Transfer-Encoding: xchunked"], set()),
]


#: The parts of a message the generator may spoil: one per message at most, so that most
#: streams are read deep enough to compare what follows.
PARTS = [
    "method",
    "target",
    "version",
    "host",
    "field",
    "long-line",
    "length",
    "coding",
    "chunk-ext",
    "chunk-end",
    "trailer",
    "line-end",
    "both-lengths",
]


def pick(draw: st.DrawFn, usual: list[Any], hostile: list[Any], spoiled: bool) -> Any:
    return draw(st.sampled_from(hostile if spoiled else usual))


@st.composite
def chunked_body(draw: st.DrawFn, body: bytes, spoil: str | None) -> tuple[bytes, set[str]]:
    tags: set[str] = set()
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=3)))) if body else []
    out = b""
    for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True):
        if end <= start:
            continue
        ext, ext_tags = pick(
            draw, EXTENSIONS[:5], EXTENSIONS[5:], spoil == "chunk-ext" and draw(st.booleans())
        )
        tags |= ext_tags
        size = draw(st.sampled_from(["%x", "%X", "%04x"])) % (end - start)
        ending = pick(draw, [b"\r\n"], [b"\n", b"XX"], spoil == "chunk-end")
        out += size.encode() + ext + b"\r\n" + body[start:end] + ending
    ext, ext_tags = pick(draw, EXTENSIONS[:5], EXTENSIONS[5:], spoil == "chunk-ext" and not tags)
    out += b"0" + ext + b"\r\n"
    tags |= ext_tags
    out += pick(draw, [b"", b"X-Trailer: 1\r\n"], [b"bad trailer\r\n", b"X-T: a\nb\r\n"], spoil == "trailer")
    return out + b"\r\n", tags


@st.composite
def messages(draw: st.DrawFn) -> Sent:
    spoil = draw(st.sampled_from([None] * len(PARTS) + PARTS))
    tags: set[str] = set()
    method = pick(draw, METHODS, ["PURGE-X"], spoil == "method")
    if method not in METHODS:
        tags.add("method")
    target = pick(draw, TARGETS, ["/p#frag", "/caf\xe9", "/a b"], spoil == "target")
    if "#" in target:
        tags.add("fragment")
    version = pick(
        draw,
        [b"HTTP/1.1"] * 8 + [b"HTTP/1.0"],
        [b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1"],
        spoil == "version",
    )
    tags |= {b"HTTP/1.2": {"minor-version"}, b"HTTP/2.0": {"version"}, b"HTTP/0.9": {"version"}}.get(
        version, set()
    )
    lines = [method.encode() + b" " + target.encode("latin-1") + b" " + version]
    hosts = pick(draw, [1], [0, 2], spoil == "host")
    if hosts == 0 and version != b"HTTP/1.0":
        tags.add("no-host")
    if hosts == 2:
        tags.add("two-hosts")
    lines += [b"Host: gw.example"] * hosts
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from([b"X-A", b"Accept", b"user-agent", b"X-Portkey-Provider"]))
        lines.append(name + b":" + draw(st.sampled_from([b"", b" ", b"\t"])) + draw(st.sampled_from(VALUES)))
    if spoil == "field":
        lines.insert(draw(st.integers(1, len(lines))), draw(st.sampled_from(BAD_LINES)))
    if spoil == "long-line":
        lines.append(b"X-Long: " + b"a" * 9000)
        tags.add("long-line")
    if draw(st.booleans()):
        lines.append(
            draw(
                st.sampled_from(
                    [b"Connection: close", b"Connection: keep-alive", b"Connection: x, Keep-Alive"]
                )
            )
        )
    body = draw(st.binary(max_size=60))
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    if spoil == "length":
        field, field_tags = draw(
            st.sampled_from(
                [
                    ([b"Content-Length: %d, %d" % (len(body), len(body))], set()),
                    ([b"Content-Length: +%d" % len(body)], set()),
                    ([b"Content-Length: %d" % len(body)] * 2, {"same-length-twice"}),
                    ([b"Content-Length: %d" % len(body), b"Content-Length: %d" % (len(body) + 1)], set()),
                    ([b"Content-Length: 0%d" % len(body)], set()),
                    ([b"Content-Length:"], set()),
                ]
            )
        )
        lines += field
        tags |= field_tags
        payload = body
    elif framing == "length":
        lines.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "chunked" or spoil in ("coding", "chunk-ext", "chunk-end", "trailer", "both-lengths"):
        coding, coding_tags = pick(draw, CODINGS[:3], CODINGS[3:], spoil == "coding")
        lines += coding
        tags |= coding_tags
        if spoil == "both-lengths":
            lines.insert(draw(st.integers(1, len(lines))), b"Content-Length: %d" % len(body))
        payload, chunk_tags = draw(chunked_body(body, spoil))
        tags |= chunk_tags
    else:
        payload = b""
    ending = b"\n" if spoil == "line-end" else b"\r\n"
    lead = b""
    if draw(st.integers(0, 9)) == 0:
        lead = b"\r\n"
        tags.add("empty-line-first")
    return Sent(lead + ending.join(lines) + ending * 2 + payload, tags)


# ---------------------------------------------------------------------- the comparison


@DIFFERENTIAL
@given(st.lists(messages(), min_size=1, max_size=3))
def test_fastgate_and_llhttp_agree_on_generated_streams(sent: list[Sent]) -> None:
    assert_agree(sent)


@DIFFERENTIAL
@given(st.lists(messages(), min_size=1, max_size=3), st.integers(1, 40))
def test_a_length_past_the_body_takes_the_next_bytes_in_both(sent: list[Sent], extra: int) -> None:
    """A Content-Length longer than the body sent: the next request's bytes are this one's body
    for both parsers, or both wait for more."""
    body = b"x" * 10
    # The request cut by the length begins with what its first bytes leave: a method llhttp does
    # not know ("ET"), or the LF of an empty line.
    sent[0].tags |= {"method", "empty-line-first"}
    first = Sent(b"POST /a HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n" % (len(body) + extra) + body)
    assert_agree([first, *sent])


H = b"POST / HTTP/1.1\r\nHost: gw\r\n"
TE = H + b"Transfer-Encoding: chunked\r\n\r\n"
#: Classic smuggling and desync vectors (CL.TE, TE.CL, TE.TE obfuscations, chunk-size tricks),
#: each followed by a request a front end and a back end must not read differently.
NEXT = b"GET /next HTTP/1.1\r\nHost: gw\r\n\r\n"
VECTORS: dict[str, bytes] = {
    "CL.TE": H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "TE.CL": H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n",
    "TE with a space before the colon": H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "TE with a tab value": H + b"Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
    "TE xchunked": H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "TE chunked then x": H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
    "TE folded": H + b"X: y\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE behind a bare LF": H + b"X: y\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "TE with a vertical tab": H + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    "TE quoted": H + b'Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n',
    "TE chunked; param": H + b"Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n",
    "gzip, chunked": H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "CL with a plus": H + b"Content-Length: +3\r\n\r\nabc",
    "CL with a space inside": H + b"Content-Length: 1 2\r\n\r\n" + b"a" * 12,
    "CL hex": H + b"Content-Length: 0x3\r\n\r\nabc",
    "CL leading zeros": H + b"Content-Length: 003\r\n\r\nabc",
    "two CLs": H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "chunk size 0x": TE + b"0x3\r\nabc\r\n0\r\n\r\n",
    "chunk size with a space": TE + b"3 \r\nabc\r\n0\r\n\r\n",
    "chunk size negative": TE + b"-3\r\nabc\r\n0\r\n\r\n",
    "chunk size overflow": TE + b"1" + b"0" * 16 + b"\r\na\r\n0\r\n\r\n",
    "chunk ext with a bare LF": TE + b"3;x\nabc\r\n0\r\n\r\n",
    "chunk ext with a bare CR": TE + b"3;x\rabc\r\n0\r\n\r\n",
    "chunk data longer than its size": TE + b"3\r\nabcd\r\n0\r\n\r\n",
    "chunk line ended by a bare LF": TE + b"3\nabc\r\n0\r\n\r\n",
    "last chunk ended by a bare LF": TE + b"0\n\r\n",
    "head ended by bare LFs": b"POST / HTTP/1.1\nHost: gw\nContent-Length: 3\n\nabc",
    "NUL in a header name": H + b"X\x00A: v\r\nContent-Length: 0\r\n\r\n",
    "request line with a bare CR": b"GET /\r HTTP/1.1\r\nHost: gw\r\n\r\n",
    "two Hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
}
#: The vectors on which the two differ by design.
VECTOR_TAGS = {"two Hosts": {"two-hosts"}, "gzip, chunked": {"coding"}}


@pytest.mark.parametrize("vector", VECTORS)
def test_fastgate_and_llhttp_agree_on_smuggling_vectors(vector: str) -> None:
    assert_agree([Sent(VECTORS[vector], VECTOR_TAGS.get(vector, set())), Sent(NEXT)])
