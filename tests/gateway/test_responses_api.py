"""``/v1/responses`` through a real gateway, driven by the official openai SDK: translated
providers (Anthropic, Gemini, an OpenAI-compatible one; the mock over real HTTP speaking each),
the passthrough to a provider that speaks Responses, fallbacks across the two, stored responses
(memory and Redis), and the other stages (cache, keys) seeing the exchange as chat."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from tests.conftest import Gateway, Upstream
from tests.providers.gemini_support import google_headers
from tests.providers.test_azure_openai import azure_headers
from tests.redis_server import RedisProcess
from tests.support.sse import named_events

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "lookup",
        "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
    }
]
ADMIN = "admin-token-for-tests"


def headers_for(provider: str, upstream: Upstream) -> dict[str, str]:
    if provider == "google":
        return google_headers(upstream)
    return {"x-portkey-provider": provider, "x-portkey-custom-host": upstream.url}


def client(gateway: Gateway, headers: dict[str, str], key: str = "sk-test") -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, default_headers=headers)


@pytest.fixture(params=["anthropic", "google", "groq"])
async def translated(
    request: pytest.FixtureRequest, gateway: Gateway, upstream: Upstream
) -> AsyncIterator[AsyncOpenAI]:
    async with client(gateway, headers_for(request.param, upstream)) as c:
        yield c


def sent(upstream: Upstream) -> str:
    """The last body the provider received."""
    return str(upstream.requests[-1]["body"])


# ---- translated providers ----------------------------------------------------------------------


async def test_create(translated: AsyncOpenAI, upstream: Upstream) -> None:
    response = await translated.responses.create(
        model="claude-mock-1", input="hello through chat", instructions="be brief", max_output_tokens=200
    )
    assert response.status == "completed" and response.id.startswith("resp_")
    assert response.output_text == "Mock reply to: hello through chat"
    assert response.instructions == "be brief" and response.max_output_tokens == 200
    assert response.usage is not None and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert not upstream.requests[-1]["path"].endswith("/responses")  # the provider's own API


async def test_stream_helper_accepts_the_events(translated: AsyncOpenAI) -> None:
    async with translated.responses.stream(model="claude-mock-1", input="stream through chat") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text == "Mock reply to: stream through chat"
    assert final.status == "completed" and final.usage is not None


async def test_tool_loop_continues_with_previous_response_id(
    translated: AsyncOpenAI, upstream: Upstream
) -> None:
    first = await translated.responses.create(
        model="claude-mock-1", input="find cats [mock tool_call=true]", tools=TOOLS
    )
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "lookup"
    second = await translated.responses.create(
        model="claude-mock-1",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": "three cats"}],
        tools=TOOLS,
    )
    assert second.status == "completed" and second.previous_response_id == first.id
    # The provider was sent the whole conversation: the question, its call, the call's result.
    assert "find cats" in sent(upstream) and "lookup" in sent(upstream) and "three cats" in sent(upstream)


async def test_stored_response_routes(translated: AsyncOpenAI) -> None:
    first = await translated.responses.create(
        model="claude-mock-1", input=[{"role": "user", "content": "keep"}]
    )
    assert (await translated.responses.retrieve(first.id)).output_text == first.output_text
    items = await translated.responses.input_items.list(first.id)
    assert [item.type for item in items.data] == ["message"]
    await translated.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        await translated.responses.retrieve(first.id)
    unstored = await translated.responses.create(model="claude-mock-1", input="forget", store=False)
    with pytest.raises(openai.NotFoundError):
        await translated.responses.retrieve(unstored.id)


async def test_refusals_are_400s_in_openai_shape(translated: AsyncOpenAI, upstream: Upstream) -> None:
    with pytest.raises(openai.BadRequestError) as hosted:
        await translated.responses.create(model="m", input="x", tools=[{"type": "web_search"}])
    assert hosted.value.param == "tools[0].type"
    with pytest.raises(openai.BadRequestError) as unknown:
        await translated.responses.create(model="m", input="x", previous_response_id="resp_unknown")
    assert unknown.value.code == "previous_response_not_found"
    assert unknown.value.param == "previous_response_id"
    assert upstream.requests == []  # refused before any upstream call


@pytest.mark.parametrize("failure", ["error_mid_stream", "drop_mid_stream"])
async def test_a_failure_mid_stream_is_error_then_response_failed(
    gateway: Gateway, upstream: Upstream, failure: str
) -> None:
    # Anthropic's own error event, or the connection cut (the gateway's error event): both end
    # the Response as failed.
    resp = await gateway.post(
        "/v1/responses",
        {"model": "claude-mock-1", "input": f"one two three four [mock fail={failure}]", "stream": True},
        {**headers_for("anthropic", upstream), "Authorization": "Bearer sk-ant"},
    )
    assert resp.status == 200
    events = named_events(await resp.read())
    assert [name for name, _ in events][:2] == ["response.created", "response.in_progress"]
    assert [name for name, _ in events][-2:] == ["error", "response.failed"]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))


async def test_anthropic_thinking_comes_back_as_reasoning_and_goes_back_signed(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = json.dumps(
        {
            "provider": "anthropic",
            "api_key": "sk-ant",
            "custom_host": upstream.url,
            "override_params": {"thinking": {"type": "enabled", "budget_tokens": 1024}},
        }
    )
    async with client(gateway, {"x-portkey-config": config}) as c:
        first = await c.responses.create(
            model="claude-mock-1", input="think first", reasoning={"effort": "high"}
        )
        reasoning = first.output[0]
        assert reasoning.type == "reasoning" and reasoning.summary[0].text == "Mock thinking."
        assert reasoning.encrypted_content and reasoning.encrypted_content.startswith("sig-mock")
        await c.responses.create(model="claude-mock-1", input="and then?", previous_response_id=first.id)
    turns = json.loads(sent(upstream))["messages"]
    assert turns[1]["role"] == "assistant"
    assert turns[1]["content"][0] == {
        "type": "thinking",
        "thinking": "Mock thinking.",
        "signature": reasoning.encrypted_content,
    }


# ---- the passthrough, and fallbacks across the two forms ---------------------------------------


async def test_a_provider_that_speaks_responses_gets_the_request_as_it_came(
    gateway: Gateway, upstream: Upstream
) -> None:
    async with client(gateway, headers_for("openai", upstream)) as c:
        response = await c.responses.create(model="gpt-mock", input="native", tools=[{"type": "web_search"}])
        assert response.output_text == "Mock reply to: native"
        assert upstream.requests[-1]["path"] == "/v1/responses"
        assert json.loads(sent(upstream))["tools"] == [{"type": "web_search"}]
        # Its stored responses are its own: read through the passthrough.
        assert (await c.responses.retrieve(response.id)).id == response.id
        assert upstream.requests[-1]["method"] == "GET"


@pytest.mark.parametrize("api_version", ["2025-03-01-preview", "v1"])
async def test_azure_openai_speaks_responses_under_openai(
    gateway: Gateway, upstream: Upstream, api_version: str
) -> None:
    async with client(gateway, azure_headers(upstream, api_version), key="az-key") as c:
        response = await c.responses.create(model="gpt-4o", input="native on azure")
    assert response.output_text == "Mock reply to: native on azure"
    record = upstream.requests[-1]
    expected = "/openai/v1/responses" if api_version == "v1" else "/openai/responses"
    assert (record["path"], record["headers"]["api-key"]) == (expected, "az-key")
    assert ("api-version=" in record["query"]) == (api_version != "v1")


@pytest.mark.parametrize(("first", "second"), [("openai", "anthropic"), ("anthropic", "openai")])
async def test_fallback_across_forms_answers_a_response_every_time(
    gateway: Gateway, upstream: Upstream, first: str, second: str
) -> None:
    config = json.dumps(
        {
            "strategy": {"mode": "fallback"},
            "targets": [
                # A host where the mock has no route: a 404 whatever the form.
                {"provider": first, "api_key": "sk-1", "custom_host": upstream.url + "/nowhere"},
                {"provider": second, "api_key": "sk-2", "custom_host": upstream.url},
            ],
        }
    )
    async with client(gateway, {"x-portkey-config": config}) as c:
        raw = await c.responses.with_raw_response.create(model="claude-mock-1", input="fall back")
        response = raw.parse()
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert raw.headers["x-portkey-provider"] == second
    assert response.object == "response" and response.status == "completed"
    assert response.output_text == "Mock reply to: fall back"


# ---- other stages, stores ----------------------------------------------------------------------


async def test_a_cached_chat_answer_is_a_fresh_response(gateway: Gateway, upstream: Upstream) -> None:
    config = json.dumps(
        {"provider": "groq", "api_key": "k", "custom_host": upstream.url, "cache": {"mode": "simple"}}
    )
    async with client(gateway, {"x-portkey-config": config}) as c:
        miss = await c.responses.with_raw_response.create(model="m", input="cache me")
        await gateway.app.shared.guard.drain()
        hit = await c.responses.with_raw_response.create(model="m", input="cache me")
    assert (miss.headers["x-portkey-cache-status"], hit.headers["x-portkey-cache-status"]) == ("MISS", "HIT")
    assert len(upstream.requests) == 1
    assert hit.parse().output_text == miss.parse().output_text and hit.parse().id != miss.parse().id


async def test_stored_responses_in_redis_are_shared_by_gateways(
    make_gateway: Any, upstream: Upstream, redis_server: RedisProcess
) -> None:
    one, two = await make_gateway(redis_url=redis_server.url), await make_gateway(redis_url=redis_server.url)
    async with (
        client(one, headers_for("groq", upstream)) as a,
        client(two, headers_for("groq", upstream)) as b,
    ):
        first = await a.responses.create(model="m", input="remember the number 7")
        assert (await b.responses.retrieve(first.id)).output_text == first.output_text
        await b.responses.create(model="m", input="which number?", previous_response_id=first.id)
    assert "remember the number 7" in sent(upstream)


async def test_a_response_is_its_gateway_keys_own(
    make_gateway: Any, upstream: Upstream, tmp_path: Path
) -> None:
    gateway = await make_gateway(data_dir=str(tmp_path / "data"), admin_token=ADMIN)
    keys = []
    for name in ("team-a", "team-b"):
        resp = await gateway.post("/admin/keys", {"name": name}, headers={"Authorization": f"Bearer {ADMIN}"})
        keys.append((await resp.json())["key"])
    target = {**headers_for("groq", upstream), "Authorization": "Bearer sk-provider"}
    async with (
        client(gateway, {**target, "x-portkey-api-key": keys[0]}) as a,
        client(gateway, {**target, "x-portkey-api-key": keys[1]}) as b,
        client(gateway, target) as nobody,
    ):
        mine = await a.responses.create(model="m", input="private")
        assert (await a.responses.retrieve(mine.id)).id == mine.id
        with pytest.raises(openai.NotFoundError):
            await b.responses.retrieve(mine.id)
        with pytest.raises(openai.BadRequestError):
            await b.responses.create(model="m", input="x", previous_response_id=mine.id)
        with pytest.raises(openai.AuthenticationError):
            await nobody.responses.retrieve(mine.id)
