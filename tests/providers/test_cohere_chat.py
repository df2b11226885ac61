"""Cohere chat through the gateway to the mock's /v2/chat over HTTP, read by the openai SDK."""

from __future__ import annotations

from typing import Any

import msgspec
import openai
import pytest

from fastgate._transforms import cohere_chat_request
from fastgate.mock.cohere_format import TEMPLATE_TOKENS
from tests.conftest import Gateway, Upstream
from tests.support.replay import sdk

TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            "strict": True,
        },
    },
    {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
]


def cohere_headers(upstream: Upstream, key: str | None = "co-test", **extra: str) -> dict[str, str]:
    """Route to the mock as ``cohere``; ``key=None`` leaves auth to the caller (the SDK's api_key)."""
    headers = {"x-portkey-provider": "cohere", "x-portkey-custom-host": str(upstream.server.make_url(""))}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return {**headers, **extra}


def sent(upstream: Upstream) -> dict[str, Any]:
    [record] = upstream.requests
    assert record["path"] == "/v2/chat"
    return msgspec.json.decode(record["body"])


async def test_request_is_mapped_to_cohere_v2(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, cohere_headers(upstream, None), api_key="co-key")
    await client.chat.completions.create(
        model="command-a-vision-07-2025",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        ],
        max_completion_tokens=50,
        stop="END",
        temperature=0.2,
        top_p=0.9,
        seed=7,
        frequency_penalty=0.1,
        presence_penalty=0.3,
        n=1,
        user="someone",
        tools=TOOLS,
        tool_choice="required",
        extra_body={"top_k": 40, "safety_mode": "STRICT"},
    )
    record = upstream.requests[0]
    assert record["headers"]["Authorization"] == "Bearer co-key"
    assert not any(k.lower().startswith("x-portkey-") for k in record["headers"])
    assert sent(upstream) == {
        "model": "command-a-vision-07-2025",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                    },
                ],
            },
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "noon"},
        ],
        "max_tokens": 50,
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "p": 0.9,
        "k": 40,
        "seed": 7,
        "frequency_penalty": 0.1,
        "presence_penalty": 0.3,
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            },
            {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
        ],
        "strict_tools": True,
        "tool_choice": "REQUIRED",
        "safety_mode": "STRICT",
    }
    await client.close()


@pytest.mark.parametrize(
    ("choice", "expected_choice", "expected_tools"),
    [
        ("auto", None, ["get_weather", "get_time"]),
        ("none", "NONE", ["get_weather", "get_time"]),
        ("required", "REQUIRED", ["get_weather", "get_time"]),
        # Cohere has no named choice: only the named tool is offered, and a call is required.
        ({"type": "function", "function": {"name": "get_time"}}, "REQUIRED", ["get_time"]),
    ],
)
async def test_tool_choice(
    gateway: Gateway, upstream: Upstream, choice: Any, expected_choice: str | None, expected_tools: list[str]
) -> None:
    body = {"model": "command-a", "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS}
    resp = await gateway.post(
        "/v1/chat/completions", {**body, "tool_choice": choice}, cohere_headers(upstream)
    )
    assert resp.status == 200
    got = sent(upstream)
    assert got.get("tool_choice") == expected_choice
    assert [t["function"]["name"] for t in got["tools"]] == expected_tools


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"type": "object"}, "strict": True},
            },
            {"type": "json_object", "json_schema": {"type": "object"}},
        ),
        ({"type": "text"}, {"type": "text"}),
    ],
)
async def test_response_format(
    gateway: Gateway, upstream: Upstream, response_format: dict[str, Any], expected: dict[str, Any]
) -> None:
    body = {"model": "command-a", "messages": [{"role": "user", "content": "json"}]}
    await gateway.post(
        "/v1/chat/completions", {**body, "response_format": response_format}, cohere_headers(upstream)
    )
    assert sent(upstream)["response_format"] == expected


async def test_text_answer_with_usage(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, cohere_headers(upstream, None))
    answer = await client.chat.completions.create(
        model="command-a", messages=[{"role": "user", "content": "hello there"}]
    )
    assert answer.object == "chat.completion"
    assert answer.model == "command-a"
    assert answer.choices[0].message.content == "Mock reply to: hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    # usage.tokens (the template included) is reported, not billed_units.
    assert answer.usage.prompt_tokens == 2 + TEMPLATE_TOKENS
    assert answer.usage.completion_tokens == 5
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + 5
    assert (answer.model_extra or {}).get("provider") == "cohere"
    await client.close()


