"""Upload bodies streamed to the upstream: against a loopback upstream that records what it got
and when, over raw sockets so that framing, timing and limits are the test's to choose."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fastgate.server.upload import HIGH_WATER
from tests.conftest import Gateway, Upstream
from tests.multimodal.conftest import headers_for, sdk_client

BOUNDARY = "testboundary"
FORM_HEAD = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
    "Content-Type: audio/wav\r\n\r\n"
).encode()
FORM_TAIL = f"\r\n--{BOUNDARY}--\r\n".encode()
CTYPE = f"multipart/form-data; boundary={BOUNDARY}"


class Recorder:
    """An upstream that reads each body as it arrives, noting when each piece came."""

    def __init__(self, status: int = 200, read: bool = True) -> None:
        self.status = status
        self.read = read
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.first_piece_at: list[float] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        if not self.read:  # answers before reading the body (a refusal)
            return web.json_response(
                {"error": {"message": "no", "type": "invalid_request_error"}}, status=401
            )
        body = b""
        async for piece in request.content.iter_any():
            if not body:
                self.first_piece_at.append(time.monotonic())
            await self.gate.wait()
            body += piece
        self.bodies.append(body)
        if self.status >= 400:
            return web.json_response(
                {"error": {"message": "busy", "type": "server_error"}}, status=self.status
            )
        return web.json_response({"text": f"got {len(body)} bytes"})


@pytest.fixture
async def recorder_url(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> Callable[..., Awaitable[tuple[Recorder, str]]]:
    async def start(**kwargs: Any) -> tuple[Recorder, str]:
        recorder = Recorder(**kwargs)
        app = web.Application(client_max_size=1024**3)
        app.router.add_post("/v1/audio/transcriptions", recorder.handle)
        app.router.add_post("/v1/files", recorder.handle)
        server = await aiohttp_server(app)
        return recorder, str(server.make_url("/v1"))

    return start


async def _send(
    gateway: Gateway, head: bytes, pieces: list[bytes], pause: float = 0.0
) -> tuple[bytes, asyncio.StreamReader]:
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(head)
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        if pause:
            await asyncio.sleep(pause)
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    return answer, reader


def _head(url: str | None, length: int | None, routing: str = "") -> bytes:
    """A transcription's head; ``url``: sent to it as ``openai``, else routed by ``routing``."""
    framing = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    if url is not None:
        routing = "".join(f"{k}: {v}\r\n" for k, v in headers_for("openai", url).items())
        routing += "Authorization: Bearer sk-up\r\n"
    return (
        f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {CTYPE}\r\n"
        f"{framing}{routing}\r\n"
    ).encode()


async def test_body_reaches_the_upstream_before_the_client_has_sent_it_all(
    gateway: Gateway, recorder_url: Any
) -> None:
    recorder, url = await recorder_url()
    data = FORM_HEAD + b"x" * 300_000
    body = data + FORM_TAIL
    pieces = [body[i : i + 50_000] for i in range(0, len(body), 50_000)]
    sent_last_at = 0.0

    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(_head(url, len(body)))
    for piece in pieces:
        writer.write(piece)
        await writer.drain()
        await asyncio.sleep(0.05)
    sent_last_at = time.monotonic()
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")
    assert recorder.bodies == [body]
    # Streamed: the upstream read its first piece long before the client sent its last.
    assert recorder.first_piece_at[0] < sent_last_at - 0.2
    assert recorder.headers[0]["Content-Length"] == str(len(body))
    assert recorder.headers[0]["Content-Type"] == CTYPE


async def test_chunked_upload_is_sent_chunked(gateway: Gateway, recorder_url: Any) -> None:
    recorder, url = await recorder_url()
    body = FORM_HEAD + b"y" * 70_000 + FORM_TAIL
    chunks = [body[i : i + 9000] for i in range(0, len(body), 9000)]
    framed = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    answer, _ = await _send(gateway, _head(url, None), [framed])
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert recorder.bodies == [body]
    assert recorder.headers[0]["Transfer-Encoding"] == "chunked"


