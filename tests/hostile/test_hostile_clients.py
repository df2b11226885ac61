"""Hostile clients and a lax upstream against a real gateway on loopback, over raw sockets.

Clients that pipeline and never read, that stop reading a stream, that flood the worker with idle
sockets, that send Connection lists and chunk lines meant to be read two ways, and bodies in
1-byte chunks; an upstream that answers with each malformed response a lenient client would read
some way. Every one ends in a clean answer or a clean close, and the gateway serves the others.
"""

from __future__ import annotations

import asyncio
import socket
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest

from fastgate.ssrf import HostPolicy
from fastgate.upstream.dns import CachingResolver
from fastgate.upstream.pool import UpstreamPool
from tests.conftest import Gateway, Upstream, raw_request
from tests.faults.conftest import settles
from tests.server.test_http_server import (
    CHAT,
    CHUNKED,
    COMPLETION,
    Client,
    assert_openai_error,
    assert_still_serving,
    chat_request,
    small_window_socket,
)
from tests.support.sse import openai_chunks

MIB = 1024 * 1024


async def connections_of(gw: Gateway, count: int, timeout: float) -> bool:
    return await settles(lambda: len(gw.server.connections) == count, timeout)


@pytest.fixture
async def client(gateway: Gateway) -> AsyncIterator[Client]:
    c = await Client.connect(gateway)
    yield c
    c.close()


# ---------------------------------------------------------------------- clients that do not read


async def test_a_client_that_pipelines_and_never_reads_is_cut_after_the_client_timeout(
    make_gateway: Any,
) -> None:
    gw = await make_gateway(client_timeout=1.0)
    healthy = await Client.connect(gw)
    sock = small_window_socket()
    await asyncio.get_running_loop().sock_connect(sock, (gw.host, gw.port))
    _, writer = await asyncio.open_connection(sock=sock)
    try:
        # Each a 404 of about 4 KB (the path is in the message): 8 MB of answers, never read.
        writer.write(raw_request("GET", "/" + "x" * 4000) * 2000)
        hostile = None
        most_written = most_buffered = 0
        deadline = time.monotonic() + 8.0
        while time.monotonic() < deadline:
            await healthy.send(raw_request("GET", "/health"))
            assert (await healthy.answer()).status == 200  # served on all along
            others = [c for c in gw.server.connections if c.transport is not None and c.parser.buffered]
            hostile = hostile or (others[0] if others else None)
            if hostile is not None and hostile.transport is not None:
                most_written = max(most_written, hostile.transport.get_write_buffer_size())
                most_buffered = max(most_buffered, hostile.parser.buffered)
            if hostile is not None and hostile not in gw.server.connections:
                break
            await asyncio.sleep(0.1)
        assert hostile is not None and hostile not in gw.server.connections, "never cut"
        # Answers wait up to the high-water mark (plus the answer that crossed it); pipelined
        # requests up to the pipeline buffer and a read on top (reading pauses meanwhile).
        assert most_written <= 64 * 1024 + 8 * 1024, most_written
        assert most_buffered <= 512 * 1024, most_buffered
    finally:
        writer.close()
        healthy.close()
    await assert_still_serving(gw)


async def test_a_client_that_stops_reading_a_stream_is_cut_and_the_request_ends(
    make_gateway: Any, upstream: Upstream
) -> None:
    gw = await make_gateway(client_timeout=1.0)
    sock = small_window_socket()
    await asyncio.get_running_loop().sock_connect(sock, (gw.host, gw.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        long_stream = {**CHAT, "stream": True, "mock": {"chunks": 20_000, "content": "word " * 20_000}}
        writer.write(chat_request(upstream, long_stream))
        await reader.readuntil(b"\r\n\r\n")  # the stream has begun; nothing more is read
        assert await settles(lambda: gw.app.dispatch.in_flight == 1, 5.0)
        # Its writes pause, stay paused past the client timeout: the connection is cut, the
        # request leaves the in-flight count and the upstream call is closed.
        assert await settles(lambda: gw.app.dispatch.in_flight == 0, 8.0)
        assert await connections_of(gw, 0, 3.0)
    finally:
        writer.close()
    await assert_still_serving(gw)


async def test_a_stream_the_client_pauses_pauses_its_upstream_and_then_comes_whole(
    make_gateway: Any, upstream: Upstream
) -> None:
    gw = await make_gateway(client_timeout=10.0)
    sock = small_window_socket()
    await asyncio.get_running_loop().sock_connect(sock, (gw.host, gw.port))
    # The reader's buffer stops taking bytes past 8 KB: the client stops reading until it is read.
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    content = "word " * 20_000
    try:
        long_stream = {**CHAT, "stream": True, "mock": {"chunks": 20_000, "content": content}}
        writer.write(chat_request(upstream, long_stream))
        pool = gw.app.gateway.pool
        assert pool is not None
        # The stream is relayed from the upstream's reads: with the client's writes backed up,
        # the upstream connection stops being read instead of buffering the stream.
        assert await settles(lambda: any(c._paused for c in pool.busy), 5.0), "the upstream kept being read"
        answer = await Client(reader, writer).answer(timeout=30.0)
        chunks = openai_chunks(answer.body)
        assert chunks[-1] == "[DONE]"
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1] if c["choices"])
        assert text == content
        assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    finally:
        writer.close()
    await assert_still_serving(gw)


