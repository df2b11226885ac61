"""custom_host SSRF policy: refused before any connection is attempted."""

from __future__ import annotations

import pytest

from fastgate.ssrf import HostPolicy
from tests.conftest import Gateway

pytestmark = pytest.mark.netns

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

REFUSED = [
    "http://169.254.169.254/latest/meta-data",
    "http://169.254.169.254:80/v1",
    "http://2852039166/v1",  # 169.254.169.254 as one decimal number
    "http://0xA9FEA9FE/v1",  # ... in hex
    "http://0251.0376.0251.0376/v1",  # ... in octal
    "http://169.254.43518/v1",  # ... in the short a.b.c form
    "http://[::ffff:169.254.169.254]/v1",
    "http://[fd00:ec2::254]/v1",
    "http://metadata.google.internal/computeMetadata/v1",
    "http://metadata/v1",
    "http://10.0.0.5/v1",
    "http://172.16.3.4/v1",
    "http://192.168.1.10:8080/v1",
    "http://100.64.0.1/v1",
    "http://0.0.0.0/v1",
    "http://[fc00::1]/v1",
    "http://[fe80::1]/v1",
    "http://service.internal/v1",
    "http://printer.local/v1",
    "http://user:pass@api.example.com/v1",
    "ftp://api.example.com/v1",
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_",
    "http://api.example.com./v1",
    "http://api.exa mple.com/v1",
    "http://api.example.com/v1?x=1",
]


@pytest.mark.parametrize("host", REFUSED)
async def test_refused_custom_hosts(gateway: Gateway, host: str) -> None:
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": host}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 400, host
    body = await resp.json()
    assert "custom" in body["error"]["message"].lower() or "x-portkey-custom-host" in body["error"]["message"]


@pytest.mark.parametrize("host", REFUSED[:10])
async def test_refused_in_config_too(gateway: Gateway, host: str) -> None:
    import msgspec

    config = msgspec.json.encode({"provider": "openai", "api_key": "k", "custom_host": host}).decode()
    resp = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-config": config})
    assert resp.status == 400


async def test_trusted_private_host_is_allowed_through_policy(make_gateway) -> None:
    # Trusted: the policy lets it through, so the gateway tries to connect; with only loopback in
    # this namespace the connection fails (502), which proves the refusal was lifted and no more.
    gw = await make_gateway(trusted_hosts=("10.0.0.5",), connect_timeout=1.0)
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": "http://10.0.0.5/v1"}
    resp = await gw.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 502


async def test_loopback_can_be_disallowed(make_gateway) -> None:
    gw = await make_gateway(allow_loopback=False)
    for host in (
        "http://127.0.0.1:9/v1",
        "http://localhost:9/v1",
        "http://[::1]:9/v1",
        "http://0x7f000001/v1",
    ):
        headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": host}
        resp = await gw.post("/v1/chat/completions", CHAT, headers)
        assert resp.status == 400, host


async def test_name_resolving_to_private_address_is_refused_at_connect(monkeypatch) -> None:
    import asyncio
    import socket

    from fastgate.errors import GatewayError
    from fastgate.upstream.dns import CachingResolver

    async def fake_getaddrinfo(host, port, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    resolver = CachingResolver(HostPolicy())
    with pytest.raises(GatewayError, match="resolves to an address"):
        await resolver.resolve("innocent.example.com", 443)
    trusting = CachingResolver(HostPolicy(trusted=("innocent.example.com",)))
    assert await trusting.resolve("innocent.example.com", 443) == ["10.1.2.3"]


def test_policy_unit_verdicts() -> None:
    policy = HostPolicy(trusted=(".svc.cluster.local",))
    assert policy.host_verdict("api.openai.com") is None
    assert policy.is_trusted("llm.default.svc.cluster.local")
    assert policy.host_verdict("169.254.169.254") is not None
    assert policy.check_url("http://localhost:11434/") == "http://localhost:11434"
