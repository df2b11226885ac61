"""Guardrail verdicts in routing: a 446 falls back and retries like any status, before-request
hooks run once per target and after-request hooks on every answer; the response cache answers
with hook results as Portkey's does, keyed on the request as it is sent."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Gateway, Upstream, config_target
from tests.guardrails.conftest import Hook, guarded, hook_results, openai_client

FAST = {"retry_base_ms": 1.0, "retry_cap_ms": 4.0}
DENY_LONG_INPUT = {"deny": True, "default.wordCount": {"minWords": 1, "maxWords": 2}}
DENY_LONG_OUTPUT = {"deny": True, "default.wordCount": {"minWords": 1, "maxWords": 3}}


def chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def fallback(*targets: dict[str, Any], codes: list[int] | None = None) -> dict[str, Any]:
    strategy: dict[str, Any] = {"mode": "fallback"}
    if codes is not None:
        strategy["on_status_codes"] = codes
    return {"strategy": strategy, "targets": list(targets)}


async def test_a_446_before_the_call_falls_back_without_calling_the_first_upstream(
    gateway: Gateway, upstream: Upstream
) -> None:
    first = {**config_target(upstream, "sk-first"), "input_guardrails": [DENY_LONG_INPUT]}
    config = fallback(first, config_target(upstream, "sk-second"), codes=[446])
    async with openai_client(gateway, config) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat("three words here"))
    assert raw.status_code == 200
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert [r["headers"]["Authorization"] for r in upstream.requests] == ["Bearer sk-second"]
    assert "hook_results" not in json.loads(raw.content)  # the second target runs no hooks


async def test_a_446_after_the_answer_falls_back_and_a_246_does_not(
    gateway: Gateway, upstream: Upstream
) -> None:
    first = {**config_target(upstream, "sk-first"), "output_guardrails": [DENY_LONG_OUTPUT]}
    second = {**config_target(upstream, "sk-second"), "output_guardrails": [DENY_LONG_OUTPUT]}
    # No on_status_codes: any answer but a 2xx moves on, and 246 is a 2xx.
    config = fallback(first, second)
    resp = await gateway.post("/v1/chat/completions", chat("hi"), {"x-portkey-config": json.dumps(config)})
    assert resp.status == 446
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert len(upstream.requests) == 2
    soft = {**config_target(upstream, "sk-first"), "output_guardrails": [DENY_LONG_OUTPUT | {"deny": False}]}
    async with openai_client(gateway, fallback(soft, second)) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat("hi"))
    assert raw.status_code == 246
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[0]"
    assert len(upstream.requests) == 3


async def test_a_446_after_the_answer_is_retried_with_the_hooks_run_again(
    make_gateway: Any, upstream: Upstream, endpoint: tuple[Hook, str]
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    hook, base = endpoint
    hook.answers = [{"verdict": False}, {"verdict": True}]
    config = guarded(
        upstream,
        retry={"attempts": 2, "on_status_codes": [446]},
        input_guardrails=[{"default.wordCount": {"minWords": 1}}],
        output_guardrails=[{"deny": True, "default.webhook": {"webhookURL": base + "/hook"}}],
    )
    async with openai_client(gateway, config) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat("hi"))
    assert raw.status_code == 200
    assert raw.headers["x-portkey-retry-attempt-count"] == "1"
    assert len(upstream.requests) == 2 and len(hook.bodies) == 2
    before, after = hook_results(json.loads(raw.content))
    # Before-request hooks ran once for the target; the after-request results are the last answer's.
    assert len(before) == 1 and [h["verdict"] for h in after] == [True]


async def test_a_cache_hit_carries_the_hook_results_and_the_246(gateway: Gateway, upstream: Upstream) -> None:
    config = guarded(
        upstream,
        cache={"mode": "simple", "max_age": 60},
        input_guardrails=[{"default.wordCount": {"minWords": 5}}],
    )
    answers = []
    async with openai_client(gateway, config) as client:
        for _ in range(2):
            raw = await client.chat.completions.with_raw_response.create(**chat("hi"))
            await gateway.app.shared.guard.drain()
            answers.append((raw.status_code, raw.headers["x-portkey-cache-status"], json.loads(raw.content)))
    assert [(status, cache) for status, cache, _ in answers] == [(246, "MISS"), (246, "HIT")]
    for _, _, body in answers:
        before, _ = hook_results(body)
        assert before[0]["verdict"] is False
        assert body["choices"][0]["message"]["content"] == "Mock reply to: hi"
    assert len(upstream.requests) == 1


async def test_a_cached_answer_is_judged_by_the_output_guardrails_too(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(upstream, cache={"mode": "simple", "max_age": 60}, output_guardrails=[DENY_LONG_OUTPUT])
    for expected in ("MISS", "HIT"):
        resp = await gateway.post(
            "/v1/chat/completions", chat("a long question"), {"x-portkey-config": json.dumps(config)}
        )
        await gateway.app.shared.guard.drain()
        assert (resp.status, resp.headers["x-portkey-cache-status"]) == (446, expected)
        assert (await resp.json())["error"]["type"] == "hooks_failed"
    assert len(upstream.requests) == 1


async def test_the_cache_key_is_the_request_as_transformed(gateway: Gateway, upstream: Upstream) -> None:
    cache = {"mode": "simple", "max_age": 60}
    redacting = guarded(
        upstream,
        cache=cache,
        input_mutators=[{"default.regexReplace": {"rule": r"\d{4}", "redactText": "####"}}],
    )
    plain = guarded(upstream, cache=cache)
    statuses = []
    for config in (redacting, plain, redacting):
        async with openai_client(gateway, config) as client:
            raw = await client.chat.completions.with_raw_response.create(**chat("pin 1234"))
            await gateway.app.shared.guard.drain()
            statuses.append(raw.headers["x-portkey-cache-status"])
            content = raw.parse().choices[0].message.content
            assert content == (
                "Mock reply to: pin ####" if config is redacting else "Mock reply to: pin 1234"
            )
    assert statuses == ["MISS", "MISS", "HIT"]
    assert [b["messages"][0]["content"] for b in upstream.bodies()] == ["pin ####", "pin 1234"]


async def test_a_cached_stream_gets_the_events_a_fresh_one_does(gateway: Gateway, upstream: Upstream) -> None:
    config = guarded(
        upstream,
        cache={"mode": "simple", "max_age": 60},
        input_guardrails=[{"default.wordCount": {"minWords": 5}}],
        output_guardrails=[{"default.contains": {"words": ["Mock"]}}],
    )
    headers = {"x-portkey-config": json.dumps(config), "x-portkey-strict-open-ai-compliance": "false"}
    bodies = []
    for _ in range(2):
        resp = await gateway.post("/v1/chat/completions", {**chat("hi"), "stream": True}, headers)
        assert resp.status == 246
        bodies.append((resp.headers["x-portkey-cache-status"], await resp.read()))
        await gateway.app.shared.guard.drain()
    assert [status for status, _ in bodies] == ["MISS", "HIT"]
    for _, raw in bodies:
        frames = raw.split(b"\n\n")
        assert frames[0].startswith(b'data: {"hook_results":{"before_request_hooks":')
        assert frames[-3].startswith(b'data: {"hook_results":{"after_request_hooks":')
        assert frames[-2] == b"data: [DONE]"
    assert len(upstream.requests) == 1