# ---------------------------------------------------------------------- idle sockets past the limit


async def is_closed(s: socket.socket) -> bool:
    """The gateway closed it with a FIN (not a reset); False while it stays open."""
    try:
        return await asyncio.wait_for(asyncio.get_running_loop().sock_recv(s, 1), 0.3) == b""
    except TimeoutError:
        return False


def idle_sockets(gw: Gateway, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        s = socket.create_connection((gw.host, gw.port))
        s.setblocking(False)
        sockets.append(s)
    return sockets


async def test_a_flood_of_idle_sockets_is_closed_cleanly_and_clients_are_served(make_gateway: Any) -> None:
    gw = await make_gateway(max_connections=8)
    keeper = await Client.connect(gw)
    await keeper.send(raw_request("GET", "/health"))
    assert (await keeper.answer()).status == 200
    flood = idle_sockets(gw, 27)  # the limit is 8: the keeper's and 7 more
    try:
        # The oldest that have sent nothing make room for each newcomer, each closed with a FIN.
        assert [await is_closed(s) for s in flood] == [True] * 20 + [False] * 7
        assert len(gw.server.connections) == 8
        for _ in range(2):  # the connection in use is served on ...
            await keeper.send(raw_request("GET", "/health"))
            assert (await keeper.answer()).status == 200
        await assert_still_serving(gw)  # ... and a client arriving now is served
        assert len(gw.server.connections) <= 8
    finally:
        keeper.close()
        for s in flood:
            s.close()


async def test_past_the_limit_with_every_connection_in_use_a_new_one_is_closed(make_gateway: Any) -> None:
    gw = await make_gateway(max_connections=2)
    clients = [await Client.connect(gw) for _ in range(2)]
    try:
        for c in clients:  # kept alive after a request: in use, never closed to make room
            await c.send(raw_request("GET", "/health"))
            assert (await c.answer()).status == 200
        [newcomer] = idle_sockets(gw, 1)
        assert await is_closed(newcomer)
        newcomer.close()
        for c in clients:
            await c.send(raw_request("GET", "/health"))
            assert (await c.answer()).status == 200
    finally:
        for c in clients:
            c.close()


# ---------------------------------------------------------------------- lists and chunk lines


@pytest.mark.parametrize(
    "fields",
    [
        ("Connection: close", "Connection: keep-alive"),
        ("Connection: keep-alive", "Connection: close"),
        ("Connection: Keep-Alive, CLOSE",),
    ],
)
async def test_a_close_in_any_connection_field_closes(client: Client, fields: tuple[str, ...]) -> None:
    await client.send(raw_request("GET", "/health", *fields) + raw_request("GET", "/health"))
    answer = await client.answer()
    assert answer.status == 200 and answer.header("connection") == "close"
    assert await client.closed_by_gateway()  # the pipelined second request is not served


async def test_a_connection_field_naming_no_option_keeps_the_connection(client: Client) -> None:
    for _ in range(2):
        await client.send(raw_request("GET", "/health", "Connection: closed, x-close"))
        answer = await client.answer()
        assert answer.status == 200 and answer.header("connection") is None


POST = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize(
    "line",
    [b"2 ", b"2\t", b"2;", b"2;a=", b"2;=b", b"2;;a", b"2;a=b c", b'2;a="b', b'2;a=b"c"', b"2;a=b "],
)
async def test_a_chunk_line_that_is_not_the_grammar_is_a_400_then_a_close(
    gateway: Gateway, client: Client, line: bytes
) -> None:
    await client.send((POST + f"{CHUNKED}\r\n\r\n").encode() + line + b"\r\n{}\r\n0\r\n\r\n")
    answer = await client.answer()
    assert_openai_error(answer, 400)
    assert "chunk" in answer.json()["error"]["message"]
    assert await client.closed_by_gateway()
    await assert_still_serving(gateway)


async def test_a_body_in_one_byte_chunks_with_extensions_reaches_the_upstream(
    client: Client, upstream: Upstream
) -> None:
    body = msgspec.json.encode({**CHAT, "messages": [{"role": "user", "content": "x" * 20_000}]})
    extensions = [b"", b' ;q="a \\" b"', b"; n = v", b";n=v;m"]
    chunks = b"".join(b"1%b\r\n%b\r\n" % (extensions[i % 4], body[i : i + 1]) for i in range(len(body)))
    head = chat_request(upstream).split(b"Content-Length:", 1)[0] + f"{CHUNKED}\r\n\r\n".encode()
    await client.send(head + chunks + b"0\r\n\r\n")
    answer = await client.answer()
    assert answer.status == 200, answer.body
    assert upstream.bodies()[-1] == msgspec.json.decode(body)


# ---------------------------------------------------------------------- a lax upstream


def coded(*codings: bytes, chunk_line: bytes = b"2") -> bytes:
    """An answer whose Transfer-Encoding fields are ``codings``, its body "ok" in one chunk."""
    fields = b"".join(b"Transfer-Encoding: " + c + b"\r\n" for c in codings)
    return b"HTTP/1.1 200 OK\r\n" + fields + b"\r\n" + chunk_line + b"\r\nok\r\n0\r\n\r\n"


#: Answers a lenient client would read some way; each is a 502, and that connection is closed.
MALFORMED: dict[str, bytes] = {
    "bare CR in a field": b"HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 0\r\nContent-Length: 2\r\n\r\nok",
    "bare LF in a field": b"HTTP/1.1 200 OK\r\nX-A: a\nContent-Length: 0\r\nContent-Length: 2\r\n\r\nok",
    "NUL in a field": b"HTTP/1.1 200 OK\r\nX-A: a\x00\r\nContent-Length: 2\r\n\r\nok",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 2\r\n\r\nok",
    "field name not a token": b"HTTP/1.1 200 OK\r\nX A: a\r\nContent-Length: 2\r\n\r\nok",
    "space before the colon": b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
    "status 2000": b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    "status 200OK": b"HTTP/1.1 200OK\r\nContent-Length: 2\r\n\r\nok",
    "LF line ends": b"HTTP/1.1 200 OK\nContent-Length: 2\n\nokHTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    "Transfer-Encoding gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nok",
    "Transfer-Encoding chunked, gzip": coded(b"chunked, gzip"),
    "Transfer-Encoding chunked twice": coded(b"chunked", b"chunked"),
    "Transfer-Encoding xchunked": coded(b"xchunked"),
    "chunk line with a bare LF": coded(b"chunked", chunk_line=b"2;a\nb"),
}


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)


