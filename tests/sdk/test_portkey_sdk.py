"""The ``portkey-ai`` SDK pointed at fastgate: its headers and configs work unchanged."""

from __future__ import annotations

import msgspec
import pytest

from tests.conftest import Gateway, Upstream
from tests.support.sdk import portkey

MESSAGES = [{"role": "user", "content": "hello portkey"}]


async def test_provider_and_custom_host_kwargs(gateway: Gateway, upstream: Upstream) -> None:
    async with portkey(
        base_url=gateway.url + "/v1",
        api_key="pk-unused",
        provider="openai",
        custom_host=upstream.url,
        Authorization="sk-portkey-provider-key",
        trace_id="trace-from-sdk",
        metadata={"user": "u1"},
    ) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert completion.choices[0].message.content == "Mock reply to: hello portkey"
        received = upstream.requests[0]["headers"]
        assert received["Authorization"] == "Bearer sk-portkey-provider-key"
        assert not any(k.lower().startswith("x-portkey-") for k in received)


async def test_config_dict(gateway: Gateway, upstream: Upstream) -> None:
    config = {
        "provider": "groq",
        "api_key": "sk-config",
        "custom_host": upstream.url,
        "override_params": {"max_tokens": 11},
    }
    async with portkey(base_url=gateway.url + "/v1", api_key="pk-unused", config=config) as client:
        completion = await client.chat.completions.create(model="llama", messages=MESSAGES)
        assert completion.choices[0].message.content == "Mock reply to: hello portkey"
        sent = msgspec.json.decode(upstream.requests[0]["body"])
        assert sent["max_tokens"] == 11
        assert upstream.requests[0]["headers"]["Authorization"] == "Bearer sk-config"


async def test_stream(gateway: Gateway, upstream: Upstream) -> None:
    async with portkey(
        base_url=gateway.url + "/v1",
        api_key="pk-unused",
        provider="openai",
        custom_host=upstream.url,
        Authorization="sk-x",
    ) as client:
        stream = await client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        text = ""
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        assert text == "Mock reply to: hello portkey"


async def test_error_status_reaches_sdk(gateway: Gateway, upstream: Upstream) -> None:
    async with portkey(
        base_url=gateway.url + "/v1",
        api_key="pk-unused",
        provider="openai",
        custom_host=upstream.url,
        Authorization="sk-x",
    ) as client:
        with pytest.raises(Exception) as info:
            await client.chat.completions.create(
                model="m", messages=MESSAGES, extra_body={"mock": {"status": 429}}
            )
        assert getattr(info.value, "status_code", None) == 429
