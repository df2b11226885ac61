"""Bedrock through the gateway to the mock's Bedrock Runtime over real HTTP, SigV4-signed."""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec
import pytest
from openai import AsyncOpenAI, BadRequestError, RateLimitError

from fastgate.mock.bedrock_format import (
    MOCK_AWS_ACCESS_KEY_ID,
    MOCK_AWS_SECRET_ACCESS_KEY,
    MOCK_BEDROCK_API_KEY,
)
from fastgate.mock.openai_format import embedding_vector
from tests.conftest import Gateway, Upstream
from tests.support.sse import openai_chunks

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "top_song",
            "description": "Most popular song on a station",
            "parameters": {"type": "object", "properties": {"sign": {"type": "string"}}},
        },
    }
]


def bedrock_headers(upstream: Upstream, **options: str) -> dict[str, str]:
    headers = {
        "x-portkey-provider": "bedrock",
        "x-portkey-custom-host": str(upstream.server.make_url("")),
        "x-portkey-aws-access-key-id": MOCK_AWS_ACCESS_KEY_ID,
        "x-portkey-aws-secret-access-key": MOCK_AWS_SECRET_ACCESS_KEY,
        "x-portkey-aws-region": "us-west-2",
    }
    headers.update({f"x-portkey-{k.replace('_', '-')}": v for k, v in options.items()})
    return headers


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], **extra}


def sdk(gateway: Gateway, headers: dict[str, str]) -> AsyncOpenAI:
    return AsyncOpenAI(api_key="unused", base_url=gateway.url + "/v1", default_headers=headers, max_retries=0)


async def test_chat_is_signed_and_mapped(gateway: Gateway, upstream: Upstream) -> None:
    body = chat("hello bedrock", max_tokens=50, temperature=0.3, seed=5)
    resp = await gateway.post("/v1/chat/completions", body, bedrock_headers(upstream))
    assert resp.status == 200, await resp.text()
    data = await resp.json()
    assert data["object"] == "chat.completion" and data["model"] == MODEL and data["provider"] == "bedrock"
    assert data["choices"][0]["message"] == {
        "role": "assistant",
        "content": "Mock reply to: hello bedrock",
        "refusal": None,
    }
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["completion_tokens"] == 5
    assert resp.headers["x-portkey-provider"] == "bedrock"
    [received] = upstream.requests
    assert received["path"] == f"/model/{MODEL}/converse"
    auth = received["headers"]["Authorization"]
    assert auth.startswith(f"AWS4-HMAC-SHA256 Credential={MOCK_AWS_ACCESS_KEY_ID}/")
    assert "/us-west-2/bedrock/aws4_request" in auth
    assert msgspec.json.decode(received["body"]) == {
        "messages": [{"role": "user", "content": [{"text": "hello bedrock"}]}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.3},
    }
    assert not any(k.lower().startswith("x-portkey-") for k in received["headers"])


async def test_session_token_and_api_key_auth(gateway: Gateway, upstream: Upstream) -> None:
    headers = bedrock_headers(upstream, aws_session_token="FwoGZXIvYXdzEXAMPLE")
    resp = await gateway.post("/v1/chat/completions", chat("hi"), headers)
    assert resp.status == 200
    assert upstream.requests[-1]["headers"]["X-Amz-Security-Token"] == "FwoGZXIvYXdzEXAMPLE"
    headers = {
        "x-portkey-provider": "bedrock",
        "x-portkey-custom-host": str(upstream.server.make_url("")),
        "x-portkey-aws-auth-type": "apiKey",
        "Authorization": f"Bearer {MOCK_BEDROCK_API_KEY}",
    }
    resp = await gateway.post("/v1/chat/completions", chat("hi"), headers)
    assert resp.status == 200
    assert upstream.requests[-1]["headers"]["Authorization"] == f"Bearer {MOCK_BEDROCK_API_KEY}"


async def test_wrong_secret_is_the_upstream_403(gateway: Gateway, upstream: Upstream) -> None:
    headers = bedrock_headers(upstream, aws_secret_access_key="not-the-secret")
    resp = await gateway.post("/v1/chat/completions", chat("hi"), headers)
    assert resp.status == 403
    data = await resp.json()
    assert data["provider"] == "bedrock" and data["error"]["type"] == "permission_error"
    assert "signature we calculated does not match" in data["error"]["message"]
    assert "not-the-secret" not in await resp.text()


