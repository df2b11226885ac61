"""Bad input: a clear OpenAI-shaped JSON error with the right status, never a traceback."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import Gateway, Upstream, openai_headers

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def _error(resp) -> dict:
    assert resp.content_type == "application/json"
    data = await resp.json()
    assert set(data["error"]) >= {"message", "type", "param", "code"}
    return data


@pytest.mark.parametrize(
    ("data", "headers", "status", "fragment"),
    [
        (b"{not json", {"x-portkey-provider": "mock"}, 400, "not valid JSON"),
        (b"[1, 2]", {"x-portkey-provider": "mock"}, 400, "Invalid request body"),
        (b'{"stream": "yes"}', {"x-portkey-provider": "mock"}, 400, "Invalid request body"),
        (b"", {"x-portkey-provider": "mock"}, 400, "empty"),
        (b'{"messages": []}', {}, 400, "x-portkey-provider"),
        (b'{"messages": []}', {"x-portkey-provider": "no-such-provider"}, 400, "Invalid provider"),
        (b'{"messages": []}', {"x-portkey-config": "{broken"}, 400, "Invalid config"),
        (
            b'{"messages": []}',
            {"x-portkey-config": '{"strategy": {"mode": "sideways"}, "targets": [{}]}'},
            400,
            "strategy.mode",
        ),
        (b'{"messages": []}', {"x-portkey-provider": "mock", "x-portkey-metadata": "nope"}, 400, "metadata"),
        (
            b'{"messages": []}',
            {"x-portkey-provider": "mock", "Content-Type": "text/plain"},
            415,
            "content type",
        ),
    ],
)
async def test_bad_requests(gateway: Gateway, data: bytes, headers: dict, status: int, fragment: str) -> None:
    resp = await gateway.post("/v1/chat/completions", data=data, headers=headers)
    assert resp.status == status
    body = await _error(resp)
    assert fragment.lower() in body["error"]["message"].lower()


async def test_unknown_route_is_404_json(gateway: Gateway) -> None:
    resp = await gateway.get("/nope")
    assert resp.status == 404
    await _error(resp)


async def test_wrong_method_is_405_json(gateway: Gateway) -> None:
    # GET /v1/chat/completions is OpenAI's stored-completions list: it goes to the passthrough.
    resp = await gateway.session.put(gateway.url + "/v1/chat/completions", data=b"{}")
    assert resp.status == 405
    await _error(resp)


async def test_body_over_limit_is_413(make_gateway) -> None:
    gw = await make_gateway(max_body_bytes=1000)
    resp = await gw.post("/v1/chat/completions", data=b"x" * 5000, headers={"x-portkey-provider": "mock"})
    assert resp.status == 413
    await _error(resp)
    ok = await gw.post("/v1/chat/completions", CHAT, {"x-portkey-provider": "mock"})
    assert ok.status == 200


async def test_upstream_refused_is_502(gateway: Gateway, unused_tcp_port: int) -> None:
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"http://127.0.0.1:{unused_tcp_port}/v1",
    }
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 502
    assert (await _error(resp))["provider"] == "openai"


async def test_upstream_drop_is_502(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post(
        "/v1/chat/completions", {**CHAT, "mock": {"fail": "drop"}}, openai_headers(upstream)
    )
    assert resp.status == 502
    await _error(resp)


async def test_upstream_truncated_body_is_502(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post(
        "/v1/chat/completions", {**CHAT, "mock": {"fail": "truncate"}}, openai_headers(upstream)
    )
    assert resp.status == 502
    await _error(resp)


async def test_upstream_slow_read_is_504(make_gateway, upstream: Upstream) -> None:
    gw = await make_gateway(read_timeout=0.2)
    resp = await gw.post(
        "/v1/chat/completions", {**CHAT, "mock": {"delay_ms": 2000}}, openai_headers(upstream)
    )
    assert resp.status == 504
    await _error(resp)


async def test_request_timeout_header_gives_408(gateway: Gateway, upstream: Upstream) -> None:
    headers = {**openai_headers(upstream), "x-portkey-request-timeout": "100"}
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "mock": {"delay_ms": 2000}}, headers)
    assert resp.status == 408
    data = await _error(resp)
    assert data["error"]["type"] == "timeout_error"
    assert "100ms" in data["error"]["message"]


async def test_one_bad_request_does_not_harm_others(gateway: Gateway, upstream: Upstream) -> None:
    good = [gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream)) for _ in range(10)]
    bad = [
        gateway.post("/v1/chat/completions", data=b"{bad", headers={"x-portkey-provider": "mock"})
        for _ in range(10)
    ]
    results = await asyncio.gather(*good, *bad)
    assert [r.status for r in results] == [200] * 10 + [400] * 10
