"""Provider ``vertex-ai``, publisher ``anthropic``: Claude on Vertex through the gateway to the mock.

Each test asserts both sides: what reached the upstream (``:rawPredict`` / ``:streamRawPredict``
URLs, a body with ``anthropic_version`` and without ``model``, which the mock refuses otherwise)
and what the client got back, parsed by the ``openai`` SDK where it fits.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
import openai
import pytest

from fastgate.mock import gemini_format
from fastgate.providers.base import Call, Endpoint, Target
from fastgate.providers.vertex import VertexProvider
from fastgate.schema.openai import view_decoder
from tests.conftest import Gateway, Upstream
from tests.providers.gemini_support import client, mock_root, sent
from tests.providers.test_vertex import account_json, vertex_headers
from tests.support.sse import data_payloads

CLAUDE = "claude-sonnet-4@20250514"
MODEL = "anthropic." + CLAUDE
TOKEN = "ya29.client-token"
ROOT = "/v1/projects/proj-1/locations/europe-west4/publishers/anthropic/models"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a thing up",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def chat(text: str = "hello claude", **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **fields}


def headers(upstream: Upstream, **extra: str) -> dict[str, str]:
    return vertex_headers(upstream, Authorization=f"Bearer {TOKEN}", **extra)


def chunks_of(raw: bytes) -> list[Any]:
    payloads = data_payloads(raw)
    assert payloads[-1] == b"[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


@pytest.mark.parametrize("model", [MODEL, CLAUDE])
async def test_chat_goes_to_raw_predict_without_model_in_the_body(
    gateway: Gateway, upstream: Upstream, model: str
) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello claude"}]
    async with client(gateway, vertex_headers(upstream), key=TOKEN) as c:
        answer = await c.chat.completions.create(model=model, messages=messages, temperature=0.5)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "Mock reply to: hello claude"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.id.startswith("msg_mock") and answer.model == CLAUDE
    assert answer.model_extra is not None and answer.model_extra["provider"] == "vertex-ai"
    assert answer.usage is not None and answer.usage.completion_tokens == 5
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 5

    [received] = upstream.requests
    assert received["path"] == f"{ROOT}/{CLAUDE}:rawPredict"
    assert received["headers"]["Authorization"] == f"Bearer {TOKEN}"
    # The version travels in the body on Vertex, never in a header.
    assert "anthropic-version" not in {h.lower() for h in received["headers"]}
    assert sent(upstream) == {
        "anthropic_version": "vertex-2023-10-16",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "hello claude"}],
        "temperature": 0.5,
    }


async def test_version_and_beta_options(gateway: Gateway, upstream: Upstream) -> None:
    extra = {"x-portkey-anthropic-version": "vertex-2099-01-01", "x-portkey-anthropic-beta": "beta-a"}
    resp = await gateway.post("/v1/chat/completions", chat(), headers(upstream, **extra))
    assert resp.status == 200, await resp.text()
    assert sent(upstream)["anthropic_version"] == "vertex-2099-01-01"
    assert upstream.requests[-1]["headers"]["anthropic-beta"] == "beta-a"


async def test_stream_through_the_sdk(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, vertex_headers(upstream), key=TOKEN) as c:
        stream = await c.chat.completions.create(
            **chat("hello stream [mock chunks=4]"),
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Mock reply to: hello stream"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and chunks[-1].choices == []
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens > 0
    assert {ch.model_extra["provider"] for ch in chunks if ch.model_extra} == {"vertex-ai"}
    [received] = upstream.requests
    assert received["path"] == f"{ROOT}/{CLAUDE}:streamRawPredict"
    body = sent(upstream)
    assert body["stream"] is True and "model" not in body and "stream_options" not in body


async def test_tools(gateway: Gateway, upstream: Upstream) -> None:
    body = chat("find cats", tools=TOOLS, tool_choice="required")
    data = await (await gateway.post("/v1/chat/completions", body, headers(upstream))).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("toolu_") and call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"query": "find cats"}
    got = sent(upstream)
    assert got["tools"] == [
        {
            "name": "lookup",
            "description": "Look a thing up",
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
        }
    ]
    assert got["tool_choice"] == {"type": "any"}


async def test_stream_tools(gateway: Gateway, upstream: Upstream) -> None:
    body = chat("find cats [mock tool_call=true chunks=3]", stream=True, tools=TOOLS)
    resp = await gateway.post("/v1/chat/completions", body, headers(upstream))
    chunks = chunks_of(await resp.read())
    deltas = [
        c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert deltas[0]["function"] == {"name": "lookup", "arguments": ""} and deltas[0]["type"] == "function"
    assert len(deltas) >= 3 and {d["index"] for d in deltas} == {0}
    assert json.loads("".join(d["function"].get("arguments", "") for d in deltas)) == {"query": "find cats"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert upstream.requests[-1]["path"].endswith(":streamRawPredict")


async def test_prompt_cache_usage(gateway: Gateway, upstream: Upstream) -> None:
    system = [{"type": "text", "text": "shared system prompt " * 5, "cache_control": {"type": "ephemeral"}}]
    body = chat(messages=[{"role": "system", "content": system}, {"role": "user", "content": "hi there"}])
    usages = [
        (await (await gateway.post("/v1/chat/completions", body, headers(upstream))).json())["usage"]
        for _ in range(2)
    ]
    assert sent(upstream)["system"] == system
    assert [u["prompt_tokens_details"]["cached_tokens"] for u in usages] == [0, 15]
    assert usages[0]["prompt_tokens"] == usages[1]["prompt_tokens"] == 15 + 2


@pytest.mark.parametrize(("status", "kind"), [(429, "rate_limit_error"), (529, "overloaded_error")])
async def test_claude_errors_keep_status_and_type(
    gateway: Gateway, upstream: Upstream, status: int, kind: str
) -> None:
    resp = await gateway.post("/v1/chat/completions", chat(f"hi [mock status={status}]"), headers(upstream))
    assert resp.status == status
    assert await resp.json() == {
        "error": {
            "message": f"vertex-ai error: mock failure {status}",
            "type": kind,
            "param": None,
            "code": None,
        },
        "provider": "vertex-ai",
    }


async def test_sdk_raises_on_claude_errors(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, vertex_headers(upstream), key=TOKEN) as c:
        with pytest.raises(openai.RateLimitError) as info:
            await c.chat.completions.create(**chat("x [mock status=429]"))
    assert info.value.status_code == 429


def test_vertex_front_door_errors_stay_google_shaped() -> None:
    """Vertex itself (quota, auth, unknown model) answers google.rpc.Status even for Claude."""
    body = gemini_format.error(429, "Quota exceeded for online_prediction_requests_per_base_model")
    mapped = msgspec.json.decode(VertexProvider().error(429, body))
    assert mapped["error"]["type"] == "rate_limit_error"
    assert mapped["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert mapped["error"]["message"].startswith("vertex-ai error: Quota exceeded")


async def test_mid_stream_error_event(gateway: Gateway, upstream: Upstream) -> None:
    body = chat("hello [mock fail=error_mid_stream chunks=6]", stream=True)
    chunks = chunks_of(await (await gateway.post("/v1/chat/completions", body, headers(upstream))).read())
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["error"]["type"] == "overloaded_error"
    assert chunks[-1]["error"]["message"] == "vertex-ai error: Overloaded"
    assert chunks[-1]["provider"] == "vertex-ai"


async def test_completions(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, vertex_headers(upstream), key=TOKEN) as c:
        legacy = await c.completions.create(model=MODEL, prompt="say hi", max_tokens=50)
        stream = await c.completions.create(model=MODEL, prompt="say hi", max_tokens=50, stream=True)
        pieces = [chunk.choices[0].text async for chunk in stream if chunk.choices]
    assert legacy.object == "text_completion" and legacy.choices[0].text == "Mock reply to: say hi"
    assert legacy.choices[0].finish_reason == "stop"
    assert "".join(pieces) == "Mock reply to: say hi"
    assert [r["path"] for r in upstream.requests] == [
        f"{ROOT}/{CLAUDE}:rawPredict",
        f"{ROOT}/{CLAUDE}:streamRawPredict",
    ]
    first = sent(upstream, 0)
    assert first["messages"] == [{"role": "user", "content": "say hi"}] and first["max_tokens"] == 50
    assert "model" not in first and first["anthropic_version"] == "vertex-2023-10-16"


async def test_one_token_serves_gemini_and_claude(gateway: Gateway, upstream: Upstream) -> None:
    sa = {"x-portkey-vertex-service-account-json": account_json(upstream)}
    gemini = {"model": "gemini-2.0-flash", "messages": [{"role": "user", "content": "hello gemini"}]}
    async with client(gateway, vertex_headers(upstream, **sa), key="unused") as c:
        answers = await asyncio.gather(
            *(c.chat.completions.create(**body) for body in (chat(), gemini, chat(), gemini))  # type: ignore[call-overload]
        )
    assert [a.choices[0].message.content for a in answers] == [
        "Mock reply to: hello claude",
        "Mock reply to: hello gemini",
    ] * 2
    paths = [r["path"] for r in upstream.requests]
    assert paths.count("/token") == 1
    calls = [r for r in upstream.requests if r["path"] != "/token"]
    prefix = "/v1/projects/fastgate-test-project/locations/europe-west4/publishers"
    assert sorted(r["path"] for r in calls) == [
        f"{prefix}/anthropic/models/{CLAUDE}:rawPredict",
        f"{prefix}/anthropic/models/{CLAUDE}:rawPredict",
        f"{prefix}/google/models/gemini-2.0-flash:generateContent",
        f"{prefix}/google/models/gemini-2.0-flash:generateContent",
    ]
    tokens = {r["headers"]["Authorization"] for r in calls}
    assert len(tokens) == 1 and tokens.pop().startswith("Bearer ya29.mock-")


async def test_embeddings_with_a_claude_model_are_refused(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/embeddings", {"model": MODEL, "input": "x"}, headers(upstream))
    assert resp.status == 400
    assert "not supported by vertex-ai for Claude models" in (await resp.json())["error"]["message"]
    assert upstream.requests == []


def test_url_for_the_global_region() -> None:
    body = msgspec.json.encode(chat(stream=True))
    call = Call(
        endpoint=Endpoint.CHAT,
        target=Target(
            provider="vertex-ai", api_key="t", options={"vertex_project_id": "p", "vertex_region": "global"}
        ),
        body=body,
        view=view_decoder.decode(body),
    )
    assert VertexProvider().request(call).url == (
        f"https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/anthropic/models/{CLAUDE}"
        ":streamRawPredict"
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"model": CLAUDE, "anthropic_version": "vertex-2023-10-16"},
            "model: Extra inputs are not permitted",
        ),
        ({}, "anthropic_version: Field required"),
    ],
)
async def test_mock_refuses_what_vertex_refuses(
    gateway: Gateway, upstream: Upstream, body: dict[str, Any], message: str
) -> None:
    full = {"max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **body}
    url = f"{mock_root(upstream)}{ROOT}/{CLAUDE}:rawPredict"
    resp = await gateway.session.post(url, json=full, headers={"Authorization": "Bearer t"})
    assert resp.status == 400
    error = await resp.json()
    assert error["type"] == "error"
    assert error["error"] == {"type": "invalid_request_error", "message": message}


async def test_config_override_model_and_options(gateway: Gateway, upstream: Upstream) -> None:
    config = {
        "provider": "vertex-ai",
        "api_key": TOKEN,
        "custom_host": mock_root(upstream) + "/v1",
        "vertexProjectId": "proj-2",
        "vertex_region": "us-east5",
        "anthropic_beta": ["beta-a", "beta-b"],
        "override_params": {"model": MODEL, "max_tokens": 64},
    }
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    resp = await gateway.post("/v1/chat/completions", body, {"x-portkey-config": json.dumps(config)})
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["model"] == CLAUDE
    [received] = upstream.requests
    assert (
        received["path"]
        == f"/v1/projects/proj-2/locations/us-east5/publishers/anthropic/models/{CLAUDE}:rawPredict"
    )
    assert received["headers"]["anthropic-beta"] == "beta-a,beta-b"
    got = sent(upstream)
    assert got["max_tokens"] == 64 and "model" not in got