async def test_missing_credentials_is_a_400_before_any_request(gateway: Gateway, upstream: Upstream) -> None:
    headers = bedrock_headers(upstream)
    del headers["x-portkey-aws-secret-access-key"]
    resp = await gateway.post("/v1/chat/completions", chat("hi"), headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "aws_secret_access_key"
    assert upstream.requests == []


async def test_upstream_error_keeps_status(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/chat/completions", chat("hi [mock status=429]"), bedrock_headers(upstream))
    assert resp.status == 429
    # The exception name travels in AWS's header, which reaches the client with the mapped body.
    assert resp.headers["x-amzn-ErrorType"].startswith("ThrottlingException:")
    data = await resp.json()
    assert data == {
        "error": {
            "message": "bedrock error: mock failure 429",
            "type": "rate_limit_error",
            "param": None,
            "code": None,
        },
        "provider": "bedrock",
    }
    body = {"model": MODEL, "messages": [{"role": "system", "content": "only a system prompt"}]}
    resp = await gateway.post("/v1/chat/completions", body, bedrock_headers(upstream))
    assert resp.status == 400
    assert "must start with a user message" in (await resp.json())["error"]["message"]


async def test_http_image_url_is_refused_with_the_field(gateway: Gateway, upstream: Upstream) -> None:
    content = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "http://169.254.169.254/x.png"}},
    ]
    body = {"model": MODEL, "messages": [{"role": "user", "content": content}]}
    resp = await gateway.post("/v1/chat/completions", body, bedrock_headers(upstream))
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["param"] == "messages[0].content[1].image_url.url" and "data: URLs" in error["message"]
    assert upstream.requests == []


async def test_vision_data_url(gateway: Gateway, upstream: Upstream) -> None:
    content = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    resp = await gateway.post(
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": content}]},
        bedrock_headers(upstream),
    )
    assert resp.status == 200
    sent = msgspec.json.decode(upstream.requests[0]["body"])
    assert sent["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}
    }


async def test_tools_round_trip(gateway: Gateway, upstream: Upstream) -> None:
    headers = bedrock_headers(upstream)
    resp = await gateway.post(
        "/v1/chat/completions", chat("top song? [mock tool_call=true]", tools=TOOLS), headers
    )
    data = await resp.json()
    [call] = data["choices"][0]["message"]["tool_calls"]
    assert (
        data["choices"][0]["finish_reason"] == "tool_calls"
        and data["choices"][0]["message"]["content"] is None
    )
    assert call["type"] == "function" and call["function"]["name"] == "top_song"
    assert msgspec.json.decode(call["function"]["arguments"]) == {"sign": "top song?"}  # its schema
    follow_up = {
        "model": MODEL,
        "tools": TOOLS,
        "messages": [
            {"role": "user", "content": "top song?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call["id"], "content": "Elemental Hotel"},
        ],
    }
    resp = await gateway.post("/v1/chat/completions", follow_up, headers)
    assert resp.status == 200, await resp.text()
    sent = msgspec.json.decode(upstream.requests[-1]["body"])
    assert sent["messages"][1]["content"] == [
        {"toolUse": {"toolUseId": call["id"], "name": "top_song", "input": {"sign": "top song?"}}}
    ]
    assert sent["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": call["id"], "content": [{"text": "Elemental Hotel"}]}}
    ]


@pytest.mark.parametrize(
    ("extra", "finish", "text"),
    [
        ({}, "stop", "Mock reply to: one two three four"),
        ({"max_tokens": 3}, "length", "Mock reply to:"),
        ({"stop": ["three"]}, "stop", "Mock reply to: one two "),
    ],
)
async def test_finish_reasons(
    gateway: Gateway, upstream: Upstream, extra: dict[str, Any], finish: str, text: str
) -> None:
    resp = await gateway.post(
        "/v1/chat/completions", chat("one two three four", **extra), bedrock_headers(upstream)
    )
    choice = (await resp.json())["choices"][0]
    assert (choice["finish_reason"], choice["message"]["content"]) == (finish, text)


async def test_prompt_cache_usage(gateway: Gateway, upstream: Upstream) -> None:
    system = {
        "role": "system",
        "content": [
            {"type": "text", "text": "long shared instructions " * 20, "cache_control": {"type": "ephemeral"}}
        ],
    }
    body = {"model": MODEL, "messages": [system, {"role": "user", "content": "question"}]}
    first = (await (await gateway.post("/v1/chat/completions", body, bedrock_headers(upstream))).json())[
        "usage"
    ]
    second = (await (await gateway.post("/v1/chat/completions", body, bedrock_headers(upstream))).json())[
        "usage"
    ]
    assert first["cache_creation_input_tokens"] == 60 and first["prompt_tokens_details"]["cached_tokens"] == 0
    assert second["cache_read_input_tokens"] == 60 and second["prompt_tokens_details"]["cached_tokens"] == 60
    assert first["prompt_tokens"] == second["prompt_tokens"] == 61
    assert "cache_creation_input_tokens" not in second


