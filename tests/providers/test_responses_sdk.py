"""Responses through the chat pivot, end to end with the official openai SDK.

The gateway's ingress stage is not wired to ``/v1/responses`` yet, so a small loopback server here
does what it will do, with the pieces it will use: decode the Responses request, continue a stored
conversation, map it with ``responses_to_chat``, send the chat body through fastgate's own chat
route to a provider mapping (Anthropic, Gemini, an OpenAI-compatible one, all the mock over real
HTTP), map the answer or the stream back, and store the result. The SDK's ``responses.stream()``
helper checks the events' order and identity as it accumulates them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from fastgate._transforms import responses_to_chat
from fastgate.errors import GatewayError
from fastgate.schema.responses import request_decoder
from fastgate.store.responses import MemoryResponseStore
from tests.conftest import Gateway, Upstream
from tests.providers.gemini_support import google_headers

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
]


def targets(upstream: Upstream) -> dict[str, dict[str, str]]:
    return {
        "anthropic": {"x-portkey-provider": "anthropic", "x-portkey-custom-host": upstream.url},
        "google": google_headers(upstream),
        "groq": {"x-portkey-provider": "groq", "x-portkey-custom-host": upstream.url},
    }


def ingress_app(gateway: Gateway, headers: dict[str, str]) -> web.Application:
    store = MemoryResponseStore(ttl=60)
    session: list[aiohttp.ClientSession] = []

    async def responses(request: web.Request) -> web.StreamResponse:
        req = request_decoder.decode(await request.read())
        history = None
        if req.previous_response_id is not None:
            record = await store.get(req.previous_response_id)
            if record is None:
                return web.json_response(
                    {
                        "error": {
                            "message": "not found",
                            "type": "invalid_request_error",
                            "param": "previous_response_id",
                            "code": "previous_response_not_found",
                        }
                    },
                    status=400,
                )
            history = bytes(record.conversation)
        try:
            turn = responses_to_chat(req, history)
        except GatewayError as exc:
            return web.Response(status=exc.status, body=exc.body(), content_type="application/json")
        sent = {
            **headers,
            "Authorization": request.headers["Authorization"],
            "Content-Type": "application/json",
            # Thinking comes back only in Portkey's non-strict answers (content_blocks).
            "x-portkey-strict-open-ai-compliance": "false",
        }
        async with session[0].post(
            gateway.url + "/v1/chat/completions", data=turn.body, headers=sent
        ) as chat:
            if chat.status != 200:
                return web.Response(
                    status=chat.status, body=await chat.read(), content_type="application/json"
                )
            if not turn.stream:
                body = turn.answer(await chat.read())
            else:
                out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
                await out.prepare(request)
                mapper = turn.stream_mapper()
                async for piece in chat.content.iter_any():
                    await out.write(mapper.feed(piece))
                await out.write(mapper.finish())
        record = turn.record()
        if turn.store and record is not None:
            await store.put(turn.id, record)
        if turn.stream:
            await out.write_eof()
            return out
        return web.Response(body=body, content_type="application/json")

    async def open_session(app: web.Application) -> AsyncIterator[None]:
        session.append(aiohttp.ClientSession())
        yield
        await session[0].close()

    app = web.Application()
    app.router.add_post("/v1/responses", responses)
    app.cleanup_ctx.append(open_session)
    return app


@pytest.fixture(params=["anthropic", "google", "groq"])
async def client(
    request: pytest.FixtureRequest, gateway: Gateway, upstream: Upstream, aiohttp_server: Callable[..., Any]
) -> AsyncIterator[AsyncOpenAI]:
    server: TestServer = await aiohttp_server(ingress_app(gateway, targets(upstream)[request.param]))
    async with AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="sk-test", max_retries=0) as c:
        yield c


async def test_create(client: AsyncOpenAI) -> None:
    response = await client.responses.create(
        model="claude-mock-1", input="hello through chat", instructions="be brief", max_output_tokens=200
    )
    assert response.status == "completed"
    assert response.output_text == "Mock reply to: hello through chat"
    assert response.instructions == "be brief" and response.max_output_tokens == 200
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0


async def test_stream_helper_accepts_the_events(client: AsyncOpenAI) -> None:
    async with client.responses.stream(model="claude-mock-1", input="stream through chat") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Mock reply to: stream through chat"
    assert final.status == "completed" and final.usage is not None


async def test_tool_loop_continues_with_previous_response_id(client: AsyncOpenAI, upstream: Upstream) -> None:
    first = await client.responses.create(
        model="claude-mock-1", input="find cats [mock tool_call=true]", tools=TOOLS
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "lookup"
    second = await client.responses.create(
        model="claude-mock-1",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "three cats"}],
        tools=TOOLS,
    )
    assert second.status == "completed" and second.previous_response_id == first.id
    # The provider was sent the whole conversation: the question, its call, and the call's result.
    sent = upstream.requests[-1]["body"]
    assert "find cats" in sent and "lookup" in sent and "three cats" in sent


async def test_stream_tool_call(client: AsyncOpenAI) -> None:
    async with client.responses.stream(
        model="claude-mock-1", input="find dogs [mock tool_call=true]", tools=TOOLS
    ) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_response()
    assert "response.function_call_arguments.done" in kinds
    assert [item.type for item in final.output if item.type == "function_call"] == ["function_call"]


async def test_hosted_tools_are_refused_before_any_call(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.responses.create(model="claude-mock-1", input="x", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0].type"
