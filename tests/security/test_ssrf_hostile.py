"""More ways to point the gateway at a private or metadata address, all refused unless trusted:
embedded-IPv4 notations, numeric names, DNS names resolving inside, and upstream redirects."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import Gateway

pytestmark = pytest.mark.netns

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

REFUSED = [
    "http://[::ffff:a9fe:a9fe]/v1",  # 169.254.169.254, IPv4-mapped in hex
    "http://[0:0:0:0:0:ffff:a9fe:a9fe]/v1",
    "http://[::169.254.169.254]/v1",  # IPv4-compatible (deprecated)
    "http://[64:ff9b::a9fe:a9fe]/v1",  # NAT64
    "http://[2002:a9fe:a9fe::1]/v1",  # 6to4
    "http://[2002:0a00:0001::1]/v1",  # 6to4 around 10.0.0.1
    "http://[::ffff:10.0.0.1]/v1",
    "http://0251.254.169.254/v1",  # mixed octal
    "http://169.0xfe.169.254/v1",  # mixed hex
    "http://0169.254.169.254/v1",  # not valid octal: some resolvers read it as decimal
    "http://1.2.3.4.5/v1",
    "http://192.0.0.192/v1",  # Oracle Cloud metadata
    "http://100.100.100.200/v1",  # Alibaba Cloud metadata
    "http://[fe80::1%25eth0]/v1",  # zone id
    "http://METADATA.GOOGLE.INTERNAL/v1",
    "http://0/v1",
    "http://[::]/v1",
    "http://198.18.0.1/v1",
    "http://[fd00::1]/v1",
    "http://169.254.169.254%2f@api.example.com/v1",
    "http://api.example.com#@169.254.169.254/v1",
    "http://api.example.com\\@169.254.169.254/v1",
]
LOOPBACK = [
    "http://127.1:9/v1",
    "http://0x7f.1:9/v1",
    "http://2130706433:9/v1",
    "http://017700000001:9/v1",
    "http://[::ffff:127.0.0.1]:9/v1",
    "http://[::ffff:7f00:1]:9/v1",
    "http://LOCALHOST:9/v1",
    "http://api.localhost:9/v1",
]


def headers_for(host: str) -> dict[str, str]:
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": host, "Authorization": "Bearer sk-k"}


@pytest.mark.parametrize("host", REFUSED)
async def test_more_notations_are_refused(gateway: Gateway, host: str) -> None:
    resp = await gateway.post("/v1/chat/completions", CHAT, headers_for(host))
    assert resp.status == 400, host
    config = msgspec.json.encode({"provider": "openai", "custom_host": host}).decode()
    resp = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-config": config})
    assert resp.status == 400, host


@pytest.mark.parametrize("host", LOOPBACK)
async def test_loopback_in_any_notation_is_refused_when_disallowed(make_gateway: Any, host: str) -> None:
    gw = await make_gateway(allow_loopback=False)
    resp = await gw.post("/v1/chat/completions", CHAT, headers_for(host))
    assert resp.status == 400, host


@pytest.fixture
async def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names resolved by a table on this loop, and every address a connection is opened to."""
    table: dict[str, list[str]] = {}
    loop = asyncio.get_running_loop()
    real_connect = loop.create_connection
    connected: list[str] = []

    async def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "not in the test's table")
        family = lambda a: socket.AF_INET6 if ":" in a else socket.AF_INET  # noqa: E731
        return [(family(a), socket.SOCK_STREAM, 6, "", (a, port)) for a in table[host]]

    async def create_connection(factory: Any, host: str | None = None, *args: Any, **kwargs: Any) -> Any:
        if host is not None:  # the test's own client connects by socket, with no host
            connected.append(host)
        return await real_connect(factory, host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(loop, "create_connection", create_connection)
    table["_connected"] = connected  # type: ignore[assignment]
    return table


@pytest.mark.parametrize(
    "addresses",
    [
        ["169.254.169.254"],
        ["10.1.2.3"],
        ["::ffff:169.254.169.254"],
        ["fd00:ec2::254"],
        ["100.64.0.1"],
        ["0.0.0.0"],
    ],
)
async def test_names_resolving_inside_are_refused(
    make_gateway: Any, fake_dns: dict[str, list[str]], addresses: list[str]
) -> None:
    fake_dns["innocent.example.com"] = addresses
    gw = await make_gateway(allow_loopback=False)
    resp = await gw.post("/v1/chat/completions", CHAT, headers_for("http://innocent.example.com/v1"))
    assert resp.status == 400
    assert "resolves to an address that is not allowed" in (await resp.json())["error"]["message"]
    assert fake_dns["_connected"] == []


async def test_only_allowed_addresses_of_a_name_are_connected_to(
    make_gateway: Any, fake_dns: dict[str, list[str]], aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    # A name with a metadata address and a loopback one: only the loopback one is ever dialled.
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"id": "x", "object": "chat.completion", "choices": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    server = await aiohttp_server(app)
    fake_dns["mixed.example.com"] = ["169.254.169.254", "127.0.0.1"]
    gw = await make_gateway()
    host = f"http://mixed.example.com:{server.port}/v1"
    resp = await gw.post("/v1/chat/completions", CHAT, headers_for(host))
    assert resp.status == 200
    assert fake_dns["_connected"] == ["127.0.0.1"]


async def test_trusted_name_may_resolve_inside(make_gateway: Any, fake_dns: dict[str, list[str]]) -> None:
    fake_dns["llm.svc.cluster.local"] = ["10.9.8.7"]
    gw = await make_gateway(trusted_hosts=(".svc.cluster.local",), connect_timeout=1.0)
    resp = await gw.post("/v1/chat/completions", CHAT, headers_for("http://llm.svc.cluster.local/v1"))
    # Allowed by policy, so dialled: in this loopback-only namespace the connection fails.
    assert resp.status == 502
    assert fake_dns["_connected"] == ["10.9.8.7"]


@pytest.mark.parametrize(
    "location", ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:{port}/x"]
)
async def test_upstream_redirects_are_not_followed(
    gateway: Gateway, aiohttp_server: Callable[..., Awaitable[TestServer]], location: str
) -> None:
    hits = 0

    async def target(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.json_response({"secret": "metadata"})

    inner = web.Application()
    inner.router.add_route("*", "/x", target)
    inner_server = await aiohttp_server(inner)

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(location.format(port=inner_server.port))

    outer = web.Application()
    outer.router.add_route("*", "/{tail:.*}", redirect)
    outer_server = await aiohttp_server(outer)
    host = str(outer_server.make_url("/v1"))
    url = gateway.url + "/v1/chat/completions"
    # The test client must not follow a redirect either.
    resp = await gateway.session.post(url, json=CHAT, headers=headers_for(host), allow_redirects=False)
    assert resp.status == 502
    assert "location" not in {k.lower() for k in resp.headers}
    assert "redirect" in (await resp.json())["error"]["message"]
    # The passthrough relays the answer as it is, and does not follow it either.
    resp = await gateway.session.get(
        gateway.url + "/v1/vector_stores/abc", headers=headers_for(host), allow_redirects=False
    )
    assert resp.status == 302
    assert hits == 0
