"""The mock's Responses API, driven by the official openai SDK: straight over HTTP, through
fastgate's passthrough to it as OpenAI, and in-process as the ``mock`` provider (what ``fastgate
serve --default-provider mock`` answers an Agents SDK or Codex client with)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from tests.conftest import Gateway, Upstream
from tests.support.sse import named_events


@pytest.fixture(params=["direct", "passthrough", "in-process"])
async def client(
    request: pytest.FixtureRequest, upstream: Upstream, make_gateway: Any
) -> AsyncIterator[AsyncOpenAI]:
    if request.param == "direct":
        base, headers = upstream.url, {}
    elif request.param == "passthrough":
        gateway: Gateway = await make_gateway()
        base = gateway.url + "/v1"
        headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url}
    else:
        gateway = await make_gateway(default_provider="mock")
        base, headers = gateway.url + "/v1", {}
    async with AsyncOpenAI(base_url=base, api_key="sk-test", max_retries=0, default_headers=headers) as c:
        yield c


TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {}},
        "strict": False,
    }
]


async def test_create_answers_a_response(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="gpt-mock", input="hello mock", instructions="be nice", temperature=0.5, metadata={"k": "v"}
    )
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and response.model == "gpt-mock"
    assert response.output_text == "Mock reply to: hello mock"
    assert (
        response.instructions == "be nice" and response.temperature == 0.5 and response.metadata == {"k": "v"}
    )
    assert response.usage is not None and response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens
    )


async def test_stream_helper_takes_the_event_order(client: AsyncOpenAI) -> None:
    async with client.responses.stream(model="gpt-mock", input="stream me please") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert final.output_text == "Mock reply to: stream me please"


async def test_tool_call_and_its_stream(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="gpt-mock", input="weather?", tools=TOOLS, tool_choice="required"
    )
    call = response.output[0]
    assert call.type == "function_call" and call.name == "get_weather" and call.call_id
    async with client.responses.stream(
        model="gpt-mock", input="weather?", tools=TOOLS, extra_body={"mock": {"tool_call": True}}
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert final.output[0].type == "function_call"
    assert final.output[0].arguments == '{"query":"weather?"}'


async def test_reasoning_summary(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="gpt-mock", input="think", reasoning={"effort": "high", "summary": "auto"}
    )
    assert [item.type for item in response.output] == ["reasoning", "message"]
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Mock reasoning."


async def test_max_output_tokens_cuts_the_answer(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="gpt-mock", input="one two three four", max_output_tokens=2
    )
    assert response.status == "incomplete"
    assert (
        response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    )
    assert response.output_text == "Mock reply"


async def test_stored_responses_continue_and_can_be_read_and_deleted(client: AsyncOpenAI) -> None:
    first = await client.responses.create(model="gpt-mock", input="remember me")
    second = await client.responses.create(model="gpt-mock", input="and now?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    fetched = await client.responses.retrieve(first.id)
    assert fetched.id == first.id and fetched.output_text == first.output_text
    items = await client.responses.input_items.list(first.id)
    assert [item.type for item in items.data] == ["message"]
    await client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(first.id)
    unstored = await client.responses.create(model="gpt-mock", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(unstored.id)


async def test_refuses_what_openai_refuses(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        await client.responses.create(model="gpt-mock", input="x", previous_response_id="resp_nope")
    assert unknown.value.code == "previous_response_not_found"
    with pytest.raises(openai.BadRequestError):
        await client.responses.create(model="gpt-mock", input="x", extra_body={"messages": []})


async def test_failure_mid_stream_is_error_then_response_failed(upstream: Upstream) -> None:
    async with AsyncOpenAI(base_url=upstream.url, api_key="k", max_retries=0) as c:
        stream = await c.responses.create(
            model="gpt-mock", input="x y z w", stream=True, extra_body={"mock": {"fail": "error_mid_stream"}}
        )
        kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created" and kinds[-2:] == ["error", "response.failed"]


async def test_every_stream_event_is_numbered_in_order(upstream: Upstream, gateway: Gateway) -> None:
    reply = await gateway.post(
        "/v1/responses",
        {"model": "gpt-mock", "input": "count", "stream": True},
        headers={"x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url},
    )
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/event-stream")
    events = named_events(await reply.read())
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert all(name == data["type"] for name, data in events)
    for _, data in events:  # validated as the SDK's types define them, not merely constructed
        TypeAdapter(ResponseStreamEvent).validate_python(data)


async def test_custom_tool_call(client: AsyncOpenAI) -> None:
    patch_tool: Any = {"type": "custom", "name": "apply_patch", "description": "Edit files."}
    response = await client.responses.create(
        model="gpt-mock",
        input="*** Begin Patch",
        tools=[patch_tool],
        tool_choice={"type": "custom", "name": "apply_patch"},
    )
    call = response.output[0]
    assert call.type == "custom_tool_call" and call.name == "apply_patch" and call.input == "*** Begin Patch"
    async with client.responses.stream(
        model="gpt-mock", input="*** End Patch", tools=[patch_tool], tool_choice="required"
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.custom_tool_call_input.done" in kinds
    assert final.output[0].type == "custom_tool_call" and final.output[0].input == "*** End Patch"
