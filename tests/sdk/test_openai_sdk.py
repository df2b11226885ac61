"""The official ``openai`` SDK pointed at fastgate with only ``base_url`` changed."""

from __future__ import annotations

import base64
import struct

import openai
import pytest
from openai import AsyncOpenAI

from tests.conftest import Gateway, Upstream

MESSAGES = [{"role": "user", "content": "hello sdk"}]


def client_for(gateway: Gateway, upstream: Upstream, provider: str = "openai") -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url=gateway.url + "/v1",
        api_key="sk-sdk-key",
        max_retries=0,
        default_headers={"x-portkey-provider": provider, "x-portkey-custom-host": upstream.url},
    )


@pytest.fixture
async def client(gateway: Gateway, upstream: Upstream):
    async with client_for(gateway, upstream) as c:
        yield c


async def test_chat(client: AsyncOpenAI, upstream: Upstream) -> None:
    completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, temperature=0)
    assert completion.choices[0].message.content == "Mock reply to: hello sdk"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert upstream.requests[0]["headers"]["Authorization"] == "Bearer sk-sdk-key"


async def test_stream_with_usage(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    text, finish, usage = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert text == "Mock reply to: hello sdk"
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


async def test_stream_tool_calls(client: AsyncOpenAI) -> None:
    parameters = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": parameters}}]
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, tools=tools, stream=True, extra_body={"mock": {"tool_call": True}}
    )
    args, name = "", None
    async for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            name = call.function.name or name
            args += call.function.arguments or ""
    assert name == "lookup"
    assert args == '{"query":"hello sdk"}'


async def test_completions_and_embeddings(client: AsyncOpenAI) -> None:
    completion = await client.completions.create(model="m", prompt="say hi")
    assert completion.choices[0].text == "Mock reply to: say hi"
    # The SDK asks for base64 by default and decodes it itself.
    emb = await client.embeddings.create(model="e", input=["one", "two"], dimensions=6)
    assert [len(d.embedding) for d in emb.data] == [6, 6]
    raw = await client.embeddings.create(model="e", input="one", dimensions=6, encoding_format="float")
    assert raw.data[0].embedding == pytest.approx(emb.data[0].embedding, abs=1e-6)
    assert struct.calcsize("<6f") == len(
        base64.b64decode(base64.b64encode(struct.pack("<6f", *emb.data[0].embedding)))
    )


async def test_models(client: AsyncOpenAI) -> None:
    models = await client.models.list()
    assert "mock-small" in [m.id for m in models.data]


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (403, openai.PermissionDeniedError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_errors_map_to_sdk_exceptions(client: AsyncOpenAI, status: int, exc: type[Exception]) -> None:
    with pytest.raises(exc) as info:
        await client.chat.completions.create(
            model="m", messages=MESSAGES, extra_body={"mock": {"status": status}}
        )
    assert info.value.status_code == status  # type: ignore[attr-defined]
    assert "openai error" in str(info.value)


async def test_gateway_validation_error_is_bad_request(gateway: Gateway) -> None:
    headers = {"x-portkey-provider": "no-such-provider"}
    async with AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key="k", max_retries=0, default_headers=headers
    ) as client:
        with pytest.raises(openai.BadRequestError, match="Invalid provider"):
            await client.chat.completions.create(model="m", messages=MESSAGES)


async def test_mid_stream_failure_raises_in_sdk(client: AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        extra_body={"mock": {"fail": "drop_mid_stream", "chunks": 6}},
    )
    with pytest.raises(openai.APIError, match="stream interrupted"):
        async for _ in stream:
            pass


async def test_in_process_mock_needs_no_key_or_host(gateway: Gateway) -> None:
    async with AsyncOpenAI(
        base_url=gateway.url + "/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"x-portkey-provider": "mock"},
    ) as client:
        completion = await client.chat.completions.create(model="mock-small", messages=MESSAGES)
        assert completion.choices[0].message.content == "Mock reply to: hello sdk"
