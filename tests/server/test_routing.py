"""Routing end to end: configs through the gateway to the mock over real HTTP.

Each target reaches the same mock with its own key; ``override_params`` carry the mock's
directives (``mock: {status, fail_first, key, retry_after, delay_ms, fail}``) so each target
fails in its own scripted way, and the mock counts the attempts.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import Gateway, Upstream, config_target

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "route me"}]}
FAST = {"retry_base_ms": 1.0, "retry_cap_ms": 4.0}


def fallback(*targets: dict[str, Any], **strategy: Any) -> dict[str, Any]:
    return {"strategy": {"mode": "fallback", **strategy}, "targets": list(targets)}


def headers(config: dict[str, Any], **extra: str) -> dict[str, str]:
    return {"x-portkey-config": msgspec.json.encode(config).decode(), **extra}


def keys(upstream: Upstream) -> list[str]:
    return [r["headers"]["Authorization"].removeprefix("Bearer ") for r in upstream.requests]


async def test_fallback_moves_on_after_non_2xx(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = fallback(
        config_target(upstream, "a", status=503),
        config_target(upstream, "b", status=400),
        config_target(upstream, "c"),
    )
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 200
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[2]"
    assert resp.headers["x-portkey-retry-attempt-count"] == "0"
    assert (await resp.json())["object"] == "chat.completion"
    assert keys(upstream) == ["a", "b", "c"]


async def test_fallback_on_status_codes_only(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = fallback(
        config_target(upstream, "a", status=503), config_target(upstream, "b"), on_status_codes=[429]
    )
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 503
    body = await resp.json()
    assert body["provider"] == "openai" and "mock failure 503" in body["error"]["message"]
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[0]"
    assert keys(upstream) == ["a"]


async def test_fallback_when_last_target_fails_returns_its_answer(
    make_gateway: Any, upstream: Upstream
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = fallback(config_target(upstream, "a", status=500), config_target(upstream, "b", status=429))
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 429
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"


async def test_unreachable_target_falls_back_whatever_the_codes(
    make_gateway: Any, upstream: Upstream
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    dead = {"provider": "openai", "api_key": "dead", "custom_host": "http://127.0.0.1:9/v1"}
    config = fallback(dead, config_target(upstream, "b"), on_status_codes=[429])
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 200
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert keys(upstream) == ["b"]


async def test_nested_three_levels_reports_the_json_path(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = fallback(
        config_target(upstream, "a", status=502),
        {
            "strategy": {"mode": "loadbalance"},
            "targets": [
                fallback(config_target(upstream, "b", status=500), config_target(upstream, "c")),
                {**config_target(upstream, "never"), "weight": 0},
            ],
        },
    )
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 200
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1].targets[0].targets[1]"
    assert keys(upstream) == ["a", "b", "c"]


async def test_retries_until_success_and_counts_them(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = {**config_target(upstream, "a", fail_first=2, key="r"), "retry": {"attempts": 3}}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 200
    assert resp.headers["x-portkey-retry-attempt-count"] == "2"
    assert resp.headers["x-mock-attempt"] == "3"
    assert len(upstream.requests) == 3


async def test_retries_run_out_count_is_minus_one(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = {**config_target(upstream, "a", fail_first=9, key="r"), "retry": {"attempts": 2}}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 503
    assert resp.headers["x-portkey-retry-attempt-count"] == "-1"
    assert len(upstream.requests) == 3


async def test_attempts_are_capped_by_the_server_setting(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST, max_retry_attempts=2)
    config = {**config_target(upstream, "a", status=502), "retry": {"attempts": 50}}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.headers["x-portkey-retry-attempt-count"] == "-1"
    assert len(upstream.requests) == 3


async def test_no_retry_on_a_status_outside_the_list(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = {**config_target(upstream, "a", status=401), "retry": {"attempts": 3}}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 401
    assert resp.headers["x-portkey-retry-attempt-count"] == "0"
    assert len(upstream.requests) == 1


async def test_retry_then_fallback_inherits_retry(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = {
        **fallback(
            config_target(upstream, "a", status=500), config_target(upstream, "b", fail_first=1, key="b")
        ),
        "retry": {"attempts": 1},
    }
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 200
    assert resp.headers["x-portkey-retry-attempt-count"] == "1"
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert keys(upstream) == ["a", "a", "b", "b"]


async def test_retry_after_is_honoured_instead_of_backoff(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(retry_base_ms=10_000.0, retry_cap_ms=10_000.0)
    config = {
        **config_target(upstream, "a", status=429, fail_first=1, retry_after=0.15, key="ra"),
        "retry": {"attempts": 2, "use_retry_after_header": True},
    }
    started = time.monotonic()
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    elapsed = time.monotonic() - started
    assert resp.status == 200
    assert resp.headers["x-portkey-retry-attempt-count"] == "1"
    assert 0.15 <= elapsed < 2.0


async def test_retry_after_beyond_the_budget_stops_at_once(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST, retry_after_budget_ms=100.0)
    config = {
        **config_target(upstream, "a", status=429, retry_after=30),
        "retry": {"attempts": 3, "useRetryAfterHeader": True},
    }
    started = time.monotonic()
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert time.monotonic() - started < 2.0
    assert resp.status == 429
    assert resp.headers["x-portkey-retry-attempt-count"] == "-1"
    assert len(upstream.requests) == 1


async def test_request_timeout_is_408_and_falls_back(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = fallback(
        {**config_target(upstream, "slow", delay_ms=2000), "request_timeout": 50},
        config_target(upstream, "b"),
    )
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 200
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"

    alone = {**config_target(upstream, "slow", delay_ms=2000), "request_timeout": 50}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(alone))
    assert resp.status == 408
    body = await resp.json()
    assert body["error"]["message"] == "Request exceeded the timeout sent in the request: 50ms"
    assert body["error"]["type"] == "timeout_error"


async def test_timeout_header_beats_config_and_408_can_be_retried(
    make_gateway: Any, upstream: Upstream
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = {
        **config_target(upstream, "slow", delay_ms=2000),
        "request_timeout": 60_000,
        "retry": {"attempts": 2, "on_status_codes": [408]},
    }
    started = time.monotonic()
    resp = await gateway.post(
        "/v1/chat/completions", CHAT, headers(config, **{"x-portkey-request-timeout": "40"})
    )
    assert time.monotonic() - started < 1.5
    assert resp.status == 408
    assert resp.headers["x-portkey-retry-attempt-count"] == "-1"
    assert len(upstream.requests) == 3


async def test_stream_ending_before_its_first_byte_falls_back(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = fallback(config_target(upstream, "a", fail="empty_stream"), config_target(upstream, "b"))
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "stream": True}, headers(config))
    assert resp.status == 200
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    text = await resp.text()
    assert text.count("chat.completion.chunk") >= 2 and text.endswith("data: [DONE]\n\n")
    assert keys(upstream) == ["a", "b"]


async def test_request_timeout_stops_counting_once_the_stream_began(
    make_gateway: Any, upstream: Upstream
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    # The whole stream takes ~240 ms; the timeout only bounds the wait for its first byte.
    config = {**config_target(upstream, "a", chunk_delay_ms=60, chunks=5), "request_timeout": 150}
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "stream": True}, headers(config))
    assert resp.status == 200
    text = await resp.text()
    assert text.count("chat.completion.chunk") >= 5 and text.endswith("data: [DONE]\n\n")


@pytest.fixture
async def broken_stream(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    """An upstream that answers 200 text/event-stream, then stalls or drops before any byte."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        if body.get("mode") == "stall":
            await asyncio.sleep(5)
        assert request.transport is not None
        request.transport.abort()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("/v1"))


