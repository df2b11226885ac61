"""The built-in mock (``x-portkey-provider: mock``, no key, no upstream) through Messages: what a
newcomer gets from ``fastgate serve`` with the anthropic SDK, before any provider is set up."""

from __future__ import annotations

import anthropic
import pytest
from anthropic.types import TextBlock, ToolUseBlock

from tests.conftest import Gateway
from tests.support.messages import anthropic_client, check_event_order
from tests.support.sse import named_events

MOCK = {"x-portkey-provider": "mock"}
TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


async def test_create_stream_and_count(gateway: Gateway) -> None:
    async with anthropic_client(gateway.url, MOCK) as client:
        message = await client.messages.create(
            model="mock-small",
            max_tokens=64,
            system="Be brief.",
            messages=[{"role": "user", "content": "Hi"}],
        )
        assert isinstance(message.content[0], TextBlock) and message.content[0].text == "Mock reply to: Hi"
        assert message.stop_reason == "end_turn" and message.model == "mock-small"
        async with client.messages.stream(
            model="mock-small", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        ) as stream:
            texts = [text async for text in stream.text_stream]
            final = await stream.get_final_message()
        assert "".join(texts) == "Mock reply to: Hi" and final.usage.output_tokens > 0
        counted = await client.messages.count_tokens(
            model="mock-small", messages=[{"role": "user", "content": "Hi"}]
        )
        assert counted.input_tokens > 0
    resp = await gateway.post(
        "/v1/messages",
        {
            "model": "mock-small",
            "max_tokens": 64,
            "stream": True,
            "messages": [{"role": "user", "content": "Hi"}],
        },
        MOCK,
    )
    check_event_order(named_events(await resp.read()))


async def test_a_tool_loop(gateway: Gateway) -> None:
    async with anthropic_client(gateway.url, MOCK) as client:
        first = await client.messages.create(
            model="mock-small",
            max_tokens=64,
            tools=[TOOL],  # type: ignore[list-item]
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "Weather in Paris?"}],
        )
        assert first.stop_reason == "tool_use"
        [call] = [b for b in first.content if isinstance(b, ToolUseBlock)]
        assert call.name == "get_weather" and isinstance(call.input, dict) and "city" in call.input
        second = await client.messages.create(
            model="mock-small",
            max_tokens=64,
            tools=[TOOL],  # type: ignore[list-item]
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {
                    "role": "assistant",
                    "content": [block.model_dump(exclude_none=True) for block in first.content],
                },  # type: ignore[misc]
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C"}],
                },
            ],
        )
    assert second.stop_reason == "end_turn" and isinstance(second.content[0], TextBlock)


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, anthropic.BadRequestError), (401, anthropic.AuthenticationError), (429, anthropic.RateLimitError)],
)
async def test_scripted_errors_raise_the_sdks_classes(
    gateway: Gateway, status: int, error: type[Exception]
) -> None:
    async with anthropic_client(gateway.url, MOCK) as client:
        with pytest.raises(error) as caught:
            await client.messages.create(
                model="mock-small",
                max_tokens=8,
                messages=[{"role": "user", "content": f"x [mock status={status}]"}],
            )
    body = getattr(caught.value, "body", None)
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["message"] == f"mock error: mock failure {status}"
