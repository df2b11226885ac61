"""One conformance suite over every provider x capability, against ``fastgate mock``.

Each case drives the gateway with the official ``openai`` SDK (raw HTTP where the SDK hides the
wire, e.g. ``[DONE]``) and asserts both sides: what reached the mock in the provider's own
format (path, the body field carrying the user's text or image) and what the client got. The
provider table and the recorded findings live in tests/providers/conformance.py.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any, cast

import openai
import pytest
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionNamedToolChoiceParam,
)

from tests.conftest import Gateway, Upstream
from tests.providers.conformance import Provider, cases, received
from tests.support.sse import data_payloads

PROMPT = "conformance check one two"
#: A 1x1 PNG, sent as a data URL.
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a thing up",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


@pytest.fixture
async def client(
    gateway: Gateway, upstream: Upstream, provider: Provider
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The official SDK pointed at the gateway with the provider's headers, closed after the test."""
    async with provider.client(gateway, upstream) as sdk:
        yield sdk


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def strings(value: Any) -> list[str]:
    """Every string inside a decoded JSON body (where a provider nests a tool result varies)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def chunk_payloads(raw: bytes) -> list[dict[str, Any]]:
    """The JSON chunks of a gateway stream, after checking it ends with exactly one ``[DONE]``."""
    payloads = data_payloads(raw)
    assert payloads[-1] == b"[DONE]", payloads[-3:]
    assert payloads.count(b"[DONE]") == 1
    return [json.loads(p) for p in payloads[:-1]]


async def stream_raw(
    gateway: Gateway, upstream: Upstream, provider: Provider, path: str, body: dict[str, Any]
) -> bytes:
    resp = await gateway.post(path, {**body, "stream": True}, provider.raw_headers(upstream))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    return await resp.read()


# ---- chat ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("chat"))
async def test_chat(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model=provider.chat_model, messages=user(PROMPT), max_tokens=100
    )
    assert raw.headers["x-portkey-provider"] == provider.name
    answer = raw.parse()
    assert provider.text(received(upstream, provider, "chat", provider.chat_model)) == PROMPT
    assert answer.object == "chat.completion"
    [choice] = answer.choices
    assert choice.message.role == "assistant"
    assert choice.message.content and PROMPT in choice.message.content
    assert choice.finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
    # Portkey names the provider in every answer but OpenAI's own.
    assert (answer.model_extra or {}).get("provider") == (
        None if provider.name == "openai" else provider.name
    )


@pytest.mark.parametrize("role", ["system", "developer"])
@pytest.mark.parametrize("provider", cases("chat"))
async def test_instructions_reach_upstream(
    upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI, role: str
) -> None:
    """A system (or, as newer SDKs send it, developer) message reaches the provider wherever it
    keeps instructions; the Anthropic and Bedrock mocks refuse it among the messages."""
    answer = await client.chat.completions.create(
        model=provider.chat_model,
        messages=[
            cast(ChatCompletionMessageParam, {"role": role, "content": "Answer in haiku."}),
            *user(PROMPT),
        ],
        max_tokens=100,
    )
    sent = received(upstream, provider, "chat", provider.chat_model)
    assert "Answer in haiku." in strings(sent)
    assert provider.text(sent) == PROMPT
    assert answer.choices[0].message.content


# ---- stream -------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("stream"))
async def test_stream_matches_chat(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    whole = await client.chat.completions.create(
        model=provider.chat_model, messages=user(PROMPT), max_tokens=100
    )
    upstream.requests.clear()
    stream = await client.chat.completions.create(
        model=provider.chat_model, messages=user(PROMPT), max_tokens=100, stream=True
    )
    chunks = [c async for c in stream]
    assert provider.text(received(upstream, provider, "stream", provider.chat_model)) == PROMPT
    # Azure opens with a choiceless ``prompt_filter_results`` chunk (object "", id "") before the
    # first delta (learn.microsoft.com/azure/ai-services/openai/concepts/content-filter#streaming).
    chunks = [c for c in chunks if c.choices]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert len({c.id for c in chunks}) == 1


@pytest.mark.parametrize("provider", cases("stream"))
async def test_stream_wire_ends_with_done(gateway: Gateway, upstream: Upstream, provider: Provider) -> None:
    body = {"model": provider.chat_model, "messages": user(PROMPT), "max_tokens": 100}
    chunks = chunk_payloads(await stream_raw(gateway, upstream, provider, "/v1/chat/completions", body))
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("error" not in c for c in chunks)


@pytest.mark.parametrize("provider", cases("stream_usage"))
async def test_stream_include_usage(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    body = {
        "model": provider.chat_model,
        "messages": user(PROMPT),
        "max_tokens": 100,
        "stream_options": {"include_usage": True},
    }
    chunks = chunk_payloads(await stream_raw(gateway, upstream, provider, "/v1/chat/completions", body))
    with_usage = [i for i, c in enumerate(chunks) if c.get("usage")]
    assert with_usage == [len(chunks) - 1], [c.get("usage") for c in chunks]
    last = chunks[-1]
    assert last["choices"] == []
    usage = last["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # The SDK reads the same stream without error and sees the usage chunk last.
    upstream.requests.clear()
    stream = await client.chat.completions.create(
        model=provider.chat_model,
        messages=user(PROMPT),
        max_tokens=100,
        stream=True,
        stream_options={"include_usage": True},
    )
    sdk_chunks = [c async for c in stream]
    assert sdk_chunks[-1].usage is not None and sdk_chunks[-1].choices == []
    assert all(c.usage is None for c in sdk_chunks[:-1])
    # The stream counts the same tokens as the whole answer does.
    whole = await client.chat.completions.create(
        model=provider.chat_model, messages=user(PROMPT), max_tokens=100
    )
    assert whole.usage is not None
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
    )


@pytest.mark.parametrize("provider", cases("length"))
async def test_length_stop(upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI) -> None:
    """The provider's own max-tokens stop reason becomes ``length``, whole and streamed."""
    prompt = "count one two three four five six seven" + provider.length_marker
    whole = await client.chat.completions.create(
        model=provider.chat_model, messages=user(prompt), max_tokens=3
    )
    assert whole.choices[0].finish_reason == "length"
    stream = await client.chat.completions.create(
        model=provider.chat_model, messages=user(prompt), max_tokens=3, stream=True
    )
    finishes = [c.choices[0].finish_reason async for c in stream if c.choices and c.choices[0].finish_reason]
    assert finishes == ["length"]


