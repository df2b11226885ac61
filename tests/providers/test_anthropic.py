"""Provider ``anthropic`` end to end: the gateway over HTTP to the Anthropic-format mock.

Each test asserts both sides: what reached the upstream (the mock's records, which also refuses
what Anthropic refuses) and what the client got back.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from tests.conftest import Gateway, Upstream
from tests.support.sse import openai_chunks

KEY = "sk-ant-test-key"


def headers(upstream: Upstream, **extra: str) -> dict[str, str]:
    return {
        "x-portkey-provider": "anthropic",
        "x-portkey-custom-host": upstream.url,
        "Authorization": f"Bearer {KEY}",
        **extra,
    }


def chat(text: str = "hello claude", **fields: Any) -> dict[str, Any]:
    return {"model": "claude-mock-1", "messages": [{"role": "user", "content": text}], **fields}


def sent(upstream: Upstream, i: int = -1) -> dict[str, Any]:
    return upstream.bodies()[i]


async def sse_chunks(resp: Any) -> list[Any]:
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/event-stream"
    return openai_chunks(await resp.read())


async def test_chat_request_and_answer(gateway: Gateway, upstream: Upstream) -> None:
    body = chat(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hello claude"},
        ],
        temperature=1.5,
        seed=3,
        user="u-1",
    )
    resp = await gateway.post("/v1/chat/completions", body, headers(upstream))
    assert resp.status == 200
    assert resp.headers["x-portkey-provider"] == "anthropic"
    data = await resp.json()
    assert data["object"] == "chat.completion" and data["provider"] == "anthropic"
    assert data["id"].startswith("msg_mock")
    assert data["choices"][0]["message"]["content"] == "Mock reply to: hello claude"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] > 0
    assert (
        data["usage"]["total_tokens"] == data["usage"]["prompt_tokens"] + data["usage"]["completion_tokens"]
    )
    [received] = upstream.requests
    assert received["path"] == "/v1/messages"
    assert received["headers"]["x-api-key"] == KEY
    assert received["headers"]["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in received["headers"] and "anthropic-beta" not in received["headers"]
    assert not any(k.lower().startswith("x-portkey-") for k in received["headers"])
    assert sent(upstream) == {
        "model": "claude-mock-1",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "hello claude"}],
        "temperature": 1.0,
        "metadata": {"user_id": "u-1"},
    }


async def test_version_beta_and_key_from_headers(gateway: Gateway, upstream: Upstream) -> None:
    extra = {
        "x-portkey-anthropic-version": "2023-01-01",
        "x-portkey-anthropic-beta": "prompt-caching-2024-07-31",
        "x-api-key": "sk-ant-raw",
    }
    hdrs = headers(upstream, **extra)
    del hdrs["Authorization"]
    resp = await gateway.post("/v1/chat/completions", chat(), hdrs)
    assert resp.status == 200
    got = upstream.requests[0]["headers"]
    assert got["anthropic-version"] == "2023-01-01"
    assert got["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert got["x-api-key"] == "sk-ant-raw"


async def test_anthropic_own_headers_are_taken_as_claude_code_sends_them(
    gateway: Gateway, upstream: Upstream
) -> None:
    hdrs = headers(
        upstream, **{"anthropic-version": "2023-06-01", "anthropic-beta": "output-128k-2025-02-19"}
    )
    resp = await gateway.post("/v1/chat/completions", chat(), hdrs)
    assert resp.status == 200
    assert upstream.requests[0]["headers"]["anthropic-beta"] == "output-128k-2025-02-19"


async def test_an_option_wins_over_the_clients_own_anthropic_header(
    gateway: Gateway, upstream: Upstream
) -> None:
    hdrs = headers(
        upstream,
        **{
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "output-128k-2025-02-19",
            "x-portkey-anthropic-beta": "prompt-caching-2024-07-31",
        },
    )
    resp = await gateway.post("/v1/chat/completions", chat(), hdrs)
    assert resp.status == 200
    got = upstream.requests[0]["headers"]
    assert got["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert got["anthropic-version"] == "2023-06-01"


async def test_options_from_config_and_custom_host_with_trailing_slash(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = {
        "provider": "anthropic",
        "api_key": "sk-ant-config",
        "custom_host": upstream.url + "/",
        "anthropic_beta": "files-api-2025-04-14",
        "override_params": {"max_tokens": 3},
    }
    resp = await gateway.post(
        "/v1/chat/completions", chat("one two three four five"), {"x-portkey-config": json.dumps(config)}
    )
    assert resp.status == 200
    [received] = upstream.requests
    assert received["path"] == "/v1/messages"
    assert received["headers"]["anthropic-beta"] == "files-api-2025-04-14"
    assert received["headers"]["x-api-key"] == "sk-ant-config"
    assert sent(upstream)["max_tokens"] == 3
    assert (await resp.json())["choices"][0]["finish_reason"] == "length"


async def test_stream(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/chat/completions", chat(stream=True), headers(upstream))
    chunks = await sse_chunks(resp)
    assert chunks[-1] == "[DONE]"
    body = chunks[:-1]
    assert body[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert all("role" not in c["choices"][0]["delta"] for c in body[1:])
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in body)
    assert text == "Mock reply to: hello claude"
    assert len([c for c in body if c["choices"][0]["delta"].get("content")]) > 1
    assert body[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(c["choices"][0]["finish_reason"] is None for c in body[:-1])
    assert all("usage" not in c for c in body)
    assert sent(upstream)["stream"] is True
    assert "stream_options" not in sent(upstream)


async def test_stream_include_usage(gateway: Gateway, upstream: Upstream) -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    chunks = await sse_chunks(await gateway.post("/v1/chat/completions", body, headers(upstream)))
    usage_chunks = [c for c in chunks[:-1] if c.get("usage")]
    assert usage_chunks == [chunks[-2]] and chunks[-2]["choices"] == []
    usage = chunks[-2]["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


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


async def test_tools(gateway: Gateway, upstream: Upstream) -> None:
    body = chat("find cats", tools=TOOLS, tool_choice="required", parallel_tool_calls=False)
    data = await (await gateway.post("/v1/chat/completions", body, headers(upstream))).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("toolu_")
    assert call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"query": "find cats"}
    got = sent(upstream)
    assert got["tools"] == [
        {
            "name": "lookup",
            "description": "Look a thing up",
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}},
        }
    ]
    assert got["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


async def test_tool_round_trip_is_accepted_by_anthropic(gateway: Gateway, upstream: Upstream) -> None:
    messages = [
        {"role": "user", "content": "find cats"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "3 cats"},
    ]
    resp = await gateway.post("/v1/chat/completions", chat(messages=messages, tools=TOOLS), headers(upstream))
    assert resp.status == 200, await resp.text()
    assert sent(upstream)["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "3 cats"}]},
    ]


async def test_stream_tools_arrive_as_separate_deltas(gateway: Gateway, upstream: Upstream) -> None:
    body = chat("find cats [mock tool_call=true chunks=3]", stream=True, tools=TOOLS)
    chunks = await sse_chunks(await gateway.post("/v1/chat/completions", body, headers(upstream)))
    tool_deltas = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks[:-1]
        if "tool_calls" in c["choices"][0]["delta"]
    ]
    assert tool_deltas[0]["function"] == {"name": "lookup", "arguments": ""}
    assert tool_deltas[0]["id"].startswith("toolu_") and tool_deltas[0]["type"] == "function"
    assert len(tool_deltas) >= 3 and {d["index"] for d in tool_deltas} == {0}
    arguments = "".join(d["function"].get("arguments", "") for d in tool_deltas)
    assert json.loads(arguments) == {"query": "find cats"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_vision(gateway: Gateway, upstream: Upstream) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    resp = await gateway.post(
        "/v1/chat/completions", chat(messages=[{"role": "user", "content": content}]), headers(upstream)
    )
    assert resp.status == 200
    assert sent(upstream)["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


async def test_prompt_cache_usage(gateway: Gateway, upstream: Upstream) -> None:
    system = [
        {"type": "text", "text": "a long shared system prompt " * 5, "cache_control": {"type": "ephemeral"}}
    ]
    body = chat(messages=[{"role": "system", "content": system}, {"role": "user", "content": "hi there"}])
    first = (await (await gateway.post("/v1/chat/completions", body, headers(upstream))).json())["usage"]
    second = (await (await gateway.post("/v1/chat/completions", body, headers(upstream))).json())["usage"]
    assert sent(upstream)["system"] == system
    assert first["cache_creation_input_tokens"] == 25 and "cache_read_input_tokens" not in first
    assert first["prompt_tokens_details"]["cached_tokens"] == 0
    assert second["prompt_tokens_details"]["cached_tokens"] == 25
    # Cached tokens count in prompt_tokens, as OpenAI's do: both requests had the same prompt.
    assert first["prompt_tokens"] == second["prompt_tokens"] == 25 + 2


@pytest.mark.parametrize(
    ("fields", "finish"),
    [
        ({}, "stop"),
        ({"stop": ["claude"]}, "stop"),
        ({"max_tokens": 2}, "length"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "lookup"}}}, "tool_calls"),
    ],
)
async def test_finish_reasons(
    gateway: Gateway, upstream: Upstream, fields: dict[str, Any], finish: str
) -> None:
    for stream in (False, True):
        resp = await gateway.post("/v1/chat/completions", chat(stream=stream, **fields), headers(upstream))
        if stream:
            chunks = await sse_chunks(resp)
            assert chunks[-2]["choices"][0]["finish_reason"] == finish
        else:
            assert (await resp.json())["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (529, "overloaded_error"),
    ],
)
async def test_upstream_errors_keep_status(
    gateway: Gateway, upstream: Upstream, status: int, kind: str
) -> None:
    resp = await gateway.post("/v1/chat/completions", chat(f"hi [mock status={status}]"), headers(upstream))
    assert resp.status == status
    data = await resp.json()
    assert data["provider"] == "anthropic"
    assert data["error"] == {
        "message": f"anthropic error: mock failure {status}",
        "type": kind,
        "param": None,
        "code": None,
    }


async def test_missing_key_is_anthropics_401(gateway: Gateway, upstream: Upstream) -> None:
    hdrs = headers(upstream)
    del hdrs["Authorization"]
    resp = await gateway.post("/v1/chat/completions", chat(), hdrs)
    assert resp.status == 401
    assert (await resp.json())["error"]["type"] == "authentication_error"


async def test_mid_stream_error_event(gateway: Gateway, upstream: Upstream) -> None:
    body = chat("hello [mock fail=error_mid_stream chunks=6]", stream=True)
    chunks = await sse_chunks(await gateway.post("/v1/chat/completions", body, headers(upstream)))
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["error"]["type"] == "overloaded_error"
    assert chunks[-2]["error"]["message"] == "anthropic error: Overloaded"
    assert chunks[-2]["provider"] == "anthropic"


async def test_dropped_stream_ends_with_error_and_done(gateway: Gateway, upstream: Upstream) -> None:
    body = chat("hello [mock fail=drop_mid_stream chunks=6]", stream=True)
    chunks = await sse_chunks(await gateway.post("/v1/chat/completions", body, headers(upstream)))
    assert "error" in chunks[-2] and chunks[-1] == "[DONE]"


async def test_completions(gateway: Gateway, upstream: Upstream) -> None:
    body = {"model": "claude-mock-1", "prompt": "say hi", "max_tokens": 50}
    data = await (await gateway.post("/v1/completions", body, headers(upstream))).json()
    assert data["object"] == "text_completion"
    assert data["choices"][0]["text"] == "Mock reply to: say hi"
    assert data["choices"][0]["finish_reason"] == "stop"
    assert sent(upstream)["messages"] == [{"role": "user", "content": "say hi"}]
    resp = await gateway.post("/v1/completions", {**body, "stream": True}, headers(upstream))
    chunks = await sse_chunks(resp)
    assert {c["object"] for c in chunks[:-1]} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in chunks[:-1]) == "Mock reply to: say hi"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-1] == "[DONE]"


async def test_non_strict_mode_adds_content_blocks(gateway: Gateway, upstream: Upstream) -> None:
    hdrs = headers(upstream, **{"x-portkey-strict-open-ai-compliance": "false"})
    body = chat(thinking={"type": "enabled", "budget_tokens": 1024})
    data = await (await gateway.post("/v1/chat/completions", body, hdrs)).json()
    assert sent(upstream)["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    message = data["choices"][0]["message"]
    assert [b["type"] for b in message["content_blocks"]] == ["thinking", "text"]
    assert message["content_blocks"][0]["signature"].startswith("sig-mock")
    assert data["choices"][0]["finish_reason"] == "end_turn"
    chunks = await sse_chunks(await gateway.post("/v1/chat/completions", {**body, "stream": True}, hdrs))
    blocks = [b for c in chunks[:-1] for b in c["choices"][0]["delta"].get("content_blocks", [])]
    assert blocks[0] == {"index": 0, "delta": {"thinking": "Mock thinking."}}
    assert chunks[-2]["choices"][0]["finish_reason"] == "end_turn"
    strict = await (await gateway.post("/v1/chat/completions", body, headers(upstream))).json()
    assert "content_blocks" not in strict["choices"][0]["message"]


async def test_models(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.get("/v1/models", headers(upstream))
    assert resp.status == 200
    data = await resp.json()
    assert [m["id"] for m in data["data"]] == ["claude-mock-1", "claude-mock-2"]
    assert {m["owned_by"] for m in data["data"]} == {"anthropic"}
    [received] = upstream.requests
    assert received["method"] == "GET" and received["path"] == "/v1/models"


async def test_passthrough_to_native_messages_api(gateway: Gateway, upstream: Upstream) -> None:
    native = {"model": "claude-mock-1", "max_tokens": 10, "messages": [{"role": "user", "content": "native"}]}
    resp = await gateway.post("/v1/messages", native, headers(upstream))
    assert resp.status == 200
    data = await resp.json()
    assert data["type"] == "message" and data["content"][0]["text"] == "Mock reply to: native"
    assert upstream.requests[0]["headers"]["x-api-key"] == KEY


async def test_openai_sdk_parses_answers_and_streams(gateway: Gateway, upstream: Upstream) -> None:
    from openai import AsyncOpenAI

    hdrs = headers(upstream)
    client = AsyncOpenAI(base_url=gateway.url + "/v1", api_key=KEY, default_headers=hdrs, max_retries=0)
    async with client:
        completion = await client.chat.completions.create(
            model="claude-mock-1",
            messages=[{"role": "user", "content": "hello sdk"}],
            tools=TOOLS,
            tool_choice="required",
        )
        call = completion.choices[0].message.tool_calls[0]
        assert call.function.name == "lookup" and completion.choices[0].finish_reason == "tool_calls"
        assert completion.usage is not None and completion.usage.prompt_tokens > 0

        stream = await client.chat.completions.create(
            model="claude-mock-1",
            messages=[{"role": "user", "content": "hello sdk"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        assert "".join(pieces) == "Mock reply to: hello sdk"
        assert usage is not None and usage.completion_tokens > 0

        legacy = await client.completions.create(model="claude-mock-1", prompt="hi sdk", max_tokens=20)
        assert legacy.choices[0].text == "Mock reply to: hi sdk"

        import openai

        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(
                model="claude-mock-1", messages=[{"role": "user", "content": "x [mock status=429]"}]
            )
        assert info.value.status_code == 429
    assert msgspec.json.decode(upstream.requests[0]["body"])["tool_choice"] == {"type": "any"}


async def test_embeddings_are_refused_before_any_traffic(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/embeddings", {"model": "m", "input": "x"}, headers(upstream))
    assert resp.status == 400
    assert (await resp.json())["error"]["message"] == "embeddings is not supported by anthropic"
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"model": "m"}, "`messages`"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "bogus"}]}]},
            "$.messages[0].content",
        ),
        ({"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}, "$.stream"),
    ],
)
async def test_a_body_anthropic_cannot_take_is_a_400_before_any_traffic(
    gateway: Gateway, upstream: Upstream, body: dict[str, Any], where: str
) -> None:
    """With Anthropic the only target the handler decodes the whole request at once (the view
    and the mapping share it): what it refuses is an OpenAI-shaped 400, and nothing is sent."""
    resp = await gateway.post("/v1/chat/completions", body, headers(upstream))
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["message"].startswith("Invalid request body") and where in error["message"]
    assert upstream.requests == []
    # The next request on the gateway is unharmed.
    assert (await gateway.post("/v1/chat/completions", chat(), headers(upstream))).status == 200
