"""The mock's Anthropic wire format, read raw over HTTP: what an Anthropic client would see."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import anthropic
import pytest

from tests.conftest import Upstream
from tests.support.payloads import recorded_json
from tests.support.sse import named_events

HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
BODY = {"model": "claude-mock-1", "max_tokens": 100, "messages": [{"role": "user", "content": "hi there"}]}


async def post(
    upstream: Upstream, body: dict[str, Any], headers: dict[str, str] = HEADERS
) -> aiohttp.ClientResponse:
    async with aiohttp.ClientSession() as session:
        resp = await session.post(upstream.url + "/messages", json=body, headers=headers)
        await resp.read()
        return resp


async def test_message_object(upstream: Upstream) -> None:
    resp = await post(upstream, BODY)
    assert resp.status == 200
    message = json.loads(await resp.read())
    assert set(message) == {"id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"}
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [{"type": "text", "text": "Mock reply to: hi there"}]
    assert message["stop_reason"] == "end_turn"
    assert set(message["usage"]) == {
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    }


async def test_stream_event_sequence(upstream: Upstream) -> None:
    schema = {"type": "object", "properties": {"query": {"type": "string"}}}
    body = {**BODY, "stream": True, "tools": [{"name": "t", "input_schema": schema}]}
    body["messages"] = [{"role": "user", "content": "hi [mock tool_call=true chunks=2]"}]
    resp = await post(upstream, body)
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = named_events(await resp.read())
    assert all(name == data["type"] for name, data in events)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["stop_reason"] is None
    assert events[6][1]["content_block"] == {
        "type": "tool_use",
        "id": events[6][1]["content_block"]["id"],
        "name": "t",
        "input": {},
    }
    partial = "".join(d["delta"]["partial_json"] for _, d in events[7:10])
    assert json.loads(partial) == {"query": "hi"}
    assert events[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}


@pytest.mark.parametrize(
    ("body", "headers", "status", "kind"),
    [
        (BODY, {"anthropic-version": "2023-06-01"}, 401, "authentication_error"),
        (BODY, {"x-api-key": "k"}, 400, "invalid_request_error"),
        ({k: v for k, v in BODY.items() if k != "max_tokens"}, HEADERS, 400, "invalid_request_error"),
        ({**BODY, "messages": [{"role": "tool", "content": "x"}]}, HEADERS, 400, "invalid_request_error"),
        ({**BODY, "temperature": 1.5}, HEADERS, 400, "invalid_request_error"),
        (
            {**BODY, "messages": [{"role": "user", "content": "x [mock status=529]"}]},
            HEADERS,
            529,
            "overloaded_error",
        ),
    ],
)
async def test_errors_in_anthropic_shape(
    upstream: Upstream, body: dict[str, Any], headers: dict[str, str], status: int, kind: str
) -> None:
    resp = await post(upstream, body, headers)
    assert resp.status == status
    data = json.loads(await resp.read())
    assert data["type"] == "error" and data["error"]["type"] == kind
    assert data["error"]["message"] and data["request_id"].startswith("req_")


async def test_models_answer_by_api_flavour(upstream: Upstream) -> None:
    async with aiohttp.ClientSession() as session:
        anthropic = await (await session.get(upstream.url + "/models", headers=HEADERS)).json()
        openai = await (await session.get(upstream.url + "/models")).json()
    assert anthropic["data"][0]["type"] == "model" and "has_more" in anthropic
    assert openai["object"] == "list"


# ---- what current clients send (Claude Code, the anthropic SDK) --------------------------------

CLAUDE_CODE = recorded_json("messages", "claude_code_request.json")


def sdk(upstream: Upstream, **headers: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=upstream.url.removesuffix("/v1"),
        api_key="sk-ant-test",
        max_retries=0,
        default_headers=headers,
    )


async def test_claude_codes_request_is_answered_through_the_sdk(upstream: Upstream) -> None:
    # system turns in messages, thinking, output_config, context_management, cache_control on
    # every kind of block, a server tool, beta headers: all of it taken, as Anthropic takes it.
    # (temperature and context_management are not parameters of this SDK version: sent as extras)
    extra = {k: CLAUDE_CODE[k] for k in ("context_management", "temperature")}
    fields = {k: v for k, v in CLAUDE_CODE.items() if k not in ("stream", *extra)}
    client = sdk(upstream, **{"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14"})
    async with client.messages.stream(**fields, extra_body=extra) as stream:
        message = await stream.get_final_message()
    await client.close()
    assert [b.type for b in message.content] == ["thinking", "text"]
    assert message.content[0].signature  # type: ignore[union-attr]
    assert upstream.requests[-1]["query"] == "" and upstream.requests[-1]["path"] == "/v1/messages"
    assert upstream.requests[-1]["headers"]["anthropic-beta"].startswith("claude-code-")


async def test_adaptive_thinking_answers_with_a_thinking_block(upstream: Upstream) -> None:
    resp = await post(upstream, {**BODY, "thinking": {"type": "adaptive"}})
    assert [b["type"] for b in json.loads(await resp.read())["content"]] == ["thinking", "text"]
    resp = await post(upstream, {**BODY, "thinking": {"type": "disabled"}})
    assert [b["type"] for b in json.loads(await resp.read())["content"]] == ["text"]


async def test_system_turns_and_a_bearer_token(upstream: Upstream) -> None:
    body = {
        **BODY,
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            *BODY["messages"],
        ],
    }
    resp = await post(upstream, body, {"authorization": "Bearer tok", "anthropic-version": "2023-06-01"})
    assert resp.status == 200
    bad = {**BODY, "messages": [{"role": "system", "content": [{"type": "image", "source": {}}]}]}
    assert (await post(upstream, bad)).status == 400


async def test_server_tools_are_not_called_as_client_tools(upstream: Upstream) -> None:
    server_tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    resp = await post(upstream, {**BODY, "tools": [server_tool], "tool_choice": {"type": "any"}})
    assert [b["type"] for b in json.loads(await resp.read())["content"]] == ["text"]
    client_tool = {"name": "Bash", "input_schema": {"type": "object"}}
    resp = await post(upstream, {**BODY, "tools": [server_tool, client_tool], "tool_choice": {"type": "any"}})
    blocks = json.loads(await resp.read())["content"]
    assert blocks[-1]["type"] == "tool_use" and blocks[-1]["name"] == "Bash"


async def test_top_level_cache_control_caches_the_prefix(upstream: Upstream) -> None:
    body = {
        **BODY,
        "cache_control": {"type": "ephemeral"},
        "messages": [{"role": "user", "content": "a b c d"}],
    }
    first = json.loads(await (await post(upstream, body)).read())["usage"]
    second = json.loads(await (await post(upstream, body)).read())["usage"]
    assert first["cache_creation_input_tokens"] == 4 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == 4 and second["cache_creation_input_tokens"] == 0


async def test_count_tokens(upstream: Upstream) -> None:
    client = sdk(upstream)
    counted = await client.messages.count_tokens(
        model="claude-mock-1", system="one two", messages=[{"role": "user", "content": "three four five"}]
    )
    assert counted.input_tokens == 5
    with pytest.raises(anthropic.BadRequestError):
        await client.messages.count_tokens(model=None, messages=[])  # type: ignore[arg-type]
    await client.close()
    assert upstream.requests[-1]["path"] == "/v1/messages/count_tokens"
