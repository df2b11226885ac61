"""fastgate's own HTTP/1.1 server, black-box over real loopback sockets.

Each test writes bytes to the gateway and reads the bytes it answers: refusals of what could
smuggle a request (each an OpenAI-shaped JSON error, then a closed connection, and the gateway
goes on serving), limits, Expect: 100-continue, HTTP/1.0, keep-alive and pipelining, the idle and
slow-client timeouts, routing errors, chunked request bodies, the Date and Server headers, and
an upstream whose header lines would split the answer if relayed as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import msgspec
import pytest
from openai import APIStatusError, AsyncOpenAI

from fastgate.errors import GatewayError
from tests.conftest import Gateway, Upstream, openai_headers, raw_request

MAX_BODY = 4096
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "say something"}]}
TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Longest wait for an answer the gateway owes at once; timeouts add their own length to it.
PROMPT = 5.0


@dataclass
class Answer:
    status: int
    head: bytes
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        assert values is None or len(values) == 1, f"{name} sent {len(values)} times"
        return values[0] if values else None

    def json(self) -> Any:
        return msgspec.json.decode(self.body)


class Client:
    """One connection to the gateway, spoken in raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, gw: Gateway) -> Client:
        reader, writer = await asyncio.open_connection(gw.host, gw.port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, timeout: float = PROMPT) -> Answer:
        """The next response (an interim 1xx included), framed as its head says."""
        return await asyncio.wait_for(self._answer(), timeout)

    async def _answer(self) -> Answer:
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        for line in lines:
            # One CRLF-ended line per field: a bare CR or LF would be a split the client sees.
            assert b"\n" not in line and b"\r" not in line, head
        version, status, _ = lines[0].split(b" ", 2)
        assert version == b"HTTP/1.1", head
        answer = Answer(int(status), head)
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            # A token, a colon, then no control byte but HTAB (RFC 9110 §5.1, §5.5).
            assert sep and TOKEN.fullmatch(name), head
            assert not any((b < 32 and b != 9) or b == 127 for b in value), head
            answer.headers.setdefault(name.decode().lower(), []).append(
                value.strip().decode("utf-8", "surrogateescape")
            )
        if answer.status < 200:
            return answer
        if answer.header("transfer-encoding") == "chunked":
            pieces = []
            while size := int((await self.reader.readuntil(b"\r\n"))[:-2], 16):
                pieces.append(await self.reader.readexactly(size))
                assert await self.reader.readexactly(2) == b"\r\n"
            assert await self.reader.readexactly(2) == b"\r\n"
            answer.body = b"".join(pieces)
        elif (length := answer.header("content-length")) is not None:
            answer.body = await self.reader.readexactly(int(length))
        else:
            answer.body = await self.reader.read()  # delimited by the close
        return answer

    async def closed_by_gateway(self, timeout: float = PROMPT) -> bool:
        """The gateway closed the connection, sending nothing more."""
        try:
            rest = await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionResetError:
            return True
        assert rest == b"", rest
        return True

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def gw(make_gateway: Any) -> Gateway:
    return await make_gateway(max_body_bytes=MAX_BODY)


@pytest.fixture
async def client(gw: Gateway) -> AsyncIterator[Client]:
    c = await Client.connect(gw)
    yield c
    c.close()


def chat_request(upstream: Upstream, body: dict[str, Any] | None = None, *fields: str) -> bytes:
    headers = [f"{k}: {v}" for k, v in openai_headers(upstream).items()]
    data = msgspec.json.encode(body or CHAT)
    return raw_request(
        "POST", "/v1/chat/completions", "Content-Type: application/json", *headers, *fields, body=data
    )


