"""Provider ``google``: streams, finish reasons, errors, embeddings and completions, through the
gateway to the Gemini-format mock over HTTP, read by the openai SDK."""

from __future__ import annotations

import base64
import struct

import msgspec
import openai
import pytest

from fastgate.mock.openai_format import embedding_vector
from tests.conftest import Gateway, Upstream
from tests.providers.gemini_support import MODEL, WEATHER_TOOL, client, google_headers, sent
from tests.support.sse import data_payloads


@pytest.mark.parametrize(
    ("directive", "finish_reason"),
    [
        ("finish=MAX_TOKENS", "length"),
        ("finish=SAFETY", "content_filter"),
        ("finish=RECITATION", "content_filter"),
        ("finish=PROHIBITED_CONTENT", "content_filter"),
        ("finish=OTHER", "stop"),
        ("block=SAFETY", "content_filter"),
        ("block=PROHIBITED_CONTENT", "content_filter"),
    ],
)
async def test_finish_reasons(
    gateway: Gateway, upstream: Upstream, directive: str, finish_reason: str
) -> None:
    messages = [{"role": "user", "content": f"go [mock {directive}]"}]
    async with client(gateway, google_headers(upstream)) as c:
        answer = await c.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
        assert answer.choices[0].finish_reason == finish_reason
        if directive.startswith("block"):
            assert answer.choices[0].message.content == ""
        stream = await c.chat.completions.create(model=MODEL, messages=messages, stream=True)  # type: ignore[arg-type]
        reasons = [ch.choices[0].finish_reason async for ch in stream if ch.choices]
    assert reasons[-1] == finish_reason
    assert all(r is None for r in reasons[:-1])


async def test_stream_text_ends_with_done(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        stream = await c.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "count to five please"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Mock reply to: count to five please"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(ch.usage is None for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1
    [received] = upstream.requests
    assert received["path"] == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert received["query"] == "alt=sse"
    resp = await gateway.post(
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        google_headers(upstream, Authorization="Bearer k"),
    )
    raw = await resp.read()
    assert resp.content_type == "text/event-stream"
    assert data_payloads(raw)[-1] == b"[DONE]"
    assert raw.endswith(b"data: [DONE]\n\n")


async def test_stream_usage_only_when_asked(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        stream = await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "one two three"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    usage_chunks = [ch for ch in chunks if ch.usage is not None]
    assert usage_chunks == [chunks[-1]]
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (3, 6, 9)


async def test_stream_tool_calls(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        stream = await c.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Rome [mock tool_call=true]"}],
            tools=[WEATHER_TOOL],
            stream=True,
        )
        chunks = [chunk async for chunk in stream]
    calls = [tc for ch in chunks if ch.choices for tc in ch.choices[0].delta.tool_calls or []]
    assert len(calls) == 1
    assert calls[0].index == 0 and calls[0].id and calls[0].type == "function"
    assert calls[0].function is not None and calls[0].function.name == "get_weather"
    assert msgspec.json.decode(calls[0].function.arguments or "") == {"city": "Rome"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize(
    ("status", "exc", "type_", "code"),
    [
        (400, openai.BadRequestError, "invalid_request_error", "INVALID_ARGUMENT"),
        (403, openai.PermissionDeniedError, "permission_error", "PERMISSION_DENIED"),
        (404, openai.NotFoundError, "not_found_error", "NOT_FOUND"),
        (429, openai.RateLimitError, "rate_limit_error", "RESOURCE_EXHAUSTED"),
        (503, openai.InternalServerError, "api_error", "UNAVAILABLE"),
    ],
)
async def test_errors_keep_status_and_name_the_provider(
    gateway: Gateway, upstream: Upstream, status: int, exc: type[openai.APIStatusError], type_: str, code: str
) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        with pytest.raises(exc) as err:
            await c.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": f"x [mock status={status}]"}]
            )
    assert err.value.status_code == status
    body = err.value.body
    assert isinstance(body, dict)
    assert body["type"] == type_ and body["code"] == code
    assert body["message"] == f"google error: mock failure {status}"
    assert err.value.response.json()["provider"] == "google"


async def test_missing_key_is_googles_403(gateway: Gateway, upstream: Upstream) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    resp = await gateway.post("/v1/chat/completions", body, google_headers(upstream))
    assert resp.status == 403
    data = await resp.json()
    assert data["error"]["code"] == "PERMISSION_DENIED" and data["provider"] == "google"


async def test_mid_stream_error_becomes_error_event_then_done(gateway: Gateway, upstream: Upstream) -> None:
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "a b c d e f [mock fail=error_mid_stream chunks=4]"}],
        "stream": True,
    }
    resp = await gateway.post(
        "/v1/chat/completions", body, google_headers(upstream, Authorization="Bearer k")
    )
    payloads = data_payloads(await resp.read())
    assert payloads[-1] == b"[DONE]"
    error = msgspec.json.decode(payloads[-2])
    assert error["error"]["message"] == "google error: mock failed mid-stream"
    assert error["provider"] == "google"
    assert msgspec.json.decode(payloads[0])["choices"][0]["delta"]["content"]


