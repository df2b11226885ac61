"""Guardrails on the ingress formats, through the official SDKs: Anthropic's Messages (the
``anthropic`` SDK) and OpenAI's Responses (the ``openai`` SDK), each to a target that speaks the
format (the request and answer relayed) and to one reached through the chat pivot. Either way the
hooks judge the request and the answer in the client's format, a transformed request is what the
upstream gets, and the answer carries ``hook_results``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.conftest import Gateway, Upstream
from tests.guardrails.conftest import hook_results
from tests.support.sse import named_events

CARD = r"\b(?:\d[ -]?){13,16}\b"
NO_CARDS = {"deny": True, "default.regexMatch": {"rule": CARD, "not": True}}
#: The mock answers "Mock reply to: <the last user text>": more than three words.
SHORT = {"default.wordCount": {"minWords": 1, "maxWords": 3}}
EMAIL = {"default.regexReplace": {"rule": r"[\w.]+@[\w.]+", "redactText": "[EMAIL]"}}
#: A provider that speaks the format (relayed), and one reached through the chat pivot.
MESSAGES_PROVIDERS = ["anthropic", "openai"]
RESPONSES_PROVIDERS = ["openai", "anthropic"]


def target(upstream: Upstream, provider: str, **hooks: Any) -> dict[str, Any]:
    return {"provider": provider, "api_key": "sk-guarded", "custom_host": upstream.url, **hooks}


def headers(config: dict[str, Any]) -> dict[str, str]:
    """The config, in non-strict mode (the ``hook_results`` events of a stream)."""
    return {"x-portkey-config": json.dumps(config), "x-portkey-strict-open-ai-compliance": "false"}


def claude(gateway: Gateway, config: dict[str, Any]) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key="sk-client", max_retries=0, default_headers=headers(config)
    )


def gpt(gateway: Gateway, config: dict[str, Any]) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key="sk-client", max_retries=0, default_headers=headers(config)
    )


def message(text: str) -> dict[str, Any]:
    return {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}


def last_user_text(sent: dict[str, Any]) -> str:
    """The last user text of a request the mock got, in Messages, chat or Responses form."""
    if "input" in sent:
        item = sent["input"]
        return item if isinstance(item, str) else str(item[-1]["content"])
    content = sent["messages"][-1]["content"]
    return content if isinstance(content, str) else content[-1]["text"]


def redacted_and_judged(upstream: Upstream, body: dict[str, Any]) -> None:
    """The upstream got the request as the input mutator redacted it, and the output guardrail
    judged the answer's text (the mock's reply to it) and failed it."""
    assert last_user_text(upstream.bodies()[0]) == "write to [EMAIL]"
    before, after = hook_results(body)
    assert before[0]["transformed"] is True
    data = after[0]["checks"][0]["data"]
    assert after[0]["verdict"] is False and data["wordCount"] == 6
    assert data["textExcerpt"] == "Mock reply to: write to [EMAIL]"


@pytest.mark.parametrize("provider", MESSAGES_PROVIDERS)
async def test_messages_denied_before_the_call_is_a_446_with_portkeys_body(
    gateway: Gateway, upstream: Upstream, provider: str
) -> None:
    async with claude(gateway, target(upstream, provider, input_guardrails=[NO_CARDS])) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(**message("card 4111 1111 1111 1111"))
    assert info.value.status_code == 446
    body = info.value.response.json()
    assert body["error"]["type"] == "hooks_failed"
    before, _ = hook_results(body)
    assert before[0]["verdict"] is False and before[0]["checks"][0]["data"]["textExcerpt"].startswith("card")
    assert upstream.requests == []


@pytest.mark.parametrize("provider", MESSAGES_PROVIDERS)
async def test_messages_answer_is_judged_in_anthropics_shape(
    gateway: Gateway, upstream: Upstream, provider: str
) -> None:
    config = target(upstream, provider, input_mutators=[EMAIL], output_guardrails=[SHORT])
    async with claude(gateway, config) as client:
        raw = await client.messages.with_raw_response.create(**message("write to ann@example.com"))
    assert raw.status_code == 246  # the output guardrail failed, without deny
    answer = await raw.parse()
    assert answer.content[0].type == "text"
    assert answer.content[0].text == "Mock reply to: write to [EMAIL]"
    redacted_and_judged(upstream, json.loads(await raw.read()))


@pytest.mark.parametrize("provider", MESSAGES_PROVIDERS)
async def test_messages_denied_after_the_answer_is_a_446(
    gateway: Gateway, upstream: Upstream, provider: str
) -> None:
    config = target(upstream, provider, output_guardrails=[{"deny": True, **SHORT}])
    async with claude(gateway, config) as client:
        with pytest.raises(anthropic.APIStatusError) as info:
            await client.messages.create(**message("hello"))
    assert info.value.status_code == 446
    _, after = hook_results(info.value.response.json())
    assert after[0]["deny"] is True and after[0]["verdict"] is False
    assert len(upstream.requests) == 1


@pytest.mark.parametrize("provider", MESSAGES_PROVIDERS)
async def test_messages_stream_ends_with_the_verdict_event(
    gateway: Gateway, upstream: Upstream, provider: str
) -> None:
    config = target(upstream, provider, output_guardrails=[SHORT])
    async with claude(gateway, config) as client, client.messages.stream(**message("hello there")) as stream:
        text = "".join([piece async for piece in stream.text_stream])
    assert text == "Mock reply to: hello there"
    resp = await gateway.post("/v1/messages", {**message("hello there"), "stream": True}, headers(config))
    events = named_events(await resp.read())
    names = [name for name, _ in events]
    assert names[-2:] == ["message_stop", "hook_results"]
    after = events[-1][1]["hook_results"]["after_request_hooks"]
    assert after[0]["verdict"] is False and after[0]["checks"][0]["data"]["wordCount"] == 5


@pytest.mark.parametrize("provider", MESSAGES_PROVIDERS)
async def test_messages_stream_denied_by_an_output_guardrail_raises_in_the_sdk(
    gateway: Gateway, upstream: Upstream, provider: str
) -> None:
    config = target(upstream, provider, output_guardrails=[{"deny": True, **SHORT}])
    async with claude(gateway, config) as client:
        with pytest.raises(anthropic.APIStatusError, match="guardrail checks"):
            async with client.messages.stream(**message("hello there")) as stream:
                async for _ in stream.text_stream:
                    pass


@pytest.mark.parametrize("provider", RESPONSES_PROVIDERS)
async def test_responses_are_judged_in_their_own_shape(
    gateway: Gateway, upstream: Upstream, provider: str
) -> None:
    config = target(upstream, provider, input_mutators=[EMAIL], output_guardrails=[SHORT])
    async with gpt(gateway, config) as client:
        raw = await client.responses.with_raw_response.create(
            model="gpt-4o-mini", input="write to ann@example.com"
        )
    assert raw.status_code == 246
    assert raw.parse().output_text == "Mock reply to: write to [EMAIL]"
    redacted_and_judged(upstream, json.loads(raw.content))


@pytest.mark.parametrize("provider", RESPONSES_PROVIDERS)
async def test_responses_denied_before_and_after(gateway: Gateway, upstream: Upstream, provider: str) -> None:
    config = target(
        upstream, provider, input_guardrails=[NO_CARDS], output_guardrails=[{"deny": True, **SHORT}]
    )
    async with gpt(gateway, config) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.responses.create(model="gpt-4o-mini", input="card 4111 1111 1111 1111")
        assert info.value.status_code == 446 and upstream.requests == []
        with pytest.raises(openai.APIStatusError) as info:
            await client.responses.create(model="gpt-4o-mini", input="hello there")
    assert info.value.status_code == 446
    _, after = hook_results(info.value.response.json())
    assert after[0]["deny"] is True and len(upstream.requests) == 1


@pytest.mark.parametrize("provider", RESPONSES_PROVIDERS)
async def test_responses_stream_ends_with_the_verdict_event(
    gateway: Gateway, upstream: Upstream, provider: str
) -> None:
    config = target(upstream, provider, output_guardrails=[SHORT])
    async with gpt(gateway, config) as client:
        stream = await client.responses.create(model="gpt-4o-mini", input="hello there", stream=True)
        kinds = [getattr(event, "type", None) async for event in stream]
    assert "response.completed" in kinds
    resp = await gateway.post(
        "/v1/responses",
        {"model": "gpt-4o-mini", "input": "hello there", "stream": True},
        headers(config),
    )
    events = named_events(await resp.read())
    assert events[-1][0] == "hook_results" and events[-2][0] == "response.completed"
    after = events[-1][1]["hook_results"]["after_request_hooks"]
    assert after[0]["checks"][0]["data"]["wordCount"] == 5


async def test_count_tokens_runs_no_hooks(gateway: Gateway, upstream: Upstream) -> None:
    config = target(upstream, "openai", input_guardrails=[NO_CARDS])
    async with claude(gateway, config) as client:
        count = await client.messages.count_tokens(
            model="claude-sonnet-4-5", messages=[{"role": "user", "content": "card 4111 1111 1111 1111"}]
        )
    assert count.input_tokens > 0


async def test_a_native_answer_read_whole_is_still_charged_to_its_budget(
    make_gateway: Any, upstream: Upstream, tmp_path: Path
) -> None:
    """Judged whole, a relayed answer is no longer seen by the limits stage's watcher: its usage
    is charged from the body instead."""
    gateway = await make_gateway(data_dir=str(tmp_path), admin_token="admin-secret")
    admin = {"Authorization": "Bearer admin-secret"}
    resp = await gateway.post(
        "/admin/virtual-keys",
        {"provider": "anthropic", "secret": "s", "custom_host": upstream.url, "limits": {"budget_tokens": 5}},
        admin,
    )
    slug = (await resp.json())["slug"]
    config = {"virtual_key": slug, "output_guardrails": [SHORT]}
    async with claude(gateway, config) as client:
        raw = await client.messages.with_raw_response.create(**message("hello there"))
        assert raw.status_code == 246
        usage = (await raw.parse()).usage
        await gateway.app.shared.guard.drain()
        charged = await (await gateway.get(f"/admin/virtual-keys/{slug}/usage", admin)).json()
        assert charged["tokens"] == usage.input_tokens + usage.output_tokens
        with pytest.raises(anthropic.RateLimitError):
            await client.messages.create(**message("hello there"))