async def test_upload_cap_is_its_own(make_gateway: Any, recorder_url: Any) -> None:
    recorder, url = await recorder_url()
    gateway = await make_gateway(max_body_bytes=10_000, max_upload_bytes=100_000)
    body = FORM_HEAD + b"z" * 50_000 + FORM_TAIL  # over the JSON cap, within the upload cap
    answer, _ = await _send(gateway, _head(url, len(body)), [body])
    assert answer.startswith(b"HTTP/1.1 200"), answer
    big = FORM_HEAD + b"z" * 150_000 + FORM_TAIL
    answer, _ = await _send(gateway, _head(url, len(big)), [])
    assert answer.startswith(b"HTTP/1.1 413"), answer
    chat = b'{"model": "m", "messages": [{"role": "user", "content": "' + b"a" * 20_000 + b'"}]}'
    resp = await gateway.post("/v1/chat/completions", data=chat, headers={"x-portkey-provider": "mock"})
    assert resp.status == 413
    assert len(recorder.bodies) == 1


async def test_chunked_upload_over_the_cap_is_413_midway(make_gateway: Any, recorder_url: Any) -> None:
    _, url = await recorder_url()
    gateway = await make_gateway(max_upload_bytes=50_000)
    framed = b"".join(b"%x\r\n%b\r\n" % (10_000, b"q" * 10_000) for _ in range(8)) + b"0\r\n\r\n"
    answer, _ = await _send(gateway, _head(url, None), [framed])
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"type":"invalid_request_error"' in answer
    assert b"Connection: close" in answer