async def test_tool_calls_answer(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, cohere_headers(upstream, None))
    answer = await client.chat.completions.create(
        model="command-a",
        messages=[{"role": "user", "content": "weather? [mock tool_call=true]"}],
        tools=TOOLS,
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.type, c.function.name) for c in calls] == [
        ("function", "get_weather"),
        ("function", "get_time"),
    ]
    # Each call's arguments follow its tool's schema.
    assert [msgspec.json.decode(c.function.arguments) for c in calls] == [{"city": "weather?"}, {}]
    assert calls[0].id != calls[1].id
    await client.close()


@pytest.mark.parametrize(
    ("extra", "finish"),
    [
        ({"max_tokens": 2}, "length"),
        ({"stop": ["hello"]}, "stop"),
        ({}, "stop"),
    ],
)
async def test_finish_reasons(
    gateway: Gateway, upstream: Upstream, extra: dict[str, Any], finish: str
) -> None:
    body = {"model": "command-a", "messages": [{"role": "user", "content": "say hello to everyone"}], **extra}
    resp = await gateway.post("/v1/chat/completions", body, cohere_headers(upstream))
    data = await resp.json()
    assert data["choices"][0]["finish_reason"] == finish
    text = data["choices"][0]["message"]["content"]
    if "max_tokens" in extra:
        assert text == "Mock reply"
    if "stop" in extra:
        assert text == "Mock reply to: say "


async def test_error_finish_is_stop_in_strict_mode_and_raw_otherwise(
    gateway: Gateway, upstream: Upstream
) -> None:
    body = {"model": "command-a", "messages": [{"role": "user", "content": "hi [mock fail=finish_error]"}]}
    strict = await (await gateway.post("/v1/chat/completions", body, cohere_headers(upstream))).json()
    assert strict["choices"][0]["finish_reason"] == "stop"
    lax_headers = cohere_headers(upstream, **{"x-portkey-strict-open-ai-compliance": "false"})
    lax = await (await gateway.post("/v1/chat/completions", body, lax_headers)).json()
    assert lax["choices"][0]["finish_reason"] == "ERROR"


async def test_stream_text(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, cohere_headers(upstream, None))
    stream = await client.chat.completions.create(
        model="command-a",
        messages=[{"role": "user", "content": "stream me please [mock chunks=3]"}],
        stream=True,
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Mock reply to: stream me please"
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == 3
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)
    assert sent(upstream)["stream"] is True
    await client.close()


