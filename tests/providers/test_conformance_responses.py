"""The conformance suite's capabilities through OpenAI's Responses API (``POST /v1/responses``).

The same provider table as ``test_conformance.py`` (tests/providers/conformance.py), driven by
the official ``openai`` SDK's ``client.responses``: each case asserts what reached the mock in
the provider's own wire format and what the client got back as a Response or Responses' events.
``openai`` and ``azure-openai`` take the Responses API natively (the request reaches them as the
client sent it); every other provider is reached through the chat pivot.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI
from openai.types.responses import Response, ResponseFunctionToolCall

from tests.conftest import Gateway, Upstream
from tests.providers.conformance import Provider, ingress_cases, received
from tests.providers.test_conformance import PIXEL, strings
from tests.providers.test_conformance_messages import PDF
from tests.support.sse import named_events

PROMPT = "conformance check one two"
#: Providers that take the Responses API as the client sent it, and the path it reaches them on.
NATIVE = {"openai": "/v1/responses", "azure-openai": "/openai/responses"}
TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look a thing up",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
        "strict": False,
    }
]

_NEVER_STOPS = "the mock's OpenAI chat format never stops early (for length): nothing to map"
_NO_REASONING_TEXT = (
    "{}'s chat API gives no reasoning text to return as a reasoning item (the request's "
    "reasoning.effort is sent as reasoning_effort)"
)
_CLAUDE_THINKS_BY_CONFIG = (
    "Claude thinks when asked through a config's override_params (docs/responses.md), "
    "not from reasoning.effort"
)

#: (provider id, capability) → why the provider's API (or its mock) has nothing to check there.
LACKS: dict[tuple[str, str], str] = {
    **{(p, "length"): _NEVER_STOPS for p in ("groq", "mistral-ai")},
    **{(p, "reasoning"): _NO_REASONING_TEXT.format(p) for p in ("groq", "mistral-ai", "cohere")},
    **{(p, "reasoning"): _CLAUDE_THINKS_BY_CONFIG for p in ("anthropic", "vertex-ai-claude", "bedrock")},
    **{
        (p, "namespace"): "reaches the provider as sent (the mock's Responses API calls no namespaced tool)"
        for p in NATIVE
    },
    ("cohere", "files"): "Cohere v2 chat takes no PDF (its documents are RAG snippets: "
    "docs.cohere.com/reference/chat); the mapping drops file parts",
}

_GEMINI_NO_THOUGHTS = (
    "reasoning.effort reaches Gemini as a thinkingBudget (Google's OpenAI-compatibility table) but "
    "includeThoughts is never asked, so Gemini returns no thought summary for the reasoning item "
    "(ai.google.dev/gemini-api/docs/thinking#summaries); reasoning.summary should ask for it"
)
#: (provider id, capability) → a defect found here. Each becomes ``xfail(strict=True)``.
FINDINGS: dict[tuple[str, str], str] = {
    **{(p, "reasoning"): _GEMINI_NO_THOUGHTS for p in ("google", "vertex-ai-gemini")},
}


def cases(capability: str, variants: list[Any] | None = None) -> list[Any]:
    """The provider table as params for one Responses capability (crossed with ``variants``)."""
    return ingress_cases(capability, variants, LACKS, FINDINGS)


@pytest.fixture
async def client(gateway: Gateway, upstream: Upstream, provider: Provider) -> AsyncIterator[AsyncOpenAI]:
    async with provider.client(gateway, upstream) as sdk:
        yield sdk


def reached(upstream: Upstream, provider: Provider, operation: str = "chat") -> dict[str, Any]:
    """The one request the provider got, on its own path with its own credential: the
    Responses request itself for a native provider, its chat API's otherwise."""
    if provider.id not in NATIVE:
        return received(upstream, provider, operation, provider.chat_model)
    [record] = upstream.requests
    assert record["path"] == NATIVE[provider.id]
    header, expected = provider.auth
    assert record["headers"][header] == expected
    body: dict[str, Any] = json.loads(record["body"])
    return body


def text_sent(provider: Provider, body: dict[str, Any]) -> str:
    """The user's last text as the provider's format carries it."""
    if provider.id in NATIVE:
        content = body["input"] if isinstance(body["input"], str) else body["input"][-1]["content"]
        return content if isinstance(content, str) else " ".join(p.get("text", "") for p in content)
    return provider.text(body)