# ---- tools --------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("tools"))
async def test_tool_call(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    answer = await client.chat.completions.create(
        model=provider.chat_model,
        messages=user("find the weather [mock tool_call=true]"),
        tools=TOOLS,
        max_tokens=100,
    )
    sent = received(upstream, provider, "chat", provider.chat_model)
    assert provider.tools(sent) == ["lookup"]
    [choice] = answer.choices
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.id and call.type == "function"
    assert call.function.name == "lookup"
    assert isinstance(json.loads(call.function.arguments), dict)


@pytest.mark.parametrize("provider", cases("tool_choice"))
async def test_named_tool_choice(upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI) -> None:
    """A tool named in ``tool_choice`` is the one the provider is told to call."""
    other: Any = {
        "type": "function",
        "function": {"name": "other", "parameters": {"type": "object"}},
    }
    forced: ChatCompletionNamedToolChoiceParam = {"type": "function", "function": {"name": "other"}}
    answer = await client.chat.completions.create(
        model=provider.chat_model,
        messages=user("use the other one [mock tool_call=true]"),
        tools=[*TOOLS, other],
        tool_choice=forced,
        max_tokens=100,
    )
    assert provider.tools(received(upstream, provider, "chat", provider.chat_model)) == ["lookup", "other"]
    [call] = answer.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert call.function.name == "other"
    assert answer.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("provider", cases("stream_tools"))
async def test_stream_tool_call(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    stream = await client.chat.completions.create(
        model=provider.chat_model,
        messages=user("find the weather [mock tool_call=true]"),
        tools=TOOLS,
        max_tokens=100,
        stream=True,
    )
    chunks = [c async for c in stream]
    assert provider.tools(received(upstream, provider, "stream", provider.chat_model)) == ["lookup"]
    deltas = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or ()]
    assert deltas and all(t.index == 0 for t in deltas)
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "lookup"
    assert [t.id for t in deltas if t.id] == [deltas[0].id]
    arguments = "".join((t.function.arguments or "") for t in deltas if t.function)
    assert isinstance(json.loads(arguments), dict)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    # The same call as the whole answer makes.
    upstream.requests.clear()
    whole = await client.chat.completions.create(
        model=provider.chat_model,
        messages=user("find the weather [mock tool_call=true]"),
        tools=TOOLS,
        max_tokens=100,
    )
    [call] = whole.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    assert json.loads(arguments) == json.loads(call.function.arguments)
    # On the wire: the tool-call stream ends with its finish chunk, then one [DONE].
    upstream.requests.clear()
    body = {
        "model": provider.chat_model,
        "messages": user("find the weather [mock tool_call=true]"),
        "tools": TOOLS,
        "max_tokens": 100,
    }
    wire = chunk_payloads(await stream_raw(gateway, upstream, provider, "/v1/chat/completions", body))
    assert [c for c in wire if c.get("choices")][-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("provider", cases("tool_result"))
async def test_tool_result_round_trip(
    upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    """The second turn of a tool conversation (assistant tool_calls, then the tool's result) is
    accepted upstream, which checks the provider's own pairing rules, and answered with text."""
    answer = await client.chat.completions.create(
        model=provider.chat_model,
        messages=[
            {"role": "user", "content": "find the weather"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"query": "weather"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny and 21C"},
        ],
        tools=TOOLS,
        max_tokens=100,
    )
    sent = received(upstream, provider, "chat", provider.chat_model)
    assert provider.tools(sent) == ["lookup"]
    assert "sunny and 21C" in strings(sent)
    assert answer.choices[0].finish_reason == "stop" and answer.choices[0].message.content


# ---- vision -------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("vision"))
async def test_vision_image_reaches_upstream(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    url = f"data:image/png;base64,{PIXEL}"
    answer = await client.chat.completions.create(
        model=provider.chat_model,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
        max_tokens=100,
    )
    body = received(upstream, provider, "chat", provider.chat_model)
    assert provider.text(body) == "what is this"
    assert provider.image(body) == url
    assert answer.choices[0].message.content


# ---- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500])
@pytest.mark.parametrize("provider", cases("errors"))
async def test_scripted_error_keeps_status(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI, status: int
) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await client.chat.completions.create(
            model=provider.chat_model, messages=user(f"fail please [mock status={status}]"), max_tokens=100
        )
    received(upstream, provider, "chat", provider.chat_model)
    error = caught.value
    assert error.status_code == status
    assert isinstance(error, openai.RateLimitError if status == 429 else openai.InternalServerError)
    body = error.body
    assert isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]
    # The raw body: OpenAI's error shape, with the provider named.
    resp = await gateway.post(
        "/v1/chat/completions",
        {"model": provider.chat_model, "messages": user(f"again [mock status={status}]"), "max_tokens": 100},
        provider.raw_headers(upstream),
    )
    assert resp.status == status
    assert resp.headers["x-portkey-provider"] == provider.name
    data = await resp.json()
    assert set(data["error"]) >= {"message", "type", "param", "code"}
    assert data["provider"] == provider.name
    # Portkey's normalisation: "<provider> error: <the upstream's own message>", and a type the
    # OpenAI SDK's users switch on.
    assert data["error"]["message"] == f"{provider.name} error: mock failure {status}"
    assert data["error"]["type"] in (
        ("rate_limit_error",) if status == 429 else ("api_error", "server_error")
    )


@pytest.mark.parametrize("provider", cases("errors"))
async def test_error_on_a_streamed_request_is_not_streamed(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    """A provider refusing a streamed request answers with its status and a JSON error body, as
    Portkey does (errors are never streamed), whichever URL or flag the provider streams by."""
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(
            model=provider.chat_model,
            messages=user("slow down [mock status=429]"),
            max_tokens=100,
            stream=True,
        )
    received(upstream, provider, "stream", provider.chat_model)
    upstream.requests.clear()
    resp = await gateway.post(
        "/v1/chat/completions",
        {
            "model": provider.chat_model,
            "messages": user("again [mock status=429]"),
            "stream": True,
            "max_tokens": 100,
        },
        provider.raw_headers(upstream),
    )
    assert resp.status == 429 and resp.content_type == "application/json"
    data = await resp.json()
    assert data["error"]["type"] == "rate_limit_error" and data["provider"] == provider.name


@pytest.mark.parametrize(
    ("provider", "fail"), cases("mid_stream_error", ["provider_error", "drop_mid_stream", "error_mid_stream"])
)
async def test_mid_stream_error(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI, fail: str
) -> None:
    """The mock fails halfway: the client gets the text so far, an error event, then [DONE].

    ``provider_error`` is the provider's own mid-stream failure; ``drop_mid_stream`` a dropped
    connection; ``error_mid_stream`` the mock's OpenAI-format error frame then a drop, which is
    malformed in a non-OpenAI wire format (a gateway must still keep the text before it). The
    reply spans several frames, or the failure point is never reached.
    """
    directive = provider.mid_stream_fail if fail == "provider_error" else fail
    body: dict[str, Any] = {
        "model": provider.chat_model,
        "messages": user(
            f"break this long answer into many separate pieces now [mock fail={directive} chunks=6]"
        ),
        "max_tokens": 100,
    }
    raw = await stream_raw(gateway, upstream, provider, "/v1/chat/completions", body)
    chunks = chunk_payloads(raw)
    errors = [i for i, c in enumerate(chunks) if "error" in c]
    assert errors, chunks[-1]
    before = "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks[: errors[0]] if c["choices"]
    )
    assert before.startswith("Mock reply"), chunks[: errors[0]]
    # Nothing but errors after the first: OpenAI-format upstreams' own error event is relayed,
    # then the gateway's for the dropped connection; the last names the provider.
    assert errors == list(range(errors[0], len(chunks)))
    last = chunks[-1]
    assert last["error"]["message"] and last["provider"] == provider.name
    assert set(last["error"]) >= {"message", "type", "param", "code"}
    # The SDK surfaces the error event as an exception, after the text that came before it.
    upstream.requests.clear()
    stream = await client.chat.completions.create(
        model=provider.chat_model, messages=body["messages"], max_tokens=100, stream=True
    )
    with pytest.raises(openai.APIError):
        async for _ in stream:
            pass


# ---- embeddings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("embeddings"))
async def test_embeddings_float_and_base64(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    assert provider.embed_model
    floats = await client.embeddings.create(
        model=provider.embed_model, input=["embed me"], encoding_format="float"
    )
    sent = received(upstream, provider, "embeddings", provider.embed_model)
    assert provider.embed_inputs(sent) == ["embed me"]
    [item] = floats.data
    assert item.object == "embedding" and item.index == 0
    vector = item.embedding
    assert vector and all(isinstance(v, float) for v in vector)
    assert floats.usage.total_tokens == floats.usage.prompt_tokens
    assert (floats.usage.prompt_tokens > 0) == provider.embed_counts_tokens
    # base64 as the SDK asks: the raw body carries little-endian float32, the same vector.
    resp = await gateway.post(
        "/v1/embeddings",
        {"model": provider.embed_model, "input": ["embed me"], "encoding_format": "base64"},
        provider.raw_headers(upstream),
    )
    assert resp.status == 200, await resp.text()
    encoded = (await resp.json())["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = struct.unpack(f"<{len(vector)}f", base64.b64decode(encoded))
    assert decoded == pytest.approx(vector, abs=1e-6)
    # The SDK's default (it asks for base64 and decodes it) gives the same floats back.
    default = await client.embeddings.create(model=provider.embed_model, input=["embed me"])
    assert default.data[0].embedding == pytest.approx(vector, abs=1e-6)


# ---- legacy completions -------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("completions"))
async def test_legacy_completions(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    done = await client.completions.create(model=provider.chat_model, prompt=PROMPT, max_tokens=100)
    assert provider.text(received(upstream, provider, "completions", provider.chat_model)) == PROMPT
    assert done.object == "text_completion"
    [choice] = done.choices
    assert PROMPT in choice.text and choice.finish_reason == "stop"
    assert done.usage is not None
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens
    upstream.requests.clear()
    stream = await client.completions.create(
        model=provider.chat_model, prompt=PROMPT, max_tokens=100, stream=True
    )
    chunks = [c async for c in stream]
    received(upstream, provider, "completions_stream", provider.chat_model)
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == choice.text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        "stop"
    ]
    upstream.requests.clear()
    body = {"model": provider.chat_model, "prompt": PROMPT, "max_tokens": 100}
    chunk_payloads(await stream_raw(gateway, upstream, provider, "/v1/completions", body))


@pytest.mark.parametrize("provider", cases("embeddings"))
async def test_embeddings_batch_keeps_order(
    upstream: Upstream, provider: Provider, client: openai.AsyncOpenAI
) -> None:
    model = provider.embed_batch_model or provider.embed_model
    assert model
    answer = await client.embeddings.create(
        model=model, input=["first text", "second"], encoding_format="float"
    )
    assert [d.index for d in answer.data] == [0, 1]
    assert answer.data[0].embedding != answer.data[1].embedding
    # The same text embeds the same alone as in a batch: the answers were not shuffled.
    alone = await client.embeddings.create(model=model, input="second", encoding_format="float")
    assert alone.data[0].embedding == pytest.approx(answer.data[1].embedding, abs=1e-6)