@pytest.mark.parametrize("encoding", ["base64", "float"])
async def test_embeddings(gateway: Gateway, upstream: Upstream, encoding: str) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        result = await c.embeddings.create(
            model="text-embedding-004",
            input=["first text", "second text"],
            dimensions=6,
            encoding_format=encoding,  # type: ignore[arg-type]
        )
    assert [d.index for d in result.data] == [0, 1]
    expected = embedding_vector("first text", 6)
    got = result.data[0].embedding
    if encoding == "base64":
        # The SDK hands base64 strings back as they came: decode them as it would with numpy.
        assert isinstance(got, str)
        got = list(struct.unpack("<6f", base64.b64decode(got)))
    assert got == pytest.approx(expected, rel=1e-6)
    [received] = upstream.requests
    assert received["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents"
    assert sent(upstream) == {
        "requests": [
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "first text"}]},
                "outputDimensionality": 6,
            },
            {
                "model": "models/text-embedding-004",
                "content": {"parts": [{"text": "second text"}]},
                "outputDimensionality": 6,
            },
        ]
    }


async def test_completions_whole_and_streamed(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        done = await c.completions.create(model=MODEL, prompt="say hi", max_tokens=5)
        assert done.object == "text_completion"
        assert done.choices[0].text == "Mock reply to: say hi"
        assert done.choices[0].finish_reason == "stop"
        assert sent(upstream) == {
            "contents": [{"role": "user", "parts": [{"text": "say hi"}]}],
            "generationConfig": {"maxOutputTokens": 5},
        }
        stream = await c.completions.create(
            model=MODEL, prompt="say hi", stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == "Mock reply to: say hi"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 2
    assert upstream.requests[-1]["query"] == "alt=sse"


async def test_non_strict_stream_shows_thoughts_and_raw_finish_reason(
    gateway: Gateway, upstream: Upstream
) -> None:
    body = {
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "think aloud"}],
        "thinking": {"type": "enabled", "budget_tokens": 128},
        "stream": True,
    }
    headers = google_headers(
        upstream, Authorization="Bearer k", **{"x-portkey-strict-open-ai-compliance": "false"}
    )
    resp = await gateway.post("/v1/chat/completions", body, headers)
    payloads = data_payloads(await resp.read())
    assert payloads[-1] == b"[DONE]"
    chunks = [msgspec.json.decode(p) for p in payloads[:-1]]
    deltas = [ch["choices"][0]["delta"] for ch in chunks]
    assert deltas[0]["content_blocks"] == [{"index": 0, "delta": {"thinking": "Considering the question."}}]
    assert "".join(d.get("content") or "" for d in deltas) == "Mock reply to: think aloud"
    assert chunks[-1]["choices"][0]["finish_reason"] == "STOP"
    strict = await gateway.post(
        "/v1/chat/completions", body, google_headers(upstream, Authorization="Bearer k")
    )
    strict_chunks = [msgspec.json.decode(p) for p in data_payloads(await strict.read())[:-1]]
    assert not any("content_blocks" in ch["choices"][0]["delta"] for ch in strict_chunks)
    assert strict_chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_forward_headers_reach_google(gateway: Gateway, upstream: Upstream) -> None:
    headers = google_headers(
        upstream,
        Authorization="Bearer k",
        **{"x-portkey-forward-headers": "x-goog-user-project", "x-goog-user-project": "billing-1"},
    )
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    resp = await gateway.post("/v1/chat/completions", body, headers)
    assert resp.status == 200
    assert upstream.requests[0]["headers"]["x-goog-user-project"] == "billing-1"