def tools_sent(provider: Provider, body: dict[str, Any]) -> list[str]:
    """The names of the tools offered, as the provider's format carries them."""
    if provider.id in NATIVE:
        return [t["name"] for t in body["tools"]]
    return provider.tools(body)


def check_events(events: list[tuple[str, Any]]) -> None:
    """Responses' event grammar (platform.openai.com/docs/api-reference/responses-streaming):
    each event named by its type and numbered from 0; ``response.created`` and
    ``response.in_progress`` first; output items opened and closed in order; and last
    ``response.completed`` or ``response.incomplete`` (``error`` then ``response.failed`` for a
    failure midway)."""
    names = [name for name, _ in events]
    assert all(data["type"] == name for name, data in events), names
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert names[:2] == ["response.created", "response.in_progress"], names
    assert names[-1] in ("response.completed", "response.incomplete", "response.failed"), names
    if names[-1] == "response.failed":
        assert names[-2] == "error", names
    added = [d["output_index"] for n, d in events if n == "response.output_item.added"]
    done = [d["output_index"] for n, d in events if n == "response.output_item.done"]
    assert added == list(range(len(added))), names
    assert names[-1] == "response.failed" or done == added, names


async def wire_events(
    gateway: Gateway, upstream: Upstream, provider: Provider, body: dict[str, Any]
) -> list[tuple[str, Any]]:
    """A streamed answer as it came over the wire, checked against the grammar."""
    resp = await gateway.post("/v1/responses", {**body, "stream": True}, provider.raw_headers(upstream))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = named_events(await resp.read())
    check_events(events)
    return events


def calls(response: Response) -> list[ResponseFunctionToolCall]:
    return [item for item in response.output if isinstance(item, ResponseFunctionToolCall)]


# ---- create and stream --------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("responses"))
async def test_create(upstream: Upstream, provider: Provider, client: AsyncOpenAI) -> None:
    request: dict[str, Any] = {
        "model": provider.chat_model,
        "input": PROMPT,
        "instructions": "Answer in haiku.",
        "max_output_tokens": 100,
    }
    raw = await client.responses.with_raw_response.create(**request)
    assert raw.headers["x-portkey-provider"] == provider.name
    response = raw.parse()
    sent = reached(upstream, provider)
    if provider.id in NATIVE:
        assert sent == request  # as the client sent it
    else:
        assert provider.text(sent) == PROMPT and "Answer in haiku." in strings(sent)
    assert response.object == "response" and response.status == "completed"
    assert response.id.startswith("resp_") and PROMPT in response.output_text
    assert response.instructions == "Answer in haiku." and response.max_output_tokens == 100
    [message] = [item for item in response.output if item.type == "message"]
    assert message.role == "assistant" and message.content[0].type == "output_text"
    usage = response.usage
    assert usage is not None and usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