async def test_stream_usage_only_when_asked(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, cohere_headers(upstream, None))
    stream = await client.chat.completions.create(
        model="command-a",
        messages=[{"role": "user", "content": "count my tokens"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (3 + TEMPLATE_TOKENS, 6)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert "stream_options" not in sent(upstream)
    await client.close()


async def test_stream_tool_calls_are_indexed_openai_deltas(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, cohere_headers(upstream, None))
    stream = await client.chat.completions.create(
        model="command-a",
        messages=[{"role": "user", "content": "use tools [mock tool_call=true]"}],
        tools=TOOLS,
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or ():
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                assert delta.type == "function"
                call["id"] = delta.id
            if delta.function and delta.function.name:
                call["name"] = delta.function.name
            if delta.function and delta.function.arguments:
                call["arguments"] += delta.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert sorted(calls) == [0, 1]
    assert [calls[i]["name"] for i in (0, 1)] == ["get_weather", "get_time"]
    assert [msgspec.json.decode(calls[i]["arguments"]) for i in (0, 1)] == [{"city": "use tools"}, {}]
    await client.close()


async def test_stream_ends_with_done(gateway: Gateway, upstream: Upstream) -> None:
    body = {"model": "command-a", "stream": True, "messages": [{"role": "user", "content": "raw"}]}
    resp = await gateway.post("/v1/chat/completions", body, cohere_headers(upstream))
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    raw = await resp.read()
    assert raw.endswith(b"data: [DONE]\n\n")
    assert raw.count(b"[DONE]") == 1
    assert b"event:" not in raw  # Cohere's event names stay upstream


async def test_stream_error_finish_becomes_error_event(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, cohere_headers(upstream, None))
    stream = await client.chat.completions.create(
        model="command-a", messages=[{"role": "user", "content": "x [mock fail=finish_error]"}], stream=True
    )
    with pytest.raises(openai.APIError, match="mock generation failed"):
        async for _ in stream:
            pass
    await client.close()


async def test_stream_dropped_mid_way_ends_with_error_event(gateway: Gateway, upstream: Upstream) -> None:
    body = {
        "model": "command-a",
        "stream": True,
        "messages": [{"role": "user", "content": "x [mock fail=drop_mid_stream chunks=6]"}],
    }
    resp = await gateway.post("/v1/chat/completions", body, cohere_headers(upstream))
    raw = await resp.read()
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    error = msgspec.json.decode(events[-2][len(b"data: ") :])
    assert error["error"]["message"].startswith("cohere error: ")
    assert error["provider"] == "cohere"


@pytest.mark.parametrize(
    ("status", "kind"), [(429, openai.RateLimitError), (503, openai.InternalServerError)]
)
async def test_upstream_errors_keep_status(
    gateway: Gateway, upstream: Upstream, status: int, kind: type[openai.APIStatusError]
) -> None:
    client = sdk(gateway, cohere_headers(upstream, None))
    with pytest.raises(kind) as caught:
        await client.chat.completions.create(
            model="command-a", messages=[{"role": "user", "content": f"x [mock status={status}]"}]
        )
    assert caught.value.status_code == status
    body: Any = caught.value.body
    assert body["message"] == f"cohere error: mock failure {status}"
    await client.close()


async def test_missing_key_is_cohere_401(gateway: Gateway, upstream: Upstream) -> None:
    body = {"model": "command-a", "messages": [{"role": "user", "content": "hi"}]}
    resp = await gateway.post("/v1/chat/completions", body, cohere_headers(upstream, None))
    assert resp.status == 401
    data = await resp.json()
    assert data["error"]["message"] == "cohere error: no api key supplied"
    assert data["error"]["type"] == "authentication_error"
    assert data["provider"] == "cohere"


async def test_invalid_body_is_400_before_any_upstream_call(gateway: Gateway, upstream: Upstream) -> None:
    body = {"model": "command-a", "messages": [{"role": "wizard", "content": "hi"}]}
    resp = await gateway.post("/v1/chat/completions", body, cohere_headers(upstream))
    assert resp.status == 400
    assert "cohere" in (await resp.json())["error"]["message"]
    assert upstream.requests == []


async def test_override_params_from_config(gateway: Gateway, upstream: Upstream) -> None:
    config = {
        "provider": "cohere",
        "api_key": "co-config",
        "custom_host": str(upstream.server.make_url("")),
        "override_params": {"temperature": 0.9, "model": "command-r7b-12-2024"},
    }
    body = {"model": "command-a", "temperature": 0.1, "messages": [{"role": "user", "content": "hi"}]}
    resp = await gateway.post(
        "/v1/chat/completions", body, {"x-portkey-config": msgspec.json.encode(config).decode()}
    )
    data = await resp.json()
    got = sent(upstream)
    assert (got["temperature"], got["model"]) == (0.9, "command-r7b-12-2024")
    assert data["model"] == "command-r7b-12-2024"
    assert upstream.requests[0]["headers"]["Authorization"] == "Bearer co-config"


@pytest.mark.parametrize(
    ("request_fields", "expected"),
    [
        (  # legacy function calling: the call and its answer share the function name as id
            {
                "messages": [
                    {"role": "assistant", "function_call": {"name": "lookup", "arguments": '{"q":1}'}},
                    {"role": "function", "name": "lookup", "content": "found"},
                ]
            },
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "lookup",
                                "type": "function",
                                "function": {"name": "lookup", "arguments": '{"q":1}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "lookup", "content": "found"},
                ]
            },
        ),
        (  # Anthropic-style thinking, as Portkey accepts it, becomes Cohere's Thinking
            {"thinking": {"type": "enabled", "budget_tokens": 1024}},
            {"thinking": {"type": "enabled", "token_budget": 1024}},
        ),
        ({"tool_choice": "none"}, {"tool_choice": "NONE"}),
        (  # audio has no Cohere equivalent; text parts of system turns stay text
            {
                "messages": [
                    {"role": "system", "content": [{"type": "text", "text": "sys"}]},
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}},
                            {"type": "text", "text": "hi"},
                        ],
                    },
                ]
            },
            {
                "messages": [
                    {"role": "system", "content": [{"type": "text", "text": "sys"}]},
                    {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                ]
            },
        ),
    ],
)
def test_request_mapping_details(request_fields: dict[str, Any], expected: dict[str, Any]) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **request_fields}
    got = msgspec.json.decode(cohere_chat_request(msgspec.json.encode(body)))
    want = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **expected}
    assert got == want