def assert_openai_error(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status, answer.body
    assert answer.header("content-type") == "application/json"
    data = answer.json()
    assert set(data) == {"error"}, data
    error = data["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    return error


def assert_dated(answer: Answer) -> None:
    date = answer.header("date")
    assert date is not None and date.endswith(" GMT"), answer.head
    assert abs((datetime.now(UTC) - parsedate_to_datetime(date)).total_seconds()) < 5
    assert answer.header("server") == "fastgate"


async def assert_still_serving(gw: Gateway) -> None:
    c = await Client.connect(gw)
    try:
        await c.send(raw_request("GET", "/health"))
        answer = await c.answer()
        assert (answer.status, answer.body) == (200, b'{"status":"ok"}')
    finally:
        c.close()


# ---------------------------------------------------------------------- refusals

CHUNKED = "Transfer-Encoding: chunked"
POST = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
REFUSALS: dict[str, tuple[bytes, int]] = {
    "Content-Length and Transfer-Encoding": (
        (POST + f"Content-Length: 4\r\n{CHUNKED}\r\n\r\n").encode()
        + b"0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        400,
    ),
    "two different Content-Lengths": (
        (POST + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}x").encode(),
        400,
    ),
    "Transfer-Encoding gzip": ((POST + "Transfer-Encoding: gzip\r\n\r\n").encode() + b"\x1f\x8b", 501),
    "Transfer-Encoding chunked, identity": (
        (POST + "Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n").encode(),
        501,
    ),
    "obs-fold": ((POST + "X-Folded: one\r\n two\r\nContent-Length: 2\r\n\r\n{}").encode(), 400),
    "space before a colon": ((POST + "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n").encode(), 400),
    "bare LF in the head": ((POST + "X-A: b\nContent-Length: 2\r\n\r\n{}").encode(), 400),
    "bare LF line ends only": (b"GET /health HTTP/1.1\nHost: 127.0.0.1\n\n", 400),
    "bare CR in the head": ((POST + "X-A: b\rContent-Length: 2\r\n\r\n{}").encode(), 400),
    "NUL in a header value": ((POST + "X-A: b\x00c\r\nContent-Length: 2\r\n\r\n{}").encode(), 400),
    # Echoed in the 404 message, it once made the error itself fail to encode: no answer at all.
    "invalid UTF-8 in the target": (b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400),
    "no Host on HTTP/1.1": (b"GET /health HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    "invalid chunk size": ((POST + f"{CHUNKED}\r\n\r\n").encode() + b"2x\r\n{}\r\n0\r\n\r\n", 400),
    "bare LF in a chunk extension": (
        (POST + f"{CHUNKED}\r\n\r\n").encode() + b"2;x\n\r\n{}\r\n0\r\n\r\n",
        400,
    ),
    "no CRLF after chunk data": ((POST + f"{CHUNKED}\r\n\r\n").encode() + b"2\r\n{}0\r\n\r\n", 400),
    "HTTP/2.0 request line": (b"GET /health HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 505),
    "HTTP/2 prior-knowledge preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    "header line too long": ((POST + "X-Long: " + "a" * 9000 + "\r\n\r\n").encode(), 431),
    "too many header fields": ((POST + "".join(f"X-{i}: v\r\n" for i in range(130)) + "\r\n").encode(), 431),
    "Content-Length over max_body_bytes": ((POST + f"Content-Length: {MAX_BODY + 1}\r\n\r\n").encode(), 413),
    "chunked body over max_body_bytes": (
        (POST + f"{CHUNKED}\r\n\r\n").encode()
        + b"%x\r\n" % (MAX_BODY + 1)
        + b"a" * (MAX_BODY + 1)
        + b"\r\n0\r\n\r\n",
        413,
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
async def test_refusal_is_a_json_error_then_a_close(gw: Gateway, client: Client, case: str) -> None:
    raw, status = REFUSALS[case]
    await client.send(raw)
    answer = await client.answer()
    assert_openai_error(answer, status)
    assert answer.header("connection") == "close"
    assert_dated(answer)
    assert await client.closed_by_gateway()  # nothing after the error: no smuggled request answered
    await assert_still_serving(gw)


async def test_refusal_after_a_pipelined_request_answers_that_one_first(gw: Gateway, client: Client) -> None:
    await client.send(raw_request("GET", "/health") + b"GET /health HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n")
    assert (await client.answer()).status == 200
    assert_openai_error(await client.answer(), 400)
    assert await client.closed_by_gateway()


# ---------------------------------------------------------------------- Expect: 100-continue


async def test_expect_100_continue_waits_for_the_body(
    gw: Gateway, client: Client, upstream: Upstream
) -> None:
    raw = chat_request(upstream, None, "Expect: 100-continue")
    head, body = raw.split(b"\r\n\r\n", 1)
    await client.send(head + b"\r\n\r\n")
    interim = await client.answer()
    assert interim.head == b"HTTP/1.1 100 Continue\r\n\r\n"
    await client.send(body)
    answer = await client.answer()
    assert answer.status == 200, answer.body
    assert answer.json()["object"] == "chat.completion"
    assert upstream.bodies()[-1]["messages"] == CHAT["messages"]


async def test_expect_100_continue_is_answered_once(gw: Gateway, client: Client, upstream: Upstream) -> None:
    raw = chat_request(upstream, None, "Expect: 100-continue")
    head, body = raw.split(b"\r\n\r\n", 1)
    await client.send(head + b"\r\n\r\n")
    assert (await client.answer()).status == 100
    await client.send(body[:10])
    await asyncio.sleep(0.1)  # two reads of the body on the gateway's side
    await client.send(body[10:])
    answer = await client.answer()
    assert answer.status == 200, answer.head


async def test_expect_100_continue_with_a_body_too_large_is_413_at_once(gw: Gateway, client: Client) -> None:
    await client.send((POST + f"Expect: 100-continue\r\nContent-Length: {MAX_BODY + 1}\r\n\r\n").encode())
    answer = await client.answer()  # the final answer, no 100 Continue before it
    assert_openai_error(answer, 413)
    assert await client.closed_by_gateway()


async def test_expect_100_continue_from_http_1_0_is_ignored(gw: Gateway, client: Client) -> None:
    """An HTTP/1.0 client cannot know 100 Continue (RFC 9110 §10.1.1): it only gets the answer."""
    await client.send(b"POST /health HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.reader.read(1), 0.2)
    await client.send(b"{}")
    answer = await client.answer()
    assert_openai_error(answer, 405)
    assert answer.header("connection") == "close"


# ---------------------------------------------------------------------- connection handling


async def test_http_1_0_request_is_answered_with_connection_close(gw: Gateway, client: Client) -> None:
    await client.send(b"GET /health HTTP/1.0\r\n\r\n")
    answer = await client.answer()
    assert answer.status == 200 and answer.header("connection") == "close"
    assert await client.closed_by_gateway()


async def test_http_1_0_keep_alive_is_honoured(gw: Gateway, client: Client) -> None:
    for _ in range(2):
        await client.send(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        answer = await client.answer()
        assert answer.status == 200 and answer.header("connection") != "close"


async def test_http_1_0_keep_alive_is_confirmed(gw: Gateway, client: Client) -> None:
    await client.send(b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    answer = await client.answer()
    assert (answer.header("connection") or "").lower() == "keep-alive"


async def test_http_1_0_stream_is_not_chunked(gw: Gateway, client: Client, upstream: Upstream) -> None:
    raw = chat_request(upstream, {**CHAT, "stream": True}).replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1)
    await client.send(raw)
    answer = await client.answer()
    assert answer.status == 200
    assert answer.header("transfer-encoding") is None, answer.head
    assert answer.body.rstrip().endswith(b"data: [DONE]")


async def test_connection_close_on_http_1_1_closes_after_the_answer(gw: Gateway, client: Client) -> None:
    await client.send(raw_request("GET", "/health", "Connection: close"))
    answer = await client.answer()
    assert answer.status == 200 and answer.header("connection") == "close"
    assert await client.closed_by_gateway()


async def test_keep_alive_serves_many_requests_on_one_connection(
    gw: Gateway, client: Client, upstream: Upstream
) -> None:
    for i in range(5):
        await client.send(
            chat_request(upstream, {**CHAT, "messages": [{"role": "user", "content": f"n{i}"}]})
        )
        answer = await client.answer()
        assert answer.status == 200 and answer.header("connection") is None
        assert f"n{i}" in answer.json()["choices"][0]["message"]["content"]
        assert len(gw.server.connections) == 1
    await client.send(raw_request("GET", "/nope"))
    assert_openai_error(await client.answer(), 404)  # a routing error keeps the connection
    await client.send(raw_request("GET", "/health"))
    assert (await client.answer()).status == 200


async def test_pipelined_requests_are_answered_in_order(
    gw: Gateway, client: Client, upstream: Upstream
) -> None:
    slow = {**CHAT, "mock": {"delay_ms": 200, "content": "first"}}
    await client.send(
        chat_request(upstream, slow)
        + raw_request("GET", "/health")
        + raw_request("GET", "/nope")
        + raw_request("GET", "/")
    )
    first, second, third, fourth = [await client.answer() for _ in range(4)]
    assert first.status == 200 and first.json()["choices"][0]["message"]["content"] == "first"
    assert (second.status, second.body) == (200, b'{"status":"ok"}')
    assert_openai_error(third, 404)
    assert (fourth.status, fourth.body) == (200, b"fastgate says hey!")
    await client.send(raw_request("GET", "/health"))  # and the connection goes on
    assert (await client.answer()).status == 200


async def test_pipelined_request_split_across_reads(gw: Gateway, client: Client, upstream: Upstream) -> None:
    both = raw_request("GET", "/health") + chat_request(upstream)
    cut = len(raw_request("GET", "/health")) + 30
    await client.send(both[:cut])
    assert (await client.answer()).status == 200
    await asyncio.sleep(0.05)
    await client.send(both[cut:])
    assert (await client.answer()).json()["object"] == "chat.completion"


async def test_idle_keep_alive_connection_is_closed(make_gateway: Any, upstream: Upstream) -> None:
    gw = await make_gateway(keepalive_timeout=0.5)
    used, unused, busy = [await Client.connect(gw) for _ in range(3)]
    try:
        # A request that outlasts the idle timeout (and a sweep) is not cut ...
        await busy.send(chat_request(upstream, {**CHAT, "mock": {"delay_ms": 1100}}))
        await used.send(raw_request("GET", "/health"))
        assert (await used.answer()).status == 200
        started = time.monotonic()
        # ... idle ones are closed, between the timeout and the timeout plus a sweep (each second).
        assert await used.closed_by_gateway(timeout=PROMPT)
        assert await unused.closed_by_gateway(timeout=PROMPT)
        assert 0.3 <= time.monotonic() - started < 3.0
        assert (await busy.answer()).status == 200
    finally:
        for c in (used, unused, busy):
            c.close()
    await assert_still_serving(gw)


async def test_slow_request_is_answered_408(make_gateway: Any, upstream: Upstream) -> None:
    gw = await make_gateway(client_timeout=0.5, keepalive_timeout=30)
    partial_head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    partial_body = (POST + 'Content-Length: 20\r\n\r\n{"model":').encode()
    slow_head, slow_body, trickle, slow_upstream = [await Client.connect(gw) for _ in range(4)]

    async def drip() -> None:
        """A byte every 50 ms: always sending, never done (slowloris)."""
        with contextlib.suppress(ConnectionError):
            for byte in partial_head + b"X-Drip: " + b"d" * 100:
                await trickle.send(bytes([byte]))
                await asyncio.sleep(0.05)

    dripping = asyncio.create_task(drip())
    try:
        started = time.monotonic()
        # An upstream slower than client_timeout is no slow client: that request is answered.
        await slow_upstream.send(chat_request(upstream, {**CHAT, "mock": {"delay_ms": 1100}}))
        await slow_head.send(partial_head)
        await slow_body.send(partial_body)
        for c in (slow_head, slow_body, trickle):
            answer = await c.answer(timeout=PROMPT)
            assert 0.5 <= time.monotonic() - started < 3.0
            assert_openai_error(answer, 408)
            assert answer.header("connection") == "close"
        assert (await slow_upstream.answer()).status == 200
        for c in (slow_head, slow_body):
            assert await c.closed_by_gateway()
    finally:
        dripping.cancel()
        for c in (slow_head, slow_body, trickle, slow_upstream):
            c.close()
    await assert_still_serving(gw)


async def test_answer_to_head_has_no_body(gw: Gateway, client: Client) -> None:
    await client.send(raw_request("HEAD", "/health") + raw_request("GET", "/health"))
    await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), PROMPT)  # HEAD: a head alone
    answer = await client.answer()
    assert (answer.status, answer.body) == (200, b'{"status":"ok"}')


def small_window_socket() -> socket.socket:
    """A client socket with a small receive window, so the gateway's answers back up quickly."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    return sock


async def test_pipelined_bytes_buffered_stay_bounded(gw: Gateway, client: Client) -> None:
    one = raw_request("GET", "/health", "X-Pad: " + "p" * 2000)
    count = 2000  # about 4 MB written at once
    client.writer.write(one * count)
    most = 0
    for _ in range(count):
        answer = await client.answer()
        assert answer.status == 200
        most = max([most, *(c.parser.buffered for c in gw.server.connections)])
    # Reading pauses past 256 KiB buffered; one read (at most 256 KiB) may land on top.
    assert most <= 512 * 1024, most


async def test_answers_to_a_client_that_does_not_read_stay_bounded(gw: Gateway) -> None:
    sock = small_window_socket()
    await asyncio.get_running_loop().sock_connect(sock, (gw.host, gw.port))
    _, writer = await asyncio.open_connection(sock=sock)
    try:
        # Each a 404 of about 4 KB (the path is in the message): 8 MB of answers, never read.
        writer.write(raw_request("GET", "/" + "x" * 4000) * 2000)
        most, last, still = 0, None, 0
        deadline = time.monotonic() + 5.0
        # Until the gateway is past the bound, or has stopped moving (200 ms without a change).
        while most <= 1024 * 1024 and still < 4 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            now = [(c.parser.buffered, c.transport.get_write_buffer_size()) for c in gw.server.connections]
            most = max([most, *(written for _, written in now)])
            still = still + 1 if now == last else 0
            last = now
        assert most <= 1024 * 1024, most
    finally:
        writer.close()


async def test_answer_during_graceful_stop_says_connection_close(
    make_gateway: Any, upstream: Upstream
) -> None:
    gw = await make_gateway()
    c = await Client.connect(gw)
    try:
        await c.send(chat_request(upstream, {**CHAT, "mock": {"delay_ms": 300}}))
        await asyncio.sleep(0.1)
        stopping = asyncio.create_task(gw.server.stop(5.0))
        answer = await c.answer()
        assert answer.status == 200
        assert await c.closed_by_gateway()
        await stopping
        assert answer.header("connection") == "close", answer.head
    finally:
        c.close()


async def test_a_failure_to_render_an_error_still_ends_the_request(gw: Gateway, client: Client) -> None:
    async def unrenderable(request: Any) -> None:
        raise GatewayError(400, f"Bad value {request.headers['x-value']}")

    gw.app.router.add("GET", "/unrenderable", unrenderable)
    await client.send(b"GET /unrenderable HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Value: \xff\r\n\r\n")
    try:
        answer = await client.answer(timeout=1.0)
    except (asyncio.IncompleteReadError, ConnectionError):
        return  # closed without an answer: the client at least knows
    assert answer.status >= 400


# ---------------------------------------------------------------------- routes and bodies


async def test_absolute_form_request_target_is_routed_by_its_path(gw: Gateway, client: Client) -> None:
    await client.send(f"GET http://{gw.host}:{gw.port}/health HTTP/1.1\r\nHost: {gw.host}\r\n\r\n".encode())
    answer = await client.answer()
    assert (answer.status, answer.body) == (200, b'{"status":"ok"}')


async def test_unknown_route_is_404_json(gw: Gateway, client: Client) -> None:
    await client.send(raw_request("GET", "/v2/nothing/here"))
    answer = await client.answer()
    error = assert_openai_error(answer, 404)
    assert error["code"] == "not_found" and "/v2/nothing/here" in error["message"]
    assert_dated(answer)


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/health", "GET"),
        ("GET", "/v1/chat/completions", "POST"),
        ("DELETE", "/v1/embeddings", "POST"),
    ],
)
async def test_wrong_method_is_405_with_allow(
    gw: Gateway, client: Client, method: str, path: str, allow: str
) -> None:
    await client.send(raw_request(method, path))
    answer = await client.answer()
    assert_openai_error(answer, 405)
    assert answer.header("allow") == allow


async def test_chunked_request_body_reaches_the_upstream(
    gw: Gateway, client: Client, upstream: Upstream
) -> None:
    body = msgspec.json.encode({**CHAT, "messages": [{"role": "user", "content": "chunked all the way"}]})
    chunks = [body[:1], body[1:17], body[17:-3], body[-3:]]
    framed = b"".join(b"%x;piece=%d\r\n%b\r\n" % (len(c), i, c) for i, c in enumerate(chunks))
    raw = chat_request(upstream).split(b"Content-Length:", 1)[0] + f"{CHUNKED}\r\n\r\n".encode()
    await client.send(raw + framed[:25])
    await asyncio.sleep(0.05)
    await client.send(framed[25:] + b"0\r\nX-Trailer: dropped\r\n\r\n")
    answer = await client.answer()
    assert answer.status == 200, answer.body
    assert answer.json()["choices"][0]["message"]["content"]
    assert upstream.bodies()[-1]["messages"] == [{"role": "user", "content": "chunked all the way"}]
    assert "x-trailer" not in {k.lower() for k in upstream.requests[-1]["headers"]}


async def test_date_and_server_headers_on_every_kind_of_answer(
    gw: Gateway, client: Client, upstream: Upstream
) -> None:
    await client.send(chat_request(upstream))
    assert_dated(await client.answer())
    await client.send(chat_request(upstream, {**CHAT, "stream": True}))
    streamed = await client.answer()
    assert streamed.header("transfer-encoding") == "chunked"
    assert streamed.body.rstrip().endswith(b"data: [DONE]")
    assert_dated(streamed)
    await client.send(raw_request("GET", "/"))
    assert_dated(await client.answer())


# ---------------------------------------------------------------------- an upstream's header lines

#: Header lines an upstream might send that hold a bare LF or CR: relayed as they are, each
#: would end the gateway's header line early and start a header (or a body) of the upstream's;
#: read leniently, the answer would mean one thing to the gateway and another to a stricter peer.
SPLITTING_LINES = [
    b"X-Evil-Lf: a\nInjected-Lf: yes",
    b"X-Evil-Cr: a\rInjected-Cr: yes",
    b"X-Evil-Name\nInjected-Name: yes: v",
    b"X-Evil-Crlf-Body: a\n\nInjected-Body",
    b"Content-Type: application/json\nInjected-Type: yes",
]
#: Header lines that are not HTTP (RFC 9110 §5.1, §5.5; RFC 9112 §5.2): no client may be handed
#: them (h11, under the OpenAI SDK, refuses the whole answer), and the gateway does not guess.
INVALID_LINES = [
    b"X-Evil-Nul: a\x00b",
    b"X-Evil-Del: a\x7fb",
    b"X Evil Space: v",
    b"X(Evil): v",
    b"X-Evil-Fold: a\r\n folded",
]
COMPLETION = msgspec.json.encode(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
)
STREAM = (
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
)


@pytest.fixture
def upstream_with(raw_server: Any) -> Any:
    """``await upstream_with(line)``: a loopback upstream whose every answer (a completion, or a
    stream when asked for one) carries that header line; its base URL."""

    async def start(extra: bytes) -> str:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = next(
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    stream = b'"stream":true' in await reader.readexactly(length)
                    body, kind = (
                        (STREAM, b"text/event-stream") if stream else (COMPLETION, b"application/json")
                    )
                    lines = [b"HTTP/1.1 200 OK", b"X-Ok: fine", extra, b"Content-Type: " + kind]
                    lines.append(b"Content-Length: %d" % len(body))
                    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass

        return await raw_server(serve) + "/v1"

    return start


def via(upstream_url: str) -> list[str]:
    return [
        "Content-Type: application/json",
        "x-portkey-provider: openai",
        f"x-portkey-custom-host: {upstream_url}",
        "Authorization: Bearer sk-test",
    ]


@pytest.mark.parametrize("line", SPLITTING_LINES + INVALID_LINES)
@pytest.mark.parametrize(
    ("path", "stream"),
    [("/v1/chat/completions", False), ("/v1/chat/completions", True), ("/v1/files/passthrough", False)],
    ids=["chat", "chat-streamed", "passthrough"],
)
async def test_upstream_header_line_that_is_not_http_is_a_502(
    gw: Gateway, client: Client, upstream_with: Any, line: bytes, path: str, stream: bool
) -> None:
    url = await upstream_with(line)
    body = msgspec.json.encode({**CHAT, "stream": stream})
    for _ in range(2):  # and the client's connection stays in step for the next request
        await client.send(raw_request("POST", path, *via(url), body=body))
        answer = await client.answer()  # asserts every header line is whole and valid
        assert (answer.status, answer.header("content-type")) == (502, "application/json"), answer.body
        data = answer.json()  # a provider's error: OpenAI's shape, and which provider it was
        assert data["provider"] == "openai" and "invalid HTTP from upstream" in data["error"]["message"]
        assert b"Injected" not in answer.head and b"vil" not in answer.head.lower()


async def test_openai_sdk_reads_the_502_for_such_an_upstream(gw: Gateway, upstream_with: Any) -> None:
    """The SDK's strict HTTP parser refused the whole answer when an invalid line got through:
    now it reads an error it can raise."""
    url = await upstream_with(b"X-Evil-Lf: a\nInjected-Lf: yes")
    sdk = AsyncOpenAI(
        base_url=gw.url + "/v1",
        api_key="sk-test",
        default_headers={"x-portkey-provider": "openai", "x-portkey-custom-host": url},
        max_retries=0,
    )
    try:
        for stream in (False, True):
            with pytest.raises(APIStatusError) as info:
                await sdk.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=stream
                )
            assert info.value.status_code == 502
    finally:
        await sdk.close()


async def test_non_ascii_upstream_header_value_is_relayed_as_sent(
    gw: Gateway, client: Client, upstream_with: Any
) -> None:
    """obs-text is allowed in a field value (RFC 9110 §5.5): relayed byte for byte."""
    url = await upstream_with(b"X-Title: caf\xc3\xa9")
    await client.send(raw_request("POST", "/v1/chat/completions", *via(url), body=msgspec.json.encode(CHAT)))
    answer = await client.answer()
    assert answer.status == 200, answer.body
    assert answer.header("x-ok") == "fine"
    assert b"\r\nx-title: caf\xc3\xa9\r\n" in answer.head.lower(), answer.head
