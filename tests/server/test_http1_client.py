"""The upstream HTTP/1.1 client against raw loopback servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import HTTPParseError, ResponseParser, request_head
from fastgate.errors import GatewayError
from fastgate.ssrf import HostPolicy
from fastgate.upstream.connection import UpstreamConnectionError, UpstreamTimeout
from fastgate.upstream.dns import CachingResolver
from fastgate.upstream.pool import UpstreamPool


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(CachingResolver(HostPolicy()), connect_timeout=1.0, read_timeout=0.5)
    yield p
    await p.close()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + (await reader.readexactly(length) if length else b"")


async def test_keepalive_reuses_one_connection(raw_server, pool: UpstreamPool) -> None:
    connections = 0

    async def handler(reader, writer):
        nonlocal connections
        connections += 1
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    url = await raw_server(handler)
    for _ in range(5):
        resp = await pool.request("POST", url + "/v1/x", {"Content-Type": "application/json"}, b"{}")
        assert resp.status == 200 and await resp.read() == b"ok"
    assert connections == 1


async def test_stale_idle_connection_is_retried_transparently(raw_server, pool: UpstreamPool) -> None:
    served = 0

    async def handler(reader, writer):
        nonlocal served
        await _read_request(reader)
        served += 1
        # Answer, then close: the pooled connection goes stale while idle.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    url = await raw_server(handler)
    for _ in range(3):
        resp = await pool.request("POST", url + "/", {}, b"{}")
        assert await resp.read() == b"ok"
        await asyncio.sleep(0.05)
    assert served == 3


async def test_chunked_body_and_trailers(raw_server, pool: UpstreamPool) -> None:
    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"
        )
        for piece in (b"data: 1\n\n", b"data: 2\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\nX-Done: 1\r\n\r\n")
        await writer.drain()

    url = await raw_server(handler)
    resp = await pool.request("GET", url + "/s", {}, None)
    assert resp.content_type == "text/event-stream"
    assert [c async for c in resp.chunks()] == [b"data: 1\n\n", b"data: 2\n\n"]


async def test_body_until_close_for_http10(raw_server, pool: UpstreamPool) -> None:
    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    url = await raw_server(handler)
    resp = await pool.request("GET", url, {}, None)
    assert await resp.read() == b"all of it"


@pytest.mark.parametrize(
    "answer",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        # Digits Python's int() would take, or a length no size can hold: refused, never a crash.
        "HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\n".encode(),
        "HTTP/1.1 200 OK\r\nContent-Length: \u0663\r\n\r\n".encode(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 1_0\r\n\r\n0123456789",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    ],
)
async def test_broken_answers_are_connection_errors(raw_server, pool: UpstreamPool, answer: bytes) -> None:
    async def handler(reader, writer):
        await _read_request(reader)
        writer.write(answer)
        await writer.drain()
        writer.close()

    url = await raw_server(handler)
    with pytest.raises(UpstreamConnectionError):
        resp = await pool.request("GET", url, {}, None)
        await resp.read()


async def test_stall_before_head_times_out(raw_server, pool: UpstreamPool) -> None:
    async def handler(reader, writer):
        await _read_request(reader)
        await asyncio.sleep(5)

    url = await raw_server(handler)
    with pytest.raises(UpstreamTimeout):
        await pool.request("GET", url, {}, None)


async def test_refused_connection(pool: UpstreamPool, unused_tcp_port: int) -> None:
    with pytest.raises(UpstreamConnectionError):
        await pool.request("GET", f"http://127.0.0.1:{unused_tcp_port}/", {}, None)


@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "a\x00b"])
async def test_header_injection_is_refused_before_sending(pool: UpstreamPool, value: str) -> None:
    with pytest.raises(GatewayError) as info:
        await pool.request("GET", "http://127.0.0.1:9/", {"X-Forwarded": value}, None)
    assert info.value.status == 400


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=5))
def test_parser_never_crashes_on_arbitrary_bytes(blob: bytes, cuts: list[int]) -> None:
    parser = ResponseParser()
    start = 0
    try:
        for cut in [*sorted(c % (len(blob) + 1) for c in cuts), len(blob)]:
            parser.feed(blob[start:cut])
            start = cut
    except HTTPParseError:
        pass


_FIELD_BYTES = st.sampled_from(
    [b"a", b"Z", b"-", b":", b" ", b"\t", b"\r", b"\n", b"\r\n", b"\xc3\xa9", b"\xff", b"0", b"9"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [b"Content-Length", b"Transfer-Encoding", b"Connection", b"Content-Type", b"X-A"]
            ),
            st.lists(_FIELD_BYTES, max_size=12).map(b"".join),
        ),
        max_size=6,
    ),
    st.binary(max_size=60),
)
def test_parser_never_crashes_on_arbitrary_fields(fields: list[tuple[bytes, bytes]], body: bytes) -> None:
    """Heads that pass the status line, with odd values in the fields the parser acts on."""
    head = b"HTTP/1.1 200 OK\r\n" + b"".join(name + b":" + value + b"\r\n" for name, value in fields)
    parser = ResponseParser()
    try:
        parser.feed(head + b"\r\n" + body)
    except HTTPParseError:
        return
    if parser.head_done:
        assert all(name == name.lower() for name, _ in parser.headers)


async def test_cancelled_wait_for_head_closes_the_connection(raw_server, pool: UpstreamPool) -> None:
    closed = asyncio.Event()

    async def handler(reader, writer):
        await _read_request(reader)
        await reader.read()  # returns when the client closes its side
        closed.set()

    url = await raw_server(handler)
    task = asyncio.ensure_future(pool.request("GET", url, {}, None))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(closed.wait(), 2)


_FIELD_TEXT = st.text(
    st.one_of(st.characters(codec="utf-8"), st.sampled_from("\r\n\x00\t\udc80\udcff")), max_size=12
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(_FIELD_TEXT.filter(bool), _FIELD_TEXT, max_size=6),
    st.one_of(st.none(), st.binary(max_size=40)),
    st.booleans(),
)
def test_request_head_writes_the_fields_or_names_the_one_that_would_split_it(
    headers: dict[str, str], body: bytes | None, with_length: bool
) -> None:
    start = "POST /v1/x HTTP/1.1\r\nHost: h\r\n"
    length = len(body or b"") if with_length else -1
    splitting = [n for n, v in headers.items() if any(c in n + v for c in "\r\n\x00")]
    if splitting:
        with pytest.raises(ValueError) as info:
            request_head(start, headers, length, body)
        assert info.value.args[0] == splitting[0]
        return
    text = start + "".join(f"{n}: {v}\r\n" for n, v in headers.items())
    text += f"Content-Length: {length}\r\n\r\n" if with_length else "\r\n"
    # Values from the client were decoded with surrogateescape: the bytes they came as go out.
    assert request_head(start, headers, length, body) == text.encode("utf-8", "surrogateescape") + (
        body or b""
    )