@pytest.mark.parametrize("include_usage", [False, True])
async def test_stream(gateway: Gateway, upstream: Upstream, include_usage: bool) -> None:
    body = chat(
        "stream me please now",
        stream=True,
        **({"stream_options": {"include_usage": True}} if include_usage else {}),
    )
    resp = await gateway.post("/v1/chat/completions", body, bedrock_headers(upstream))
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    chunks = openai_chunks(await resp.read())
    assert upstream.requests[0]["path"] == f"/model/{MODEL}/converse-stream"
    assert chunks[-1] == "[DONE]"
    choices = [c["choices"][0] for c in chunks[:-1] if c["choices"]]
    assert "".join(c["delta"].get("content") or "" for c in choices) == "Mock reply to: stream me please now"
    assert choices[0]["delta"]["role"] == "assistant" and choices[-1]["finish_reason"] == "stop"
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == MODEL for c in chunks[:-1])
    usage = [c["usage"] for c in chunks[:-1] if not c["choices"]]
    assert usage == (
        [
            {
                "prompt_tokens": 4,
                "completion_tokens": 7,
                "total_tokens": 11,
                "prompt_tokens_details": {"cached_tokens": 0},
            }
        ]
        if include_usage
        else []
    )


async def test_stream_tool_call(gateway: Gateway, upstream: Upstream) -> None:
    body = chat(
        "find it [mock tool_call=true]",
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "top_song"}},
        stream=True,
    )
    chunks = openai_chunks(
        await (await gateway.post("/v1/chat/completions", body, bedrock_headers(upstream))).read()
    )
    calls = [tc for c in chunks[:-1] if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert calls[0]["id"].startswith("tooluse_") and calls[0]["function"]["name"] == "top_song"
    assert len(calls) > 2
    assert msgspec.json.decode("".join(c["function"]["arguments"] for c in calls)) == {"sign": "find it"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert msgspec.json.decode(upstream.requests[0]["body"])["toolConfig"]["toolChoice"] == {
        "tool": {"name": "top_song"}
    }


@pytest.mark.parametrize(
    ("name", "kind"),
    [("throttlingException", "rate_limit_error"), ("modelStreamErrorException", "api_error")],
)
async def test_exception_event_mid_stream(gateway: Gateway, upstream: Upstream, name: str, kind: str) -> None:
    body = chat(f"hi [mock fail=exception:{name}]", stream=True)
    resp = await gateway.post("/v1/chat/completions", body, bedrock_headers(upstream))
    assert resp.status == 200
    chunks = openai_chunks(await resp.read())
    assert chunks[-1] == "[DONE]"
    assert chunks[-2]["error"]["type"] == kind
    assert chunks[-2]["error"]["message"] == f"bedrock error: {name}: mock {name} mid-stream"
    assert not any(c["choices"][0]["finish_reason"] for c in chunks[:-2] if c.get("choices"))


async def test_stream_dropped_mid_way_is_an_error_event(gateway: Gateway, upstream: Upstream) -> None:
    body = chat("hi [mock fail=drop_mid_stream chunks=6]", stream=True)
    chunks = openai_chunks(
        await (await gateway.post("/v1/chat/completions", body, bedrock_headers(upstream))).read()
    )
    assert chunks[-1] == "[DONE]" and "error" in chunks[-2]


async def test_openai_sdk_chat_stream_and_tools(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, bedrock_headers(upstream))
    completion = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "sdk hello"}]
    )
    assert completion.choices[0].message.content == "Mock reply to: sdk hello"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "sdk stream"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    async for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        else:
            usage = chunk.usage
    assert (
        "".join(pieces) == "Mock reply to: sdk stream" and usage is not None and usage.completion_tokens == 5
    )
    tool = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "x [mock tool_call=true]"}],
        tools=TOOLS,  # type: ignore[arg-type]
    )
    call = tool.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "top_song" and tool.choices[0].finish_reason == "tool_calls"
    with pytest.raises(RateLimitError):
        await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x [mock status=429]"}]
        )
    await client.close()


async def test_openai_sdk_embeddings_titan_and_cohere(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, bedrock_headers(upstream))
    titan = await client.embeddings.create(
        model="amazon.titan-embed-text-v2:0", input="embed me", dimensions=256
    )
    assert len(titan.data) == 1 and len(titan.data[0].embedding) == 256
    expected = embedding_vector("embed me", 256)
    assert titan.data[0].embedding == pytest.approx(expected, abs=1e-6)
    assert titan.usage.prompt_tokens == 2
    assert msgspec.json.decode(upstream.requests[-1]["body"]) == {
        "inputText": "embed me",
        "dimensions": 256,
        "normalize": True,
    }
    # Several inputs to Titan: one signed InvokeModel call each, answers gathered in input order.
    before = len(upstream.requests)
    batch = await client.embeddings.create(
        model="amazon.titan-embed-text-v2:0", input=["first one", "second", "third text here"], dimensions=256
    )
    assert [d.index for d in batch.data] == [0, 1, 2]
    for item, text in zip(batch.data, ["first one", "second", "third text here"], strict=True):
        assert item.embedding == pytest.approx(embedding_vector(text, 256), abs=1e-6)
    sent = sorted(msgspec.json.decode(r["body"])["inputText"] for r in upstream.requests[before:])
    assert sent == ["first one", "second", "third text here"]
    assert batch.usage.prompt_tokens == 2 + 1 + 3
    with pytest.raises(BadRequestError):
        await client.embeddings.create(model="amazon.titan-embed-text-v2:0", input=["x"] * 300)
    cohere = await client.embeddings.create(model="cohere.embed-english-v3", input=["a b", "c"])
    assert [d.index for d in cohere.data] == [0, 1]
    assert cohere.data[1].embedding == pytest.approx(embedding_vector("c", 1024), abs=1e-6)
    assert upstream.requests[-1]["path"] == "/model/cohere.embed-english-v3/invoke"
    await client.close()


