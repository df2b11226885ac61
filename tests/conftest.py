"""Shared fixtures: real aiohttp servers on loopback: the gateway and the mock provider; and the
environment every test runs in, its own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp.test_utils import TestServer

from fastgate.gateway.app import App, make_app, start, stop
from fastgate.mock.playback import MockServer
from fastgate.mock.server import MOCK_KEY, make_mock_app
from fastgate.server.http_server import HTTPServer
from fastgate.settings import Settings
from tests.redis_server import redis_cluster  # noqa: F401  (one Cluster for the whole session)

#: Variables of the user's that would change what a test sees: fastgate's own, the SDKs' (a base
#: URL or key of the user's), and proxies (load goes to 127.0.0.1 only).
_USER_STATE = ("FASTGATE_", "OPENAI_", "ANTHROPIC_", "PORTKEY_")
_PROXIES = frozenset({"http_proxy", "https_proxy", "all_proxy", "no_proxy"})


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets a data folder and a home of its own, and none of the user's ``FASTGATE_*``
    settings: gateways in this process and every process a test starts (they inherit
    ``os.environ``) never read the user's keys, secret key or Redis. Returns the folder."""
    for name in list(os.environ):
        if name.startswith(_USER_STATE) or name.lower() in _PROXIES:
            monkeypatch.delenv(name)
    root = tmp_path_factory.mktemp("env")
    (root / "home").mkdir()
    monkeypatch.setenv("HOME", str(root / "home"))
    monkeypatch.setenv("FASTGATE_DATA_DIR", str(root / "data"))
    return root


class Upstream:
    """A running mock provider: its base URL and what it received."""

    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.url = str(server.make_url("/v1"))
        self.state: MockServer = server.app[MOCK_KEY]

    @property
    def requests(self) -> list[dict[str, Any]]:
        return self.state.records

    def bodies(self) -> list[dict[str, Any]]:
        return [msgspec.json.decode(r["body"]) if r["body"] else {} for r in self.state.records]


class Gateway:
    """A gateway serving on a loopback port, and a client session for it."""

    def __init__(self, app: App, server: HTTPServer, session: aiohttp.ClientSession) -> None:
        self.app = app
        self.server = server
        self.host = "127.0.0.1"
        self.port = server.port
        self.url = f"http://{self.host}:{self.port}"
        self.session = session

    async def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None, data: bytes | None = None
    ) -> aiohttp.ClientResponse:
        payload = data if data is not None else msgspec.json.encode(body)
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return await self.session.post(self.url + path, data=payload, headers=hdrs)

    async def get(self, path: str, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        return await self.session.get(self.url + path, headers=headers or {})


@pytest.fixture
async def upstream(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Upstream:
    server = await aiohttp_server(make_mock_app())
    return Upstream(server)


@pytest.fixture
async def make_gateway() -> Any:
    started: list[Gateway] = []

    async def factory(**settings: Any) -> Gateway:
        app = make_app(Settings(**{"port": 0, **settings}))
        server = await start(app)
        gw = Gateway(app, server, aiohttp.ClientSession())
        started.append(gw)
        return gw

    yield factory
    for gw in started:
        await gw.session.close()
        await stop(gw.app, gw.server)


@pytest.fixture
async def gateway(make_gateway: Any) -> Gateway:
    return await make_gateway()


def openai_headers(upstream: Upstream, provider: str = "openai", key: str = "sk-test-123") -> dict[str, str]:
    """Headers that send a request to the mock upstream as ``provider``."""
    return {
        "x-portkey-provider": provider,
        "x-portkey-custom-host": upstream.url,
        "Authorization": f"Bearer {key}",
    }


def config_target(upstream: Upstream, api_key: str, **mock: Any) -> dict[str, Any]:
    """A config target reaching the mock as OpenAI; ``mock`` scripts it (via ``override_params``)."""
    node: dict[str, Any] = {"provider": "openai", "api_key": api_key, "custom_host": upstream.url}
    if mock:
        node["override_params"] = {"mock": mock}
    return node


def raw_request(
    method: str, path: str, *fields: str, body: bytes = b"", version: str = "HTTP/1.1", length: bool = True
) -> bytes:
    """An HTTP/1.x request as bytes, header lines as given (for tests that write to a socket)."""
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1", *fields]
    if length and (body or method == "POST"):
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


#: A raw loopback server's connection handler.
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], "asyncio.Future[None] | object"]


@pytest.fixture
async def raw_server() -> AsyncIterator[Callable[[Handler], asyncio.Future[str]]]:
    """Starts loopback servers that run a handler per connection (upstreams that misbehave on
    purpose); gives each one's base URL, and closes their connections and them at the end."""
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: Handler) -> str:
        async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                await handler(reader, writer)  # type: ignore[misc]
            finally:
                writer.close()

        server = await asyncio.start_server(tracked, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    yield start  # type: ignore[misc]
    for writer in writers:
        writer.close()
    for server in servers:
        server.close()
        await server.wait_closed()