async def test_upstream_that_answers_before_the_body_closes_the_client_connection_cleanly(
    gateway: Gateway, recorder_url: Any
) -> None:
    _, url = await recorder_url(read=False)
    body = FORM_HEAD + b"w" * 2_000_000 + FORM_TAIL
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(_head(url, len(body)) + body[:100_000])
    answer = await asyncio.wait_for(reader.read(65536), 10)
    assert answer.startswith(b"HTTP/1.1 401"), answer
    assert b"Connection: close" in answer
    writer.close()
    # The gateway is fine: the next client is served.
    resp = await gateway.post(
        "/v1/chat/completions",
        {"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        {"x-portkey-provider": "mock"},
    )
    assert resp.status == 200


async def test_retry_sends_the_whole_upload_again(gateway: Gateway, recorder_url: Any) -> None:
    recorder, url = await recorder_url(status=503)
    config = json.dumps(
        {
            "provider": "openai",
            "api_key": "sk-up",
            "custom_host": url,
            "retry": {"attempts": 1, "on_status_codes": [503]},
        }
    )
    body = FORM_HEAD + b"r" * 200_000 + FORM_TAIL
    answer, _ = await _send(gateway, _head(None, len(body), f"x-portkey-config: {config}\r\n"), [body])
    assert answer.startswith(b"HTTP/1.1 503"), answer
    assert recorder.bodies == [body, body]  # the first attempt and the retry, each whole
    assert b"x-portkey-retry-attempt-count: -1" in answer


async def test_client_that_stops_sending_gets_a_408(make_gateway: Any, recorder_url: Any) -> None:
    _, url = await recorder_url()
    gateway = await make_gateway(client_timeout=1.0)
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(_head(url, 500_000) + FORM_HEAD)
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer


async def test_model_field_routes_a_plain_client(gateway: Gateway, upstream: Upstream) -> None:
    """No provider header: the form's ``model`` (mock/...) picks the provider, as for chat."""
    body = FORM_HEAD.replace(b"whisper-1", b"mock/whisper-1") + b"\x00" * 1000 + FORM_TAIL
    answer, _ = await _send(gateway, _head(None, len(body), "Authorization: Bearer sk-any\r\n"), [body])
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b"x-portkey-provider: mock" in answer
    assert b"Mock transcript of a.wav" in answer


async def test_override_params_change_a_forms_leading_fields(gateway: Gateway, recorder_url: Any) -> None:
    """A config's ``override_params`` reach a form as they reach JSON: ``model`` rewritten in the
    streamed body, its Content-Length adjusted; a field the form lacks is not added."""
    recorder, url = await recorder_url()
    config = json.dumps(
        {
            "provider": "openai",
            "api_key": "sk-up",
            "custom_host": url,
            "override_params": {"model": "whisper-large-v3-turbo", "temperature": 0},
        }
    )
    body = FORM_HEAD + b"v" * 100_000 + FORM_TAIL
    answer, _ = await _send(gateway, _head(None, len(body), f"x-portkey-config: {config}\r\n"), [body])
    assert answer.startswith(b"HTTP/1.1 200"), answer
    expected = body.replace(b"\r\n\r\nwhisper-1\r\n", b"\r\n\r\nwhisper-large-v3-turbo\r\n", 1)
    assert recorder.bodies == [expected]
    assert recorder.headers[0]["Content-Length"] == str(len(expected))


async def test_image_edit_streams_through_the_sdk(gateway: Gateway, aiohttp_server: Any) -> None:
    """``images.edit`` (multipart, two files) reaches an OpenAI-compatible upstream whole."""
    got: list[tuple[str, bytes]] = []

    async def edits(request: web.Request) -> web.Response:
        got.append((request.headers["Content-Type"], await request.read()))
        return web.json_response({"created": 1, "data": [{"b64_json": "aGk="}]})

    app = web.Application()
    app.router.add_post("/v1/images/edits", edits)
    server = await aiohttp_server(app)
    image = b"\x89PNG\r\n\x1a\n" + b"\x00" * 70_000
    async with sdk_client(gateway, headers_for("openai", str(server.make_url("/v1")))) as client:
        result = await client.images.edit(
            image=("in.png", image, "image/png"), prompt="add a hat", model="gpt-image-1"
        )
    assert result.data is not None and result.data[0].b64_json == "aGk="
    [(ctype, body)] = got
    assert ctype.startswith("multipart/form-data; boundary=")
    assert image in body and b'name="prompt"\r\n\r\nadd a hat' in body


async def test_expect_100_continue_then_the_body(gateway: Gateway, recorder_url: Any) -> None:
    recorder, url = await recorder_url()
    body = FORM_HEAD + b"e" * 5000 + FORM_TAIL
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(_head(url, len(body), "").replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\n\r\n", 1))
    interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body)
    answer = await asyncio.wait_for(reader.read(65536), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert recorder.bodies == [body]


async def test_a_slow_upstream_slows_the_client_and_the_gateway_holds_little(
    gateway: Gateway, recorder_url: Any
) -> None:
    recorder, url = await recorder_url()
    recorder.gate.clear()  # the upstream takes its first piece, then stops reading
    body = FORM_HEAD + b"s" * 30_000_000 + FORM_TAIL
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(_head(url, len(body)))

    async def send() -> None:
        view = memoryview(body)
        for i in range(0, len(view), 1 << 20):
            writer.write(view[i : i + (1 << 20)])
            await writer.drain()

    sending = asyncio.create_task(send())
    await asyncio.sleep(1.0)
    assert not sending.done()  # held back: the gateway stopped reading from the client
    [conn] = [c for c in gateway.server.connections if c.busy]
    assert conn._upload is not None and conn._upload.buffered <= HIGH_WATER + (1 << 20)
    recorder.gate.set()
    await asyncio.wait_for(sending, 20)
    answer = await asyncio.wait_for(reader.read(65536), 20)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert recorder.bodies == [body]


async def test_a_client_gone_mid_upload_ends_the_upstream_request(
    gateway: Gateway, recorder_url: Any
) -> None:
    recorder, url = await recorder_url()
    body = FORM_HEAD + b"g" * 1_000_000 + FORM_TAIL
    _, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(_head(url, len(body)) + body[:300_000])
    await writer.drain()
    await _until(lambda: recorder.first_piece_at)  # the upload reached the upstream
    writer.transport.abort()
    await _until(lambda: gateway.app.dispatch.in_flight == 0 and not gateway.app.gateway.pool.busy)
    assert recorder.bodies == []  # the upstream never saw a whole body


async def _until(check: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)