@pytest.mark.parametrize("provider", cases("stream"))
async def test_stream_matches_create(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: AsyncOpenAI
) -> None:
    whole = await client.responses.create(model=provider.chat_model, input=PROMPT)
    upstream.requests.clear()
    async with client.responses.stream(model=provider.chat_model, input=PROMPT) as stream:
        deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert text_sent(provider, reached(upstream, provider, "stream")) == PROMPT
    assert len(deltas) > 1  # streamed in pieces, not one block at the end
    assert "".join(deltas) == final.output_text == whole.output_text
    assert final.status == "completed" and final.usage is not None and final.usage.output_tokens > 0
    # The SDK's raw event stream, then the wire: Responses' events in their order.
    upstream.requests.clear()
    events = await client.responses.create(model=provider.chat_model, input=PROMPT, stream=True)
    kinds = [event.type async for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    upstream.requests.clear()
    names = [
        n
        for n, _ in await wire_events(
            gateway, upstream, provider, {"model": provider.chat_model, "input": PROMPT}
        )
    ]
    assert names.count("response.output_text.done") == 1


@pytest.mark.parametrize("provider", cases("length"))
async def test_max_output_tokens_is_incomplete(
    upstream: Upstream, provider: Provider, client: AsyncOpenAI
) -> None:
    prompt = "one two three four five six seven eight" + provider.length_marker
    response = await client.responses.create(model=provider.chat_model, input=prompt, max_output_tokens=3)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    upstream.requests.clear()
    async with client.responses.stream(
        model=provider.chat_model, input=prompt, max_output_tokens=3
    ) as stream:
        events = [event async for event in stream]
    # (the SDK's get_final_response wants response.completed: the last event carries it here)
    last = events[-1]
    assert last.type == "response.incomplete" and last.response.status == "incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"


# ---- tools --------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("tools"))
async def test_function_call_round_trip(upstream: Upstream, provider: Provider, client: AsyncOpenAI) -> None:
    """A call, then the next turn sent whole by the client (Codex's way: no stored state)."""
    question = "find the weather [mock tool_call=true]"
    first = await client.responses.create(model=provider.chat_model, input=question, tools=TOOLS, store=False)
    assert tools_sent(provider, reached(upstream, provider)) == ["lookup"]
    [call] = calls(first)
    assert call.name == "lookup" and call.call_id
    assert isinstance(json.loads(call.arguments).get("query"), str)
    upstream.requests.clear()
    second = await client.responses.create(
        model=provider.chat_model,
        tools=TOOLS,
        store=False,
        input=[
            {"role": "user", "content": "find the weather"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny and 21C"},
        ],
    )
    sent = reached(upstream, provider)
    assert tools_sent(provider, sent) == ["lookup"] and "sunny and 21C" in " ".join(strings(sent))
    assert second.status == "completed" and second.output_text and not calls(second)


@pytest.mark.parametrize("provider", cases("stream_tools"))
async def test_stream_function_call(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: AsyncOpenAI
) -> None:
    request: dict[str, Any] = {
        "model": provider.chat_model,
        "input": "find the weather [mock tool_call=true]",
        "tools": TOOLS,
    }
    async with client.responses.stream(**request) as stream:
        final = await stream.get_final_response()
    [call] = calls(final)
    upstream.requests.clear()
    [same] = calls(await client.responses.create(**request))
    assert call.name == same.name == "lookup" and json.loads(call.arguments) == json.loads(same.arguments)
    upstream.requests.clear()
    events = await wire_events(gateway, upstream, provider, request)
    deltas = "".join(d["delta"] for n, d in events if n == "response.function_call_arguments.delta")
    [done] = [d for n, d in events if n == "response.function_call_arguments.done"]
    assert json.loads(deltas) == json.loads(done["arguments"]) == json.loads(call.arguments)


@pytest.mark.parametrize("provider", cases("namespace"))
async def test_namespaced_tools(upstream: Upstream, provider: Provider, client: AsyncOpenAI) -> None:
    """A namespace's tools (Codex's sub-agent tools come so) are offered by their own names, and
    a call of one names its namespace, whole and streamed."""
    tools: Any = [{"type": "namespace", "name": "weather", "description": "Weather tools", "tools": TOOLS}]
    request: dict[str, Any] = {
        "model": provider.chat_model,
        "input": "find the weather [mock tool_call=true]",
    }
    whole = await client.responses.create(**request, tools=tools)
    assert tools_sent(provider, reached(upstream, provider)) == ["lookup"]
    async with client.responses.stream(**request, tools=tools) as stream:
        final = await stream.get_final_response()
    for response in (whole, final):
        [call] = calls(response)
        assert (call.name, call.namespace) == ("lookup", "weather")
    assert whole.tools[0].type == "namespace"  # echoed as it was asked
    # A tool outside any namespace is called without one: the field is left out.
    raw = await client.responses.with_raw_response.create(**request, tools=TOOLS)
    [plain] = calls(raw.parse())
    assert plain.namespace is None and b'"namespace"' not in raw.content


@pytest.mark.parametrize("provider", cases("previous_response_id"))
async def test_previous_response_id_continues(
    upstream: Upstream, provider: Provider, client: AsyncOpenAI
) -> None:
    """Kept by the gateway for a translated provider, by the provider for a native one: either
    way the provider is sent (or holds) the conversation so far."""
    first = await client.responses.create(model=provider.chat_model, input="remember the number seven")
    upstream.requests.clear()
    second = await client.responses.create(
        model=provider.chat_model, input="which number?", previous_response_id=first.id
    )
    sent = reached(upstream, provider)
    if provider.id in NATIVE:
        assert sent["previous_response_id"] == first.id
    else:
        assert "remember the number seven" in " ".join(strings(sent))
    assert second.previous_response_id == first.id and second.status == "completed"


# ---- images and files ---------------------------------------------------------------------------


@pytest.mark.parametrize(("provider", "kind"), [*cases("vision", ["image"]), *cases("files", ["file"])])
async def test_images_and_files_reach_upstream(
    upstream: Upstream, provider: Provider, client: AsyncOpenAI, kind: str
) -> None:
    part: dict[str, Any] = {
        "type": "input_image",
        "image_url": f"data:image/png;base64,{PIXEL}",
        "detail": "auto",
    }
    if kind == "file":
        part = {"type": "input_file", "filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}
    response = await client.responses.create(
        model=provider.chat_model,
        input=[{"role": "user", "content": [part, {"type": "input_text", "text": "what is this"}]}],
    )
    sent = reached(upstream, provider)
    if provider.id in NATIVE:
        assert sent["input"][0]["content"][0] == part
    elif kind == "image":
        assert provider.image(sent) == f"data:image/png;base64,{PIXEL}"
    else:
        assert any(s.endswith(PDF) for s in strings(sent)), strings(sent)
    assert text_sent(provider, sent).strip() == "what is this"
    assert response.output_text


# ---- reasoning ----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("reasoning"))
async def test_reasoning(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: AsyncOpenAI
) -> None:
    """``reasoning.effort`` asked of a provider that thinks comes back as a reasoning item, first."""
    request: dict[str, Any] = {
        "model": provider.chat_model,
        "input": PROMPT,
        "reasoning": {"effort": "high", "summary": "auto"},
    }
    response = await client.responses.create(**request)
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "message"], kinds
    reasoning = response.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary and reasoning.summary[0].text
    upstream.requests.clear()
    events = await wire_events(gateway, upstream, provider, request)
    items = [d["item"]["type"] for n, d in events if n == "response.output_item.added"]
    assert items == ["reasoning", "message"]
    assert any(n == "response.reasoning_summary_text.delta" for n, _ in events)


# ---- errors -------------------------------------------------------------------------------------

#: Status → the openai SDK's error class.
ERRORS: dict[int, type[openai.APIStatusError]] = {
    400: openai.BadRequestError,
    401: openai.AuthenticationError,
    429: openai.RateLimitError,
    500: openai.InternalServerError,
}


@pytest.mark.parametrize(("provider", "status"), cases("errors", list(ERRORS)))
async def test_provider_error_keeps_its_status(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: AsyncOpenAI, status: int
) -> None:
    with pytest.raises(ERRORS[status]) as caught:
        await client.responses.create(model=provider.chat_model, input=f"fail please [mock status={status}]")
    reached(upstream, provider)
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict) and f"mock failure {status}" in body["message"]
    # A streamed request refused upstream is refused the same way: a JSON error, not a stream.
    upstream.requests.clear()
    resp = await gateway.post(
        "/v1/responses",
        {"model": provider.chat_model, "input": f"again [mock status={status}]", "stream": True},
        provider.raw_headers(upstream),
    )
    reached(upstream, provider, "stream")
    assert resp.status == status and resp.content_type == "application/json"
    assert f"mock failure {status}" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize(
    ("provider", "fail"), cases("mid_stream_error", ["provider_error", "drop_mid_stream"])
)
async def test_mid_stream_failure_ends_with_response_failed(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: AsyncOpenAI, fail: str
) -> None:
    """The upstream fails halfway (in its own format, or by dropping the connection): the client
    gets the text so far, then ``error`` and ``response.failed``."""
    directive = provider.mid_stream_fail if fail == "provider_error" else fail
    if provider.id in NATIVE and fail == "provider_error":
        directive = "error_mid_stream"  # the Responses API's own failure midway
    prompt = f"break this long answer into many separate pieces now [mock fail={directive} chunks=6]"
    events = await wire_events(gateway, upstream, provider, {"model": provider.chat_model, "input": prompt})
    assert [n for n, _ in events][-2:] == ["error", "response.failed"]
    before = "".join(d["delta"] for n, d in events if n == "response.output_text.delta")
    assert before.startswith("Mock reply"), before
    error, failed = events[-2][1], events[-1][1]["response"]
    assert error["message"] and failed["status"] == "failed"
    assert failed["id"] == events[0][1]["response"]["id"] and failed["error"]["message"] == error["message"]
