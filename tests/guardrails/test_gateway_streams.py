"""Guardrails on streamed answers: Portkey's 246 and ``hook_results`` first event (non-strict
mode only), and ours, the output guardrails' verdict on the assembled answer as the last event
before ``[DONE]`` (Portkey skips them on streams)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import Gateway, Upstream
from tests.guardrails.conftest import guarded, openai_client, refused
from tests.support.sdk import portkey
from tests.support.sse import openai_chunks

LONG_INPUT = {"default.wordCount": {"minWords": 1, "maxWords": 2}}
SHORT_OUTPUT = {"default.wordCount": {"minWords": 1, "maxWords": 3}}
NON_STRICT = {"x-portkey-strict-open-ai-compliance": "false"}


def streamed(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": True, **extra}


async def post_stream(
    gateway: Gateway, config: dict[str, Any], body: dict[str, Any], **headers: str
) -> tuple[int, list[Any]]:
    resp = await gateway.post(
        "/v1/chat/completions", body, {"x-portkey-config": json.dumps(config), **headers}
    )
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return resp.status, openai_chunks(await resp.read())


def text_of(chunks: list[Any]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))


async def test_non_strict_stream_starts_with_the_before_results_and_ends_with_the_verdict(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(upstream, input_guardrails=[LONG_INPUT], output_guardrails=[SHORT_OUTPUT])
    status, chunks = await post_stream(gateway, config, streamed("a question of many words"), **NON_STRICT)
    assert status == 246  # a before-request hook failed (without deny)
    first, verdict, done = chunks[0], chunks[-2], chunks[-1]
    assert set(first) == {"hook_results"} and set(first["hook_results"]) == {"before_request_hooks"}
    assert first["hook_results"]["before_request_hooks"][0]["verdict"] is False
    assert text_of(chunks[1:-2]) == "Mock reply to: a question of many words"
    assert set(verdict) == {"hook_results"}
    after = verdict["hook_results"]["after_request_hooks"]
    assert after[0]["verdict"] is False and after[0]["checks"][0]["data"]["wordCount"] == 8
    assert done == "[DONE]"


async def test_strict_stream_has_the_status_and_no_extra_events(gateway: Gateway, upstream: Upstream) -> None:
    config = guarded(upstream, input_guardrails=[LONG_INPUT], output_guardrails=[SHORT_OUTPUT])
    status, chunks = await post_stream(gateway, config, streamed("a question of many words"))
    assert status == 246
    assert all(c == "[DONE]" or c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[-1] == "[DONE]"
    async with openai_client(gateway, config) as client:
        raw = await client.chat.completions.with_raw_response.create(**streamed("a question of many words"))
        assert raw.status_code == 246
        text = ""
        async for chunk in raw.parse():
            text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text == "Mock reply to: a question of many words"


async def test_a_denied_stream_ends_with_an_error_event_the_sdk_raises(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(upstream, output_guardrails=[{"deny": True, **SHORT_OUTPUT}])
    status, chunks = await post_stream(gateway, config, streamed("tell me more"))
    assert status == 200  # sent before the answer was judged
    error = chunks[-2]
    assert error["error"]["type"] == "hooks_failed"
    assert error["hook_results"]["after_request_hooks"][0]["deny"] is True
    assert chunks[-1] == "[DONE]"
    async with openai_client(gateway, config) as client:
        stream = await client.chat.completions.create(**streamed("tell me more"))
        text = ""
        with pytest.raises(openai.APIError, match="guardrail checks defined in the config failed"):
            async for chunk in stream:
                text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text == "Mock reply to: tell me more"


async def test_a_passing_stream_in_strict_mode_is_untouched(gateway: Gateway, upstream: Upstream) -> None:
    config = guarded(upstream, output_guardrails=[{"deny": True, "default.wordCount": {"minWords": 1}}])
    status, chunks = await post_stream(gateway, config, streamed("hello"))
    assert status == 200
    assert all(c == "[DONE]" or c["object"] == "chat.completion.chunk" for c in chunks)
    assert text_of(chunks[:-1]) == "Mock reply to: hello"


async def test_a_denied_stream_request_is_a_446_before_any_event(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(upstream, input_guardrails=[{"deny": True, **LONG_INPUT}])
    body = await refused(gateway, config, streamed("too many words here"))
    assert body["error"]["type"] == "hooks_failed"
    assert upstream.requests == []


async def test_an_upstream_failure_mid_stream_ends_as_it_would_without_hooks(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(
        upstream, input_guardrails=[{"default.wordCount": {"minWords": 1}}], output_guardrails=[SHORT_OUTPUT]
    )
    body = streamed("hello", mock={"fail": "drop_mid_stream"})
    status, chunks = await post_stream(gateway, config, body, **NON_STRICT)
    assert status == 200
    assert set(chunks[0]) == {"hook_results"}  # the before-request results went out first
    # No verdict on an answer that never ended: the error event, then [DONE].
    assert "error" in chunks[-2] and "hook_results" not in chunks[-2]
    assert chunks[-1] == "[DONE]"


async def test_stream_usage_and_output_guardrails_together(gateway: Gateway, upstream: Upstream) -> None:
    config = guarded(upstream, output_guardrails=[SHORT_OUTPUT])
    body = streamed("hello", stream_options={"include_usage": True})
    _, chunks = await post_stream(gateway, config, body, **NON_STRICT)
    usage = [c for c in chunks[:-1] if c.get("usage")]
    assert len(usage) == 1 and chunks.index(usage[0]) < len(chunks) - 2
    assert "hook_results" in chunks[-2]


async def test_through_the_portkey_sdk_which_is_non_strict(gateway: Gateway, upstream: Upstream) -> None:
    config = guarded(upstream, input_guardrails=[LONG_INPUT], output_guardrails=[SHORT_OUTPUT])
    async with portkey(base_url=gateway.url + "/v1", api_key="pk-unused", config=config) as client:
        stream = await client.chat.completions.create(**streamed("a question of many words"))
        chunks = [chunk async for chunk in stream]
    results = [c.model_extra["hook_results"] for c in chunks if "hook_results" in (c.model_extra or {})]
    assert [set(r) for r in results] == [{"before_request_hooks"}, {"after_request_hooks"}]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply to: a question of many words"
