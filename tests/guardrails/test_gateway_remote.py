"""Checks that call out (webhook, log) through a running gateway, against aiohttp servers on
loopback: what they are sent (never the client's headers), their verdicts and transformations,
errors failing open, and ``async`` hooks run once the answer went out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import Gateway, Upstream
from tests.guardrails.conftest import Hook, guarded, hook_results, openai_client, refused
from tests.support.sse import openai_chunks


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def answer(text: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    return {"id": "chatcmpl-hook", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip


async def test_a_webhook_denies_and_never_gets_the_clients_headers(
    gateway: Gateway, upstream: Upstream, endpoint: tuple[Hook, str]
) -> None:
    hook, base = endpoint
    hook.answer = {"verdict": False}
    config = guarded(
        upstream, input_guardrails=[{"deny": True, "default.webhook": {"webhookURL": base + "/hook"}}]
    )
    await refused(gateway, config, chat("is this allowed?"), **{"x-portkey-metadata": '{"user": "u1"}'})
    (sent,) = hook.bodies
    assert sent["request"]["json"] == chat("is this allowed?")
    assert sent["request"]["text"] == "is this allowed?"
    assert (sent["requestType"], sent["provider"], sent["eventType"]) == (
        "chatComplete",
        "openai",
        "beforeRequestHook",
    )
    assert sent["metadata"] == {"user": "u1"}
    assert "authorization" not in {k.lower() for k in hook.headers[0]}
    assert "sk-client" not in json.dumps(sent) and "sk-guarded" not in json.dumps(sent)
    assert upstream.requests == []


async def test_webhook_transformations_reach_the_upstream_and_the_client(
    gateway: Gateway, upstream: Upstream, endpoint: tuple[Hook, str]
) -> None:
    hook, base = endpoint
    hook.answers = [
        {"verdict": True, "transformedData": {"request": {"json": chat("cleaned by the webhook")}}},
        {"verdict": True, "transformedData": {"response": {"json": answer("replaced by the webhook")}}},
    ]
    url = {"webhookURL": base + "/hook"}
    config = guarded(
        upstream, input_guardrails=[{"default.webhook": url}], output_guardrails=[{"default.webhook": url}]
    )
    async with openai_client(gateway, config) as client:
        completion = await client.chat.completions.create(**chat("raw text"))
    assert upstream.bodies()[0]["messages"] == [{"role": "user", "content": "cleaned by the webhook"}]
    assert completion.choices[0].message.content == "replaced by the webhook"
    # The output webhook judged what the upstream said to the transformed request.
    assert hook.bodies[1]["response"]["json"]["choices"][0]["message"]["content"] == (
        "Mock reply to: cleaned by the webhook"
    )


@pytest.mark.parametrize(("fail_on_error", "status"), [(False, 200), (True, 446)])
async def test_a_webhook_that_fails_fails_open_unless_fail_on_error(
    gateway: Gateway, upstream: Upstream, endpoint: tuple[Hook, str], fail_on_error: bool, status: int
) -> None:
    hook, base = endpoint
    hook.status = 500
    check = {"webhookURL": base + "/hook", "failOnError": fail_on_error}
    config = guarded(upstream, input_guardrails=[{"deny": True, "default.webhook": check}])
    resp = await gateway.post("/v1/chat/completions", chat("hi"), {"x-portkey-config": json.dumps(config)})
    assert resp.status == status
    before, _ = hook_results(await resp.json())
    assert before[0]["checks"][0]["error"]["message"] == "HTTP error! status: 500"
    assert len(upstream.requests) == (1 if status == 200 else 0)


async def test_the_log_check_posts_the_request_and_the_answer(
    gateway: Gateway, upstream: Upstream, endpoint: tuple[Hook, str]
) -> None:
    hook, base = endpoint
    config = guarded(upstream, output_guardrails=[{"default.log": {"logURL": base + "/hook"}}])
    async with openai_client(gateway, config) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat("log me"))
    assert raw.status_code == 200
    (sent,) = hook.bodies
    assert sent["request"]["json"] == chat("log me")
    assert sent["response"]["json"]["choices"][0]["message"]["content"] == "Mock reply to: log me"
    assert (sent["response"]["statusCode"], sent["eventType"]) == (200, "afterRequestHook")
    assert "authorization" not in {k.lower() for k in hook.headers[0]}
    _, after = hook_results(json.loads(raw.content))
    assert after[0]["checks"][0]["verdict"] is True


@pytest.mark.parametrize("stream", [False, True])
async def test_async_hooks_run_after_the_answer_without_holding_it(
    gateway: Gateway, upstream: Upstream, endpoint: tuple[Hook, str], stream: bool
) -> None:
    hook, base = endpoint
    hook.hold = asyncio.Event()  # the log endpoint answers only once the test lets it
    hook.answer = {"verdict": False}
    url = base + "/hook"
    config = guarded(
        upstream,
        input_guardrails=[{"async": True, "deny": True, "default.webhook": {"webhookURL": url}}],
        output_guardrails=[{"async": True, "default.log": {"logURL": url}}],
    )
    headers = {"x-portkey-config": json.dumps(config)}
    resp = await gateway.post("/v1/chat/completions", chat("later", stream=stream), headers)
    body = await resp.read()
    # Answered while the hooks' endpoint still holds them; a failing async deny changes nothing.
    assert resp.status == 200
    if stream:
        assert openai_chunks(body)[-1] == "[DONE]" and b"hook_results" not in body
    else:
        assert "hook_results" not in json.loads(body)  # async hooks are not in the answer's results
    await asyncio.wait_for(hook.arrived.wait(), 10)
    hook.hold.set()
    await asyncio.wait_for(asyncio.gather(*gateway.app.guardrails.runtime.background), 10)
    webhook, log = hook.bodies
    assert webhook["eventType"] == "beforeRequestHook" and webhook["request"]["text"] == "later"
    assert log["eventType"] == "afterRequestHook"
    assert log["response"]["text"] == "Mock reply to: later"
    assert len(upstream.requests) == 1