async def test_embeddings_float_format(gateway: Gateway, upstream: Upstream) -> None:
    body = {
        "model": "cohere.embed-multilingual-v3",
        "input": "x",
        "input_type": "search_query",
        "encoding_format": "float",
    }
    data = await (await gateway.post("/v1/embeddings", body, bedrock_headers(upstream))).json()
    assert data["data"][0]["embedding"] == embedding_vector("x", 1024)
    assert msgspec.json.decode(upstream.requests[-1]["body"])["input_type"] == "search_query"
    body["encoding_format"] = "base64"
    data = await (await gateway.post("/v1/embeddings", body, bedrock_headers(upstream))).json()
    floats = struct.unpack("<1024f", base64.b64decode(data["data"][0]["embedding"]))
    assert floats == pytest.approx(embedding_vector("x", 1024), abs=1e-6)


async def test_completions_through_converse(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, bedrock_headers(upstream))
    done = await client.completions.create(
        model="meta.llama3-8b-instruct-v1:0", prompt="complete this", max_tokens=20
    )
    assert done.object == "text_completion" and done.choices[0].text == "Mock reply to: complete this"
    assert done.choices[0].finish_reason == "stop"
    stream = await client.completions.create(
        model="meta.llama3-8b-instruct-v1:0", prompt="stream this", stream=True
    )
    text = "".join([c.choices[0].text async for c in stream if c.choices])
    assert text == "Mock reply to: stream this"
    assert [r["path"] for r in upstream.requests] == [
        "/model/meta.llama3-8b-instruct-v1:0/converse",
        "/model/meta.llama3-8b-instruct-v1:0/converse-stream",
    ]
    await client.close()


async def test_config_targets_and_region_default(gateway: Gateway, upstream: Upstream) -> None:
    config = {
        "provider": "bedrock",
        "custom_host": str(upstream.server.make_url("")),
        "aws_access_key_id": MOCK_AWS_ACCESS_KEY_ID,
        "aws_secret_access_key": MOCK_AWS_SECRET_ACCESS_KEY,
        "override_params": {"max_tokens": 2},
    }
    resp = await gateway.post(
        "/v1/chat/completions", chat("a b c d"), {"x-portkey-config": msgspec.json.encode(config).decode()}
    )
    data = await resp.json()
    assert resp.status == 200 and data["choices"][0]["finish_reason"] == "length"
    assert "/us-east-1/bedrock/aws4_request" in upstream.requests[0]["headers"]["Authorization"]


async def test_inference_profile_arn_model_id(gateway: Gateway, upstream: Upstream) -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
    resp = await gateway.post("/v1/chat/completions", {**chat("hi"), "model": arn}, bedrock_headers(upstream))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["model"] == arn
    # The ``/`` of the ARN stays percent-encoded on the wire, inside the one path segment.
    assert upstream.requests[0]["path"].startswith("/model/arn:aws:bedrock:")


@pytest.mark.parametrize("region", ["evil.example.com/x?", "us-east-1.attacker.net#", "US-EAST-1"])
async def test_region_cannot_redirect_the_signed_request(
    gateway: Gateway, upstream: Upstream, region: str
) -> None:
    headers = bedrock_headers(upstream, aws_region=region, aws_session_token="secret-session")
    del headers["x-portkey-custom-host"]
    resp = await gateway.post("/v1/chat/completions", chat("hi"), headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "aws_region"


async def test_non_strict_mode_keeps_bedrock_stop_reason(gateway: Gateway, upstream: Upstream) -> None:
    headers = {**bedrock_headers(upstream), "x-portkey-strict-open-ai-compliance": "false"}
    data = await (await gateway.post("/v1/chat/completions", chat("a b c", max_tokens=1), headers)).json()
    assert data["choices"][0]["finish_reason"] == "max_tokens"
    assert data["choices"][0]["message"]["content_blocks"] == [{"type": "text", "text": "Mock"}]