@pytest.mark.parametrize("mode", ["drop", "stall"])
async def test_stream_broken_before_first_byte_falls_back(
    make_gateway: Any, upstream: Upstream, broken_stream: str, mode: str
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    broken = {
        "provider": "openai",
        "api_key": "x",
        "custom_host": broken_stream,
        "request_timeout": 100,
        "override_params": {"mode": mode},
    }
    config = fallback(broken, config_target(upstream, "b"))
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "stream": True}, headers(config))
    assert resp.status == 200
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert (await resp.text()).endswith("data: [DONE]\n\n")


@pytest.fixture
async def slow_body(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    """An upstream whose JSON answer's head comes at once and its body's second half 300 ms later."""
    answer = msgspec.json.encode(
        {
            "id": "chatcmpl-slow",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "late"}, "finish_reason": "stop"}
            ],
        }
    )

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.content_length = len(answer)
        await resp.prepare(request)
        await resp.write(answer[:20])
        await asyncio.sleep(0.3)
        await resp.write(answer[20:])
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    server = await aiohttp_server(app)
    return str(server.make_url("/v1"))


async def test_request_timeout_stops_counting_once_the_answer_began(
    make_gateway: Any, upstream: Upstream, slow_body: str
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    target = {"provider": "openai", "api_key": "x", "custom_host": slow_body, "request_timeout": 100}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(target))
    assert resp.status == 200
    assert (await resp.json())["choices"][0]["message"]["content"] == "late"