def answering(answer: bytes, opened: list[int]) -> Callable[..., Awaitable[None]]:
    """A raw upstream that gives every request ``answer`` and keeps its connection open."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opened.append(1)
        try:
            while True:
                await _read_request(reader)
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    return handler


def via(url: str) -> list[str]:
    return [f"{k}: {v}" for k, v in {"x-portkey-provider": "openai", "x-portkey-custom-host": url}.items()]


@pytest.mark.parametrize("case", MALFORMED)
async def test_a_malformed_upstream_answer_is_a_502_and_its_connection_is_not_reused(
    client: Client, raw_server: Any, case: str
) -> None:
    opened: list[int] = []
    url = await raw_server(answering(MALFORMED[case], opened))
    for _ in range(2):
        await client.send(
            raw_request("POST", "/v1/files/x", *via(url), "Authorization: Bearer sk-t", body=b"{}")
        )
        answer = await client.answer()
        assert answer.status == 502, answer.body
        assert "invalid HTTP from upstream" in answer.json()["error"]["message"]
    assert len(opened) == 2


@pytest.mark.parametrize(
    "fields",
    [
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        b"Connection: close\r\nConnection: keep-alive\r\nContent-Length: %d\r\n" % len(COMPLETION),
        b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
    ],
)
async def test_an_upstream_answer_framed_two_ways_is_read_once_and_its_connection_not_reused(
    gateway: Gateway, raw_server: Any, fields: bytes
) -> None:
    chunked = b"Transfer-Encoding" in fields
    body = b"%x\r\n%b\r\n0\r\n\r\n" % (len(COMPLETION), COMPLETION) if chunked else COMPLETION
    opened: list[int] = []
    url = await raw_server(
        answering(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + fields + b"\r\n" + body, opened)
    )
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": url, "Authorization": "Bearer sk-t"}
    for _ in range(2):
        resp = await gateway.post("/v1/chat/completions", CHAT, headers)
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["choices"][0]["message"]["content"] == "hi"
    assert len(opened) == 2


async def test_an_upstream_body_in_one_byte_chunks_costs_its_own_size(raw_server: Any) -> None:
    """Read whole through the pool: one piece per read, collected in one growing buffer."""
    size = MIB
    per_write = 64 * 1024 // 6

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, size, per_write):
            writer.write(b"1\r\nx\r\n" * min(per_write, size - start))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    url = await raw_server(handler)
    pool = UpstreamPool(CachingResolver(HostPolicy()), connect_timeout=5.0, read_timeout=5.0)
    try:
        resp = await pool.request("POST", url + "/", {}, b"{}")
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            body = await resp.read()
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
    finally:
        await pool.close()
    assert body == b"x" * size
    assert peak < 2 * size, f"{peak / size:.2f}x the body"


async def test_an_upstream_body_past_the_limit_is_cut(raw_server: Any) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(64):
            writer.write(b"400\r\n" + b"y" * 1024 + b"\r\n")
            await writer.drain()

    url = await raw_server(handler)
    pool = UpstreamPool(CachingResolver(HostPolicy()), 5.0, 5.0, max_body=32 * 1024)
    try:
        resp = await pool.request("POST", url + "/", {}, b"{}")
        with pytest.raises(OSError, match="larger than 32768 bytes"):
            await resp.read()
    finally:
        await pool.close()
