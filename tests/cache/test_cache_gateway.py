"""The response cache through a real gateway: keys per tenant, streams replayed, Redis shared."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
from openai import AsyncOpenAI

from tests.conftest import Gateway, Upstream
from tests.redis_server import RedisProcess

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "what is the capital of France"}]}


def cached_config(
    upstream: Upstream, *, key: str = "sk-tenant-a", provider: str = "openai", **cache: Any
) -> str:
    return json.dumps(
        {
            "provider": provider,
            "api_key": key,
            "custom_host": upstream.url,
            "cache": {"mode": "simple", "max_age": 60, **cache},
        }
    )


async def settle(gateway: Gateway) -> None:
    """Answers are stored in the background: wait for it before asking another gateway."""
    await gateway.app.shared.guard.drain()


async def ask(gateway: Gateway, config: str, body: Any = CHAT, **headers: str) -> tuple[str, bytes]:
    resp = await gateway.post("/v1/chat/completions", body, {"x-portkey-config": config, **headers})
    data = await resp.read()
    await settle(gateway)
    return resp.headers["x-portkey-cache-status"], data


async def test_hit_after_miss_and_the_upstream_asked_once(gateway: Gateway, upstream: Upstream) -> None:
    config = cached_config(upstream)
    status, first = await ask(gateway, config)
    assert status == "MISS"
    status, second = await ask(gateway, config)
    assert status == "HIT"
    assert second == first
    assert len(upstream.requests) == 1
    # Same request, other formatting and key order: same canonical body, still a hit.
    reordered = (
        b'{ "messages": [{"content": "what is the capital of France", "role": "user"}],\n'
        b' "model": "gpt-4o-mini"}'
    )
    resp = await gateway.post("/v1/chat/completions", headers={"x-portkey-config": config}, data=reordered)
    assert resp.headers["x-portkey-cache-status"] == "HIT"
    assert len(upstream.requests) == 1


async def test_tenants_and_providers_never_share_an_answer(gateway: Gateway, upstream: Upstream) -> None:
    await ask(gateway, cached_config(upstream))
    assert (await ask(gateway, cached_config(upstream, key="sk-tenant-b")))[0] == "MISS"
    assert (await ask(gateway, cached_config(upstream, provider="groq")))[0] == "MISS"
    assert (await ask(gateway, cached_config(upstream), {**CHAT, "model": "gpt-4o"}))[0] == "MISS"
    assert len(upstream.requests) == 4
    assert (await ask(gateway, cached_config(upstream, key="sk-tenant-b")))[0] == "HIT"


async def test_force_refresh_asks_again_and_stores_the_new_answer(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = cached_config(upstream)
    await ask(gateway, config)
    status, refreshed = await ask(gateway, config, **{"x-portkey-cache-force-refresh": "true"})
    assert status == "REFRESH"
    assert len(upstream.requests) == 2
    status, again = await ask(gateway, config)
    assert status == "HIT"
    assert again == refreshed


async def test_only_successes_are_stored(gateway: Gateway, upstream: Upstream) -> None:
    config = cached_config(upstream)
    failing = {**CHAT, "mock": {"status": 500}}
    for _ in range(2):
        status, body = await ask(gateway, config, failing)
        assert status == "MISS"
        assert b"error" in body
    assert len(upstream.requests) == 2


async def test_max_age_is_in_seconds(gateway: Gateway, upstream: Upstream) -> None:
    config = cached_config(upstream, max_age=0.3)
    await ask(gateway, config)
    assert (await ask(gateway, config))[0] == "HIT"
    await asyncio.sleep(0.35)
    assert (await ask(gateway, config))[0] == "MISS"


async def test_without_a_cache_config_the_status_is_disabled(gateway: Gateway, upstream: Upstream) -> None:
    config = json.dumps({"provider": "openai", "api_key": "sk", "custom_host": upstream.url})
    assert (await ask(gateway, config))[0] == "DISABLED"
    assert (await ask(gateway, config))[0] == "DISABLED"
    assert len(upstream.requests) == 2


async def test_a_cached_stream_replays_as_a_stream(gateway: Gateway, upstream: Upstream) -> None:
    client = AsyncOpenAI(
        api_key="unused",
        base_url=gateway.url + "/v1",
        default_headers={"x-portkey-config": cached_config(upstream)},
        max_retries=0,
    )

    async def stream_once() -> tuple[str, str, list[str]]:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "tell me a story"}], stream=True
        )
        texts = [c.choices[0].delta.content or "" async for c in raw.parse() if c.choices]
        await settle(gateway)
        return raw.headers["x-portkey-cache-status"], raw.headers["content-type"], texts

    status, _, first = await stream_once()
    assert status == "MISS"
    status, content_type, second = await stream_once()
    assert (status, content_type.split(";")[0]) == ("HIT", "text/event-stream")
    assert second == first
    assert "".join(second)
    assert len(upstream.requests) == 1
    # A streamed answer is not served to a non-streaming request (a different body).
    plain = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "tell me a story"}]
    )
    assert plain.headers["x-portkey-cache-status"] == "MISS"
    await client.close()


async def test_a_hit_stream_ends_with_done(gateway: Gateway, upstream: Upstream) -> None:
    config = cached_config(upstream)
    body = {**CHAT, "stream": True}
    _, first = await ask(gateway, config, body)
    status, second = await ask(gateway, config, body)
    assert status == "HIT"
    assert second == first
    assert second.endswith(b"data: [DONE]\n\n")
    events = [e for e in second.split(b"\n\n") if e]
    chunks = [msgspec.json.decode(e[6:]) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}


async def test_a_broken_stream_is_not_stored(gateway: Gateway, upstream: Upstream) -> None:
    config = cached_config(upstream)
    body = {**CHAT, "stream": True, "mock": {"fail": "error_mid_stream"}}
    for _ in range(2):
        status, data = await ask(gateway, config, body)
        assert status == "MISS"
        assert b'"error"' in data
    assert len(upstream.requests) == 2


async def test_redis_cache_is_shared_and_fails_open(
    make_gateway: Any, upstream: Upstream, redis_server: RedisProcess
) -> None:
    first = await make_gateway(redis_url=redis_server.url)
    second = await make_gateway(redis_url=redis_server.url)
    config = cached_config(upstream)
    status, answer = await ask(first, config)
    assert status == "MISS"
    status, shared = await ask(second, config)
    assert (status, shared) == ("HIT", answer)
    redis_server.stop()
    # Redis gone: the cache fails open, requests still answered by the upstream.
    status, _ = await ask(second, config)
    assert status == "MISS"
    assert len(upstream.requests) == 2
    redis_server.start()
    await asyncio.sleep(0.6)  # the client's reconnect interval
    assert (await ask(first, config))[0] == "MISS"  # a fresh Redis holds nothing
    assert (await ask(second, config))[0] == "HIT"


async def test_cached_request_body_is_decoded_once(gateway: Gateway, upstream: Upstream, monkeypatch) -> None:
    # The cache key needs the whole body: the gateway's own decode of it is reused, not repeated.
    import fastgate.cache.keys as keys

    calls = 0
    real = keys._decode_any

    class Counting:
        def decode(self, data: bytes) -> Any:
            nonlocal calls
            calls += 1
            return real.decode(data)

    monkeypatch.setattr(keys, "_decode_any", Counting())
    status, _ = await ask(gateway, cached_config(upstream))
    assert status == "MISS"
    status, _ = await ask(gateway, cached_config(upstream))
    assert status == "HIT"
    assert calls == 0
