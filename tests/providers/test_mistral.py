"""Mistral through the gateway: the renames reach the upstream, finish reasons come back mapped."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp.test_utils import TestServer

from fastgate.providers.base import Call, Endpoint, Target
from fastgate.providers.registry import get_provider
from fastgate.schema.openai import RequestView
from tests.conftest import Gateway, Upstream, openai_headers
from tests.support.payloads import recorded
from tests.support.replay import Replay, sdk, start_replay

CHAT: dict[str, Any] = {"model": "mistral-small-latest", "messages": [{"role": "user", "content": "bonjour"}]}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture
async def replay(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Replay:
    return await start_replay(aiohttp_server)


async def test_renames_and_kept_parameters(gateway: Gateway, upstream: Upstream) -> None:
    body = {
        **CHAT,
        "tools": TOOLS,
        "tool_choice": "required",
        "seed": 42,
        "stop": ["\n\n"],
        "response_format": {"type": "json_object"},
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "safe_prompt": True,  # a Mistral-only parameter survives too
    }
    resp = await gateway.post("/v1/chat/completions", body, openai_headers(upstream, "mistral-ai"))
    assert resp.status == 200
    [record] = upstream.requests
    assert record["path"] == "/v1/chat/completions"
    expected = {k: v for k, v in body.items() if k != "seed"}
    assert msgspec.json.decode(record["body"]) == {**expected, "tool_choice": "any", "random_seed": 42}
    assert (await resp.json())["provider"] == "mistral-ai"


async def test_body_without_renames_is_sent_byte_for_byte(gateway: Gateway, upstream: Upstream) -> None:
    raw = b'{"model": "mistral-small-latest",  "messages": [{"role": "user", "content": "seed required"}]}'
    resp = await gateway.post(
        "/v1/chat/completions", data=raw, headers=openai_headers(upstream, "mistral-ai")
    )
    assert resp.status == 200
    assert upstream.requests[0]["body"] == raw.decode()


async def test_renames_apply_to_override_params_too(gateway: Gateway, upstream: Upstream) -> None:
    config = {
        "provider": "mistral-ai",
        "api_key": "m-key",
        "custom_host": upstream.url,
        "override_params": {"seed": 5, "tool_choice": "required", "tools": TOOLS},
    }
    headers = {"x-portkey-config": msgspec.json.encode(config).decode()}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 200
    sent = msgspec.json.decode(upstream.requests[0]["body"])
    assert (sent["random_seed"], sent["tool_choice"]) == (5, "any")
    assert "seed" not in sent
    assert upstream.requests[0]["headers"]["Authorization"] == "Bearer m-key"


async def test_embeddings_are_openai_shaped(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, {"x-portkey-provider": "mistral-ai", "x-portkey-custom-host": upstream.url})
    answer = await client.embeddings.create(model="mistral-embed", input=["a", "b"], encoding_format="float")
    assert len(answer.data) == 2
    assert upstream.requests[0]["path"] == "/v1/embeddings"
    await client.close()


@pytest.mark.parametrize(("strict", "finish"), [(True, "length"), (False, "model_length")])
async def test_model_length_finish(gateway: Gateway, replay: Replay, strict: bool, finish: str) -> None:
    replay.serve(recorded("mistral", "chat_model_length.json"))
    headers = {"x-portkey-provider": "mistral-ai", "x-portkey-custom-host": replay.url}
    if not strict:
        headers["x-portkey-strict-open-ai-compliance"] = "false"
    async with sdk(gateway, headers) as client:
        answer = await client.chat.completions.create(**CHAT)
    assert answer.choices[0].finish_reason == finish
    assert answer.choices[0].message.content == "The best French cheese depends on"
    assert replay.received[0]["path"] == "/chat/completions"


async def test_model_length_finish_in_stream(gateway: Gateway, replay: Replay) -> None:
    replay.serve(recorded("mistral", "chat_stream_model_length.sse"))
    headers = {"x-portkey-provider": "mistral-ai", "x-portkey-custom-host": replay.url}
    async with sdk(gateway, headers) as client:
        stream = await client.chat.completions.create(**CHAT, stream=True)
        chunks = [c async for c in stream]
    assert chunks[-1].choices[0].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 50
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The best French cheese depends on"


async def test_legacy_completions_go_through_chat(gateway: Gateway, upstream: Upstream) -> None:
    headers = openai_headers(upstream, "mistral-ai")
    async with sdk(gateway, headers) as client:
        answer = await client.completions.create(
            model="mistral-small-latest", prompt="say hi", max_tokens=9, seed=3
        )
        stream = await client.completions.create(model="mistral-small-latest", prompt="say hi", stream=True)
        pieces = [c async for c in stream]
    assert answer.object == "text_completion"
    assert answer.choices[0].text == "Mock reply to: say hi" and answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None and answer.usage.total_tokens > 0
    assert "".join(p.choices[0].text for p in pieces if p.choices) == "Mock reply to: say hi"
    assert pieces[-1].choices[0].finish_reason == "stop"
    sent = msgspec.json.decode(upstream.requests[0]["body"])
    assert upstream.requests[0]["path"] == "/v1/chat/completions"
    assert sent["messages"] == [{"role": "user", "content": "say hi"}]
    assert "prompt" not in sent and sent["max_tokens"] == 9
    assert sent["random_seed"] == 3 and "seed" not in sent


async def test_legacy_completion_stream_ends_with_done(gateway: Gateway, upstream: Upstream) -> None:
    body = {"model": "m", "prompt": "x", "stream": True}
    resp = await gateway.post("/v1/completions", body, openai_headers(upstream, "mistral-ai"))
    events = [e for e in (await resp.read()).split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    assert all(b'"object":"text_completion"' in e for e in events[:-1])


async def test_legacy_completions_need_one_prompt(gateway: Gateway, upstream: Upstream) -> None:
    body = {"model": "m", "prompt": ["a", "b"]}
    resp = await gateway.post("/v1/completions", body, openai_headers(upstream, "mistral-ai"))
    assert resp.status == 400
    assert not upstream.requests


@pytest.mark.parametrize(("strict", "finish"), [(True, "length"), (False, "model_length")])
async def test_legacy_completion_maps_model_length(
    gateway: Gateway, replay: Replay, strict: bool, finish: str
) -> None:
    replay.serve(recorded("mistral", "chat_model_length.json"))
    headers = {"x-portkey-provider": "mistral-ai", "x-portkey-custom-host": replay.url}
    if not strict:
        headers["x-portkey-strict-open-ai-compliance"] = "false"
    async with sdk(gateway, headers) as client:
        answer = await client.completions.create(model="mistral-small-latest", prompt="cheese?")
    assert answer.choices[0].finish_reason == finish
    assert answer.choices[0].text == "The best French cheese depends on"


def test_default_base_url() -> None:
    call = Call(
        endpoint=Endpoint.CHAT,
        target=Target(provider="mistral-ai", api_key="k"),
        body=b'{"messages": []}',
        view=RequestView(),
    )
    req = get_provider("mistral-ai").request(call)
    assert req.url == "https://api.mistral.ai/v1/chat/completions"
    assert req.headers["Authorization"] == "Bearer k"
