"""The Realtime API's WebSocket through the gateway, with the ``openai`` SDK's realtime client:
against the mock over a real WebSocket (``openai`` with a custom host, ``azure-openai`` at Azure's
URL) and the in-process ``mock``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from openai import AsyncOpenAI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.conftest import Gateway, Upstream
from tests.multimodal.conftest import headers_for, sdk_client


@pytest.fixture(params=["openai", "azure-openai", "mock"])
async def client(request: Any, gateway: Gateway, upstream: Upstream) -> AsyncIterator[AsyncOpenAI]:
    headers = headers_for(request.param, upstream.url, "gpt-realtime")
    async with sdk_client(gateway, headers) as c:
        yield c


async def test_session_text_turn(client: AsyncOpenAI) -> None:
    async with client.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
        updated = await conn.recv()
        assert updated.type == "session.updated"
        await conn.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Hello there"}],
            }
        )
        await conn.response.create()
        text, kinds = "", []
        async for event in conn:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                break
        assert text == "Mock reply to: Hello there"
        assert kinds[:2] == ["conversation.item.added", "conversation.item.done"]
        assert "response.created" in kinds and kinds[-1] == "response.done"


# ---------------------------------------------------------------------- the relay's edges


class Scripted:
    """A loopback Realtime upstream (aiohttp's WebSocket server) that records its handshake and
    frames, echoes each text message, and closes when told to by a message."""

    def __init__(self, status: int = 101) -> None:
        self.status = status
        self.handshakes: list[dict[str, str]] = []
        self.received: list[str] = []
        self.closed_with: list[int | None] = []

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.handshakes.append({**dict(request.headers), "query": request.query_string})
        if self.status != 101:
            return web.json_response(
                {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}},
                status=self.status,
            )
        ws = web.WebSocketResponse(protocols=("realtime",), max_msg_size=0)
        await ws.prepare(request)
        await ws.send_str('{"type": "session.created"}')
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                self.received.append(message.data)
                if message.data == "close 4001":
                    await ws.close(code=4001, message=b"upstream says bye")
                    break
                await ws.send_str(message.data)
        self.closed_with.append(ws.close_code)
        return ws


@pytest.fixture
async def scripted(aiohttp_server: Any) -> Any:
    async def start(status: int = 101) -> tuple[Scripted, str]:
        upstream = Scripted(status)
        app = web.Application()
        app.router.add_get("/v1/realtime", upstream.handle)
        server = await aiohttp_server(app)
        return upstream, str(server.make_url("/v1"))

    return start


def _ws_url(gateway: Gateway, query: str = "model=gpt-realtime") -> str:
    return f"ws://{gateway.host}:{gateway.port}/v1/realtime?{query}"


async def test_key_from_the_subprotocol_and_frames_both_ways(gateway: Gateway, scripted: Any) -> None:
    upstream, url = await scripted()
    async with connect(
        _ws_url(gateway),
        subprotocols=["realtime", "openai-insecure-api-key.sk-browser", "openai-beta.realtime-v1"],
        additional_headers={"x-portkey-provider": "openai", "x-portkey-custom-host": url},
    ) as ws:
        assert ws.subprotocol == "realtime"
        assert json.loads(await ws.recv()) == {"type": "session.created"}
        big = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * 300_000})
        await ws.send(big)
        assert await ws.recv() == big
        await ws.send(["one ", "fragmented ", "message"])  # a message in three frames
        assert await ws.recv() == "one fragmented message"
    [handshake] = upstream.handshakes
    assert handshake["Authorization"] == "Bearer sk-browser"
    assert handshake["Sec-WebSocket-Protocol"] == "realtime, openai-beta.realtime-v1"
    assert handshake["query"] == "model=gpt-realtime"
    assert not any(k.lower().startswith("x-portkey") for k in handshake)
    await _until(lambda: upstream.closed_with == [1000])  # the client's close reached it


async def test_upstream_close_reaches_the_client_with_its_code(gateway: Gateway, scripted: Any) -> None:
    _, url = await scripted()
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": url, "Authorization": "Bearer sk"}
    async with connect(_ws_url(gateway), additional_headers=headers) as ws:
        await ws.recv()
        await ws.send("close 4001")
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "upstream says bye")


async def test_refused_handshake_is_an_http_error_and_falls_back(gateway: Gateway, scripted: Any) -> None:
    _, bad = await scripted(status=401)
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": bad,
        "Authorization": "Bearer sk-wrong",
    }
    with pytest.raises(InvalidStatus) as refused:
        await connect(_ws_url(gateway), additional_headers=headers)
    assert refused.value.response.status_code == 401
    assert json.loads(refused.value.response.body)["error"]["message"].startswith(
        "openai error: Incorrect API key"
    )
    _, good = await scripted()
    config = json.dumps(
        {
            "strategy": {"mode": "fallback"},
            "targets": [
                {"provider": "openai", "api_key": "sk-1", "custom_host": bad},
                {"provider": "openai", "api_key": "sk-2", "custom_host": good},
            ],
        }
    )
    async with connect(_ws_url(gateway), additional_headers={"x-portkey-config": config}) as ws:
        assert ws.response.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
        assert json.loads(await ws.recv()) == {"type": "session.created"}


async def test_plain_get_and_bad_upgrades_are_refused(gateway: Gateway) -> None:
    resp = await gateway.get("/v1/realtime?model=m", {"x-portkey-provider": "mock"})
    assert resp.status == 426
    assert resp.headers["Upgrade"] == "websocket"
    assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_frame_size_and_idle_limits(make_gateway: Any) -> None:
    gateway = await make_gateway(realtime_max_frame_bytes=10_000, realtime_idle_seconds=0.5)
    headers = {"x-portkey-provider": "mock", "Authorization": "Bearer sk"}
    async with connect(_ws_url(gateway), additional_headers=headers, max_size=None) as ws:
        await ws.recv()
        await ws.send("x" * 20_000)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    async with connect(_ws_url(gateway), additional_headers=headers) as ws:
        await ws.recv()
        with pytest.raises(ConnectionClosed) as idle:
            await asyncio.wait_for(ws.recv(), 5)
    assert idle.value.rcvd is not None and idle.value.rcvd.code == 1001


async def _until(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_shutdown_closes_a_session_with_going_away(make_gateway: Any) -> None:
    gateway = await make_gateway(shutdown_grace=0.2)
    headers = {"x-portkey-provider": "mock", "Authorization": "Bearer sk"}
    async with connect(_ws_url(gateway), additional_headers=headers) as ws:
        await ws.recv()
        await gateway.server.stop(gateway.app.settings.shutdown_grace)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
