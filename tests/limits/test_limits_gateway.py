"""Rate limits and budgets per gateway key and per virtual key, through a real gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from openai import AsyncOpenAI, RateLimitError

from fastgate.limits.prices import Pricing
from fastgate.schema.openai import Usage
from tests.conftest import Gateway, Upstream, openai_headers
from tests.redis_server import RedisProcess

ADMIN = {"Authorization": "Bearer admin-secret"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}]}


async def add(gateway: Gateway, path: str, **spec: Any) -> dict[str, Any]:
    resp = await gateway.post(path, spec, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return dict(await resp.json())


async def settle(gateway: Gateway) -> None:
    await gateway.app.shared.guard.drain()


@pytest.fixture
async def gateway(make_gateway: Any, tmp_path: Path) -> Gateway:
    return await make_gateway(data_dir=str(tmp_path), admin_token="admin-secret")


async def test_requests_per_minute_then_429_with_retry_after(gateway: Gateway, upstream: Upstream) -> None:
    key = await add(gateway, "/admin/keys", limits={"rpm": 2})
    headers = {**openai_headers(upstream), "x-portkey-api-key": key["key"]}
    for _ in range(2):
        assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 429
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    error = (await resp.json())["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert len(upstream.requests) == 2
    # Another key has its own budget of requests.
    other = await add(gateway, "/admin/keys", limits={"rpm": 2})
    headers["x-portkey-api-key"] = other["key"]
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200


async def test_the_sdk_sees_a_rate_limit_error(gateway: Gateway, upstream: Upstream) -> None:
    key = await add(gateway, "/admin/keys", limits={"rpm": 1})
    client = AsyncOpenAI(
        api_key="sk-test",
        base_url=gateway.url + "/v1",
        default_headers={**openai_headers(upstream, key="sk-test"), "x-portkey-api-key": key["key"]},
        max_retries=0,
    )
    await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(RateLimitError):
        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    await client.close()


async def test_tokens_per_minute_from_reported_usage(gateway: Gateway, upstream: Upstream) -> None:
    key = await add(gateway, "/admin/keys", limits={"tpm": 10})
    headers = {**openai_headers(upstream), "x-portkey-api-key": key["key"]}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    usage = (await resp.json())["usage"]
    assert 0 < usage["total_tokens"] < 10
    await settle(gateway)
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200
    await settle(gateway)
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 429
    assert "tokens per minute" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_stream_usage_is_counted_and_hidden_when_not_asked(
    gateway: Gateway, upstream: Upstream, provider: str
) -> None:
    key = await add(gateway, "/admin/keys", limits={"budget_tokens": 1})
    headers = {**openai_headers(upstream, provider), "x-portkey-api-key": key["key"]}
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "stream": True}, headers)
    assert resp.status == 200, await resp.text()
    text = await resp.text()
    await settle(gateway)
    if provider == "openai":
        # The gateway asked the upstream for usage ...
        assert upstream.bodies()[-1]["stream_options"] == {"include_usage": True}
    # ... and the client, who did not, gets the stream it asked for: no usage chunk.
    chunks = [msgspec.json.decode(e[6:]) for e in text.split("\n\n") if e.startswith("data: {")]
    assert chunks
    assert all((c["choices"] and "usage" not in c) or c.get("usage") is None for c in chunks)
    assert text.endswith("data: [DONE]\n\n")
    over = await gateway.post("/v1/chat/completions", {**CHAT, "stream": True}, headers)
    assert over.status == 429
    body = await over.json()
    assert body["error"]["code"] == "budget_exceeded"
    assert "Retry-After" not in over.headers


async def test_virtual_key_token_budget_and_usage(gateway: Gateway, upstream: Upstream) -> None:
    vk = await add(
        gateway, "/admin/virtual-keys", provider="openai", secret="s", custom_host=upstream.url,
        limits={"budget_tokens": 5},
    )  # fmt: skip
    headers = {"x-portkey-virtual-key": vk["slug"]}
    answer = await (await gateway.post("/v1/chat/completions", CHAT, headers)).json()
    await settle(gateway)
    usage = await (await gateway.get(f"/admin/virtual-keys/{vk['slug']}/usage", ADMIN)).json()
    # Priced from the genai-prices catalogue when the operator's table has no price.
    used = answer["usage"]
    price = Pricing().cost("openai", answer["model"], Usage(used["prompt_tokens"], used["completion_tokens"]))
    assert price is not None and price > 0
    assert usage == {"tokens": used["total_tokens"], "cost": pytest.approx(price)}
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 429


async def test_a_client_asking_for_stream_usage_keeps_it(gateway: Gateway, upstream: Upstream) -> None:
    key = await add(gateway, "/admin/keys", limits={"tpm": 1000})
    headers = {**openai_headers(upstream), "x-portkey-api-key": key["key"]}
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    text = await (await gateway.post("/v1/chat/completions", body, headers)).text()
    usage_chunks = [e for e in text.split("\n\n") if '"usage":{' in e]
    assert len(usage_chunks) == 1


async def test_cost_budget_from_the_price_table(
    make_gateway: Any, tmp_path: Path, upstream: Upstream
) -> None:
    server_config = tmp_path / "server.toml"
    # 1,000,000 $ per million tokens: a dollar a token, so one small answer spends the budget.
    server_config.write_text("[prices.gpt-4o-mini]\ninput = 1000000\noutput = 1000000\n")
    gateway = await make_gateway(
        data_dir=str(tmp_path), admin_token="admin-secret", config_path=str(server_config)
    )
    key = await add(gateway, "/admin/keys", limits={"budget_cost": 5})
    headers = {**openai_headers(upstream), "x-portkey-api-key": key["key"]}
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200
    await settle(gateway)
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 429
    assert "cost budget" in (await resp.json())["error"]["message"]
    usage = await (await gateway.get(f"/admin/keys/{key['id']}/usage", ADMIN)).json()
    assert usage["tokens"] > 0
    assert usage["cost"] == usage["tokens"]  # a dollar a token
    assert (await gateway.get("/admin/keys/nope/usage", ADMIN)).status == 404
    # A model missing from the table costs nothing.
    cheap = await add(gateway, "/admin/keys", limits={"budget_cost": 5})
    headers["x-portkey-api-key"] = cheap["key"]
    for _ in range(3):
        assert (await gateway.post("/v1/chat/completions", {**CHAT, "model": "free"}, headers)).status == 200
        await settle(gateway)


async def test_virtual_key_limits_hold_for_every_gateway_key(gateway: Gateway, upstream: Upstream) -> None:
    vk = await add(
        gateway,
        "/admin/virtual-keys",
        provider="openai",
        secret="sk-v",
        custom_host=upstream.url,
        limits={"rpm": 2},
    )
    first = await add(gateway, "/admin/keys")
    second = await add(gateway, "/admin/keys")
    statuses = []
    for key in (first, second, first):
        resp = await gateway.post(
            "/v1/chat/completions",
            CHAT,
            {"x-portkey-api-key": key["key"], "x-portkey-virtual-key": vk["slug"]},
        )
        statuses.append(resp.status)
    assert statuses == [200, 200, 429]
    assert (await resp.json())["error"]["message"].startswith(f"virtual_key:{vk['slug']}")


async def test_a_spent_virtual_key_falls_back_to_the_next_target(
    gateway: Gateway, upstream: Upstream
) -> None:
    limited = await add(
        gateway, "/admin/virtual-keys", provider="openai", secret="sk-a", custom_host=upstream.url,
        limits={"rpm": 1},
    )  # fmt: skip
    spare = await add(
        gateway, "/admin/virtual-keys", provider="groq", secret="sk-b", custom_host=upstream.url
    )
    config = json.dumps(
        {
            "strategy": {"mode": "fallback"},
            "targets": [{"virtual_key": limited["slug"]}, {"virtual_key": spare["slug"]}],
        }
    )
    providers = []
    for _ in range(3):
        resp = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-config": config})
        assert resp.status == 200
        providers.append(resp.headers["x-portkey-provider"])
    assert providers == ["openai", "groq", "groq"]
    assert [r["headers"]["Authorization"] for r in upstream.requests] == [
        "Bearer sk-a",
        "Bearer sk-b",
        "Bearer sk-b",
    ]
    # Alone, the spent virtual key is the client's 429, with its Retry-After.
    alone = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-virtual-key": limited["slug"]})
    assert alone.status == 429
    assert 1 <= int(alone.headers["Retry-After"]) <= 60
    assert (await alone.json())["error"]["code"] == "rate_limit_exceeded"


async def test_a_fallback_counts_one_request_against_the_key(gateway: Gateway, upstream: Upstream) -> None:
    key = await add(gateway, "/admin/keys", limits={"rpm": 2})
    target = {"provider": "openai", "api_key": "sk", "custom_host": upstream.url}
    config = json.dumps({"strategy": {"mode": "fallback"}, "targets": [target, target]})
    headers = {"x-portkey-config": config, "x-portkey-api-key": key["key"]}
    body = {**CHAT, "mock": {"fail_first": 1, "status": 503, "key": "fb"}}
    assert (await gateway.post("/v1/chat/completions", body, headers)).status == 200
    assert len(upstream.requests) == 2
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 429


@pytest.mark.parametrize("fail_open", [True, False])
async def test_redis_down_fail_open_or_closed(
    make_gateway: Any, upstream: Upstream, redis_server: RedisProcess, fail_open: bool
) -> None:
    gateway = await make_gateway(
        redis_url=redis_server.url, admin_token="admin-secret", limits_fail_open=fail_open
    )
    key = await add(gateway, "/admin/keys", limits={"rpm": 2})
    headers = {**openai_headers(upstream), "x-portkey-api-key": key["key"]}
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200
    redis_server.stop()
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    if fail_open:
        assert resp.status == 200
    else:
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "limits_unavailable"
    redis_server.start()
    await asyncio.sleep(0.6)  # the client's reconnect interval
    # Redis is back (empty: nothing persisted): the limits hold again.
    assert [(await gateway.post("/v1/chat/completions", CHAT, headers)).status for _ in range(3)] == [
        200,
        200,
        429,
    ]