async def test_stream_failing_after_first_byte_is_not_rerouted(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = fallback(
        config_target(upstream, "a", fail="drop_mid_stream", chunks=6), config_target(upstream, "b")
    )
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "stream": True}, headers(config))
    assert resp.status == 200
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[0]"
    text = await resp.text()
    assert "stream interrupted" in text and text.endswith("data: [DONE]\n\n")
    assert keys(upstream) == ["a"]


async def test_loadbalance_one_to_three(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {**config_target(upstream, "one"), "weight": 1},
            {**config_target(upstream, "three"), "weight": 3},
        ],
    }
    hdrs = headers(config)
    n = 400
    indexes: Counter[str] = Counter()
    for _ in range(n):
        resp = await gateway.post("/v1/chat/completions", CHAT, hdrs)
        assert resp.status == 200
        indexes[resp.headers["x-portkey-last-used-option-index"]] += 1
        resp.release()
    counts = Counter(keys(upstream))
    assert counts["one"] == indexes["config.targets[0]"] and counts["three"] == indexes["config.targets[1]"]
    # Binomial(400, 1/4): sd ≈ 8.7; 5 sd either side.
    assert abs(counts["one"] - n / 4) < 5 * (n * 0.25 * 0.75) ** 0.5


async def test_conditional_on_metadata_params_and_path(make_gateway: Any, upstream: Upstream) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [
                {"query": {"metadata.user.tier": "pro", "params.model": {"$in": ["gpt-4o"]}}, "then": "pro"},
                {"query": {"url.pathname": {"$regex": "embeddings$"}}, "then": "embed"},
            ],
            "default": "free",
        },
        "targets": [
            {**config_target(upstream, "free"), "name": "free"},
            {**config_target(upstream, "pro"), "name": "pro"},
            {**config_target(upstream, "embed"), "name": "embed"},
        ],
    }
    pro = msgspec.json.encode({"user": {"tier": "pro"}}).decode()
    cases = [
        ("/v1/chat/completions", {**CHAT, "model": "gpt-4o"}, pro, "config.targets[1]"),
        ("/v1/chat/completions", CHAT, pro, "config.targets[0]"),
        ("/v1/chat/completions", {**CHAT, "model": "gpt-4o"}, "{}", "config.targets[0]"),
        ("/v1/embeddings", {"model": "e", "input": "x"}, "{}", "config.targets[2]"),
    ]
    for path, body, metadata, index in cases:
        resp = await gateway.post(path, body, headers(config, **{"x-portkey-metadata": metadata}))
        assert resp.status == 200, await resp.text()
        assert resp.headers["x-portkey-last-used-option-index"] == index
    assert keys(upstream) == ["pro", "free", "free", "embed"]


@pytest.mark.parametrize(
    ("config", "param"),
    [
        ({"strategy": {"mode": "sideways"}, "targets": [{"provider": "openai"}]}, "strategy.mode"),
        (
            fallback(
                {"provider": "openai"}, {"provider": "openai"}, {"provider": "openai", "weight": "heavy"}
            ),
            "targets[2].weight",
        ),
        (fallback({"provider": "openai"}, {"api_key": "k"}), "targets[1].provider"),
    ],
)
async def test_bad_config_is_400_naming_the_field(
    gateway: Gateway, config: dict[str, Any], param: str
) -> None:
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["param"] == param and param in error["message"]


async def test_openai_sdk_streams_through_a_fallback_with_retries(
    make_gateway: Any, upstream: Upstream
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = {
        **fallback(
            config_target(upstream, "a", fail="empty_stream"),
            config_target(upstream, "b", fail_first=1, key="sdk"),
        ),
        "retry": {"attempts": 1},
    }
    client = openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key="unused", max_retries=0, default_headers=headers(config)
    )
    async with client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "stream me"}], stream=True
        )
        assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
        assert raw.headers["x-portkey-retry-attempt-count"] == "1"
        text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert text == "Mock reply to: stream me"
    assert keys(upstream) == ["a", "a", "b", "b"]


async def test_conditional_without_a_match_after_a_failure_is_400(
    make_gateway: Any, upstream: Upstream
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    conditional = {
        "strategy": {
            "mode": "conditional",
            "conditions": [{"query": {"metadata.tier": "pro"}, "then": "pro"}],
        },
        "targets": [{**config_target(upstream, "pro"), "name": "pro"}],
    }
    config = fallback(config_target(upstream, "a", status=500), conditional)
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    assert resp.status == 400
    assert "no condition matched" in (await resp.json())["error"]["message"]
    assert keys(upstream) == ["a"]
