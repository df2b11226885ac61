"""The mock's Anthropic wire format, read raw over HTTP: what an Anthropic client would see."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import Upstream
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
        ({**BODY, "messages": [{"role": "system", "content": "x"}]}, HEADERS, 400, "invalid_request_error"),
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
