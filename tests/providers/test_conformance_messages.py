"""The conformance suite's capabilities through Anthropic's Messages API (``POST /v1/messages``).

The same provider table as ``test_conformance.py`` (tests/providers/conformance.py), driven by
the official ``anthropic`` SDK instead of ``openai``: each case asserts what reached the mock in
the provider's own wire format (path, credential, the field carrying the user's text, image,
document, tools, system prompt, stop sequences, thinking) and what the client got back in
Anthropic's shape. ``anthropic`` and Claude on ``vertex-ai`` take Messages natively; every other
provider is reached through the chat pivot.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import anthropic
import pytest
from anthropic.types import Message, MessageParam, TextBlock, ThinkingBlock, ToolUseBlock

from tests.conftest import Gateway, Upstream
from tests.providers.conformance import VERTEX_ROOT, Provider, ingress_cases, received
from tests.providers.test_conformance import PIXEL, strings
from tests.support.messages import anthropic_client, check_event_order
from tests.support.sse import named_events

PROMPT = "conformance check one two"
#: Providers that take Messages as the client sent them.
NATIVE = frozenset({"anthropic", "vertex-ai-claude"})
TOOLS: list[Any] = [
    {
        "name": "lookup",
        "description": "Look a thing up",
        "input_schema": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    }
]
#: The smallest PDF readers open: a header, an empty catalog and a trailer.
PDF = base64.b64encode(
    b"%PDF-1.4\n1 0 obj <</Type /Catalog>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
).decode()

_OPENAI_FORMAT = ("openai", "groq", "azure-openai", "mistral-ai")
_NEVER_STOPS = "the mock's {} format never stops early (for length or a stop sequence): nothing to map"
_NO_REASONING_TEXT = (
    "{}'s chat API gives no reasoning text to return as thinking blocks (the request's thinking is "
    "sent as reasoning_effort)"
)

#: (provider id, capability) → why the provider's API (or its mock) has nothing to check there.
LACKS: dict[tuple[str, str], str] = {
    **{(p, "length"): _NEVER_STOPS.format("OpenAI") for p in _OPENAI_FORMAT},
    **{(p, "stop_sequences"): _NEVER_STOPS.format("OpenAI") for p in _OPENAI_FORMAT},
    **{(p, "stop_sequences"): _NEVER_STOPS.format("Gemini") for p in ("google", "vertex-ai-gemini")},
    **{(p, "thinking"): _NO_REASONING_TEXT.format(p) for p in (*_OPENAI_FORMAT, "cohere")},
    ("cohere", "tool_choice"): "Cohere v2 tool_choice is only REQUIRED or NONE, it cannot name a tool "
    "(docs.cohere.com/reference/chat)",
    ("cohere", "documents"): "Cohere v2 chat takes no PDF (its documents are RAG snippets: "
    "docs.cohere.com/reference/chat); the mapping drops file parts",
}
#: (provider id, capability) → a defect found here. Each becomes ``xfail(strict=True)``.
FINDINGS: dict[tuple[str, str], str] = {}


def cases(capability: str, variants: list[Any] | None = None) -> list[Any]:
    """The provider table as params for one Messages capability (crossed with ``variants``)."""
    return ingress_cases(capability, variants, LACKS, FINDINGS)


@pytest.fixture
async def client(
    gateway: Gateway, upstream: Upstream, provider: Provider
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The anthropic SDK pointed at the gateway with the provider's headers; its key goes in
    ``x-api-key``, which the gateway takes as the provider's key whatever the provider."""
    async with anthropic_client(gateway.url, provider.headers(upstream), provider.api_key) as sdk:
        yield sdk


def user(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


def text_of(message: Message) -> str:
    return "".join(b.text for b in message.content if isinstance(b, TextBlock))


def next_turn(first: Message, result: str) -> list[MessageParam]:
    """A tool loop's next request: the question, the assistant's turn as it came back (thinking
    and all), and the result of the one tool it called."""
    [call] = [b for b in first.content if isinstance(b, ToolUseBlock)]
    return [
        {"role": "user", "content": "find the weather"},
        {"role": "assistant", "content": cast(Any, [b.model_dump(exclude_none=True) for b in first.content])},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": result}]},
    ]


def raw_headers(provider: Provider, upstream: Upstream) -> dict[str, str]:
    """What the anthropic SDK sends, for requests made over raw HTTP."""
    return {**provider.headers(upstream), "x-api-key": provider.api_key, "anthropic-version": "2023-06-01"}


async def wire_events(
    gateway: Gateway, upstream: Upstream, provider: Provider, body: dict[str, Any]
) -> list[tuple[str, Any]]:
    """A streamed answer as it came over the wire, each event checked against the grammar."""
    resp = await gateway.post("/v1/messages", {**body, "stream": True}, raw_headers(provider, upstream))
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    events = named_events(await resp.read())
    check_event_order(events)
    return events


# ---- create -------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("messages"))
async def test_create(upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic) -> None:
    raw = await client.messages.with_raw_response.create(
        model=provider.chat_model, max_tokens=100, messages=user(PROMPT)
    )
    assert raw.headers["x-portkey-provider"] == provider.name
    assert raw.headers["content-type"].startswith("application/json")
    message = await raw.parse()
    sent = received(upstream, provider, "chat", provider.chat_model)
    assert provider.text(sent) == PROMPT
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    assert [b.type for b in message.content] == ["text"]
    assert PROMPT in text_of(message)
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    if provider.id not in NATIVE:
        assert message.model == provider.chat_model


@pytest.mark.parametrize(("provider", "form"), cases("system", ["string", "blocks"]))
async def test_system_reaches_upstream(
    upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic, form: str
) -> None:
    """``system`` as a string or as text blocks reaches the provider wherever it keeps instructions."""
    system: Any = "Answer in haiku."
    if form == "blocks":
        system = [{"type": "text", "text": "Answer in haiku."}, {"type": "text", "text": "Be kind."}]
    message = await client.messages.create(
        model=provider.chat_model, max_tokens=100, system=system, messages=user(PROMPT)
    )
    sent = received(upstream, provider, "chat", provider.chat_model)
    assert provider.text(sent) == PROMPT
    said = " ".join(strings(sent))
    assert "Answer in haiku." in said
    if form == "blocks":
        assert "Be kind." in said
    assert PROMPT in text_of(message)


# ---- stream -------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("stream"))
async def test_stream_matches_create(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic
) -> None:
    whole = await client.messages.create(model=provider.chat_model, max_tokens=100, messages=user(PROMPT))
    upstream.requests.clear()
    async with client.messages.stream(
        model=provider.chat_model, max_tokens=100, messages=user(PROMPT)
    ) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert provider.text(received(upstream, provider, "stream", provider.chat_model)) == PROMPT
    assert len(texts) > 1  # streamed in pieces, not one block at the end
    assert "".join(texts) == text_of(whole) == text_of(final)
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    # On the wire: Anthropic's events in Anthropic's order, each named as its type.
    upstream.requests.clear()
    request = {"model": provider.chat_model, "max_tokens": 100, "messages": user(PROMPT)}
    names = [name for name, _ in await wire_events(gateway, upstream, provider, request)]
    assert names[-2:] == ["message_delta", "message_stop"]
    assert names.count("message_start") == 1


@pytest.mark.parametrize("provider", cases("length"))
async def test_max_tokens_stop(provider: Provider, client: anthropic.AsyncAnthropic) -> None:
    """The provider's own length stop becomes ``max_tokens``, whole and streamed."""
    prompt = "count one two three four five six seven" + provider.length_marker
    whole = await client.messages.create(model=provider.chat_model, max_tokens=3, messages=user(prompt))
    assert whole.stop_reason == "max_tokens"
    async with client.messages.stream(
        model=provider.chat_model, max_tokens=3, messages=user(prompt)
    ) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "max_tokens"


@pytest.mark.parametrize("provider", cases("stop_sequences"))
async def test_stop_sequences(
    upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic
) -> None:
    """The stop sequences reach the provider, and the one that ended the answer is named."""
    prompt = "alpha beta gamma delta"
    message = await client.messages.create(
        model=provider.chat_model, max_tokens=100, stop_sequences=["gamma"], messages=user(prompt)
    )
    sent = received(upstream, provider, "chat", provider.chat_model)
    assert "gamma" in strings(sent)
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "gamma")
    assert "gamma" not in text_of(message) and text_of(message).endswith("beta ")
    async with client.messages.stream(
        model=provider.chat_model, max_tokens=100, stop_sequences=["gamma"], messages=user(prompt)
    ) as stream:
        final = await stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "gamma")


# ---- tools --------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("tools"))
async def test_tool_use(upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=provider.chat_model,
        max_tokens=100,
        tools=TOOLS,
        messages=user("find the weather [mock tool_call=true]"),
    )
    assert provider.tools(received(upstream, provider, "chat", provider.chat_model)) == ["lookup"]
    assert message.stop_reason == "tool_use"
    [call] = [b for b in message.content if isinstance(b, ToolUseBlock)]
    assert call.id and call.name == "lookup"
    assert isinstance(call.input, dict) and isinstance(call.input.get("query"), str)
    assert message.content[-1] is call


@pytest.mark.parametrize("provider", cases("tool_choice"))
async def test_named_tool_choice(
    upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic
) -> None:
    other: Any = {"name": "other", "input_schema": {"type": "object"}}
    message = await client.messages.create(
        model=provider.chat_model,
        max_tokens=100,
        tools=[*TOOLS, other],
        tool_choice={"type": "tool", "name": "other"},
        messages=user("use the other one [mock tool_call=true]"),
    )
    assert provider.tools(received(upstream, provider, "chat", provider.chat_model)) == ["lookup", "other"]
    [call] = [b for b in message.content if isinstance(b, ToolUseBlock)]
    assert call.name == "other" and message.stop_reason == "tool_use"


@pytest.mark.parametrize("provider", cases("stream_tools"))
async def test_stream_tool_use(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic
) -> None:
    request: dict[str, Any] = {
        "model": provider.chat_model,
        "max_tokens": 100,
        "tools": TOOLS,
        "messages": user("find the weather [mock tool_call=true]"),
    }
    async with client.messages.stream(**request) as stream:
        final = await stream.get_final_message()
    assert provider.tools(received(upstream, provider, "stream", provider.chat_model)) == ["lookup"]
    assert final.stop_reason == "tool_use"
    [call] = [b for b in final.content if isinstance(b, ToolUseBlock)]
    upstream.requests.clear()
    whole = await client.messages.create(**request)
    [same] = [b for b in whole.content if isinstance(b, ToolUseBlock)]
    assert call.name == same.name == "lookup" and call.input == same.input
    upstream.requests.clear()
    events = await wire_events(gateway, upstream, provider, request)
    deltas = [d["delta"] for n, d in events if n == "content_block_delta"]
    assert any(d["type"] == "input_json_delta" for d in deltas)
    [stop] = [d for n, d in events if n == "message_delta"]
    assert stop["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize("provider", cases("tool_result"))
async def test_tool_result_round_trip(
    upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic
) -> None:
    """A tool conversation's second turn (the assistant's tool_use, the user's tool_result) is
    taken by the provider, which checks its own pairing rules, and answered with text."""
    first = await client.messages.create(
        model=provider.chat_model,
        max_tokens=100,
        tools=TOOLS,
        messages=user("find the weather [mock tool_call=true]"),
    )
    upstream.requests.clear()
    answer = await client.messages.create(
        model=provider.chat_model, max_tokens=100, tools=TOOLS, messages=next_turn(first, "sunny and 21C")
    )
    sent = received(upstream, provider, "chat", provider.chat_model)
    assert provider.tools(sent) == ["lookup"]
    assert "sunny and 21C" in " ".join(strings(sent))
    assert answer.stop_reason == "end_turn" and text_of(answer)


# ---- images and documents -----------------------------------------------------------------------


#: Each kind of media block, and how the upstream's format must carry it.
MEDIA: dict[str, tuple[dict[str, Any], Callable[[Provider, dict[str, Any]], bool]]] = {
    "image": (
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        lambda provider, sent: provider.image(sent) == f"data:image/png;base64,{PIXEL}",
    ),
    # Each format carries the PDF's bytes in base64 (a data URL in OpenAI's file part).
    "document": (
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        lambda provider, sent: any(s.endswith(PDF) for s in strings(sent)),
    ),
}


@pytest.mark.parametrize(
    ("provider", "kind"), [*cases("vision", ["image"]), *cases("documents", ["document"])]
)
async def test_images_and_documents_reach_upstream(
    upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic, kind: str
) -> None:
    block, carried = MEDIA[kind]
    message = await client.messages.create(
        model=provider.chat_model,
        max_tokens=100,
        messages=[{"role": "user", "content": [cast(Any, block), {"type": "text", "text": "what is this"}]}],
    )
    sent = received(upstream, provider, "chat", provider.chat_model)
    assert provider.text(sent) == "what is this"
    assert carried(provider, sent), strings(sent)
    assert text_of(message)


# ---- thinking -----------------------------------------------------------------------------------


def _thinking_sent(provider: Provider, body: dict[str, Any]) -> Any:
    """The thinking setting as the provider's format carries it."""
    if provider.id in NATIVE:
        return body["thinking"]
    if provider.id == "bedrock":
        return body["additionalModelRequestFields"]["thinking"]
    return body["generationConfig"]["thinkingConfig"]


@pytest.mark.parametrize("provider", cases("thinking"))
async def test_thinking(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic
) -> None:
    """Extended thinking asked of a provider that has it comes back as thinking blocks, first."""
    request: dict[str, Any] = {
        "model": provider.chat_model,
        "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": user(PROMPT),
    }
    message = await client.messages.create(**request)
    sent = _thinking_sent(provider, received(upstream, provider, "chat", provider.chat_model))
    assert sent in (
        {"type": "enabled", "budget_tokens": 1024},
        {"includeThoughts": True, "thinkingBudget": 1024},
    )
    kinds = [b.type for b in message.content]
    assert kinds == ["thinking", "text"], kinds
    assert isinstance(message.content[0], ThinkingBlock) and message.content[0].thinking
    upstream.requests.clear()
    events = await wire_events(gateway, upstream, provider, request)
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["thinking", "text"]
    assert any(d["delta"]["type"] == "thinking_delta" for n, d in events if n == "content_block_delta")


@pytest.mark.parametrize("provider", cases("thinking"))
async def test_thinking_in_a_tool_loop(
    upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic
) -> None:
    """Claude Code's loop with thinking on: the assistant's signed thinking goes back with its
    tool use and the tool's result (Claude wants it first in that turn, as Bedrock's mock checks)."""
    thinking: Any = {"type": "enabled", "budget_tokens": 1024}
    first = await client.messages.create(
        model=provider.chat_model,
        max_tokens=2048,
        thinking=thinking,
        tools=TOOLS,
        messages=user("find the weather [mock tool_call=true]"),
    )
    assert first.content[0].type == "thinking" and first.stop_reason == "tool_use"
    signature = cast(ThinkingBlock, first.content[0]).signature
    upstream.requests.clear()
    answer = await client.messages.create(
        model=provider.chat_model,
        max_tokens=2048,
        thinking=thinking,
        tools=TOOLS,
        messages=next_turn(first, "sunny"),
    )
    sent = received(upstream, provider, "chat", provider.chat_model)
    if provider.id in NATIVE or provider.id == "bedrock":
        assert signature and signature in strings(sent)
    assert answer.stop_reason == "end_turn" and text_of(answer)


# ---- errors -------------------------------------------------------------------------------------

#: Status → the SDK's error class and Anthropic's error type (https://docs.anthropic.com/en/api/errors).
ERRORS: dict[int, tuple[type[anthropic.APIStatusError], str]] = {
    400: (anthropic.BadRequestError, "invalid_request_error"),
    401: (anthropic.AuthenticationError, "authentication_error"),
    429: (anthropic.RateLimitError, "rate_limit_error"),
    500: (anthropic.InternalServerError, "api_error"),
}


@pytest.mark.parametrize(("provider", "status"), cases("errors", list(ERRORS)))
async def test_provider_error_keeps_status_in_anthropics_shape(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic, status: int
) -> None:
    error_class, error_type = ERRORS[status]
    with pytest.raises(error_class) as caught:
        await client.messages.create(
            model=provider.chat_model, max_tokens=100, messages=user(f"fail please [mock status={status}]")
        )
    received(upstream, provider, "chat", provider.chat_model)
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == error_type
    expected = (
        f"mock failure {status}" if provider.id in NATIVE else f"{provider.name} error: mock failure {status}"
    )
    assert body["error"]["message"] == expected
    # A streamed request refused upstream is refused the same way: a JSON error, not a stream.
    upstream.requests.clear()
    resp = await gateway.post(
        "/v1/messages",
        {
            "model": provider.chat_model,
            "max_tokens": 100,
            "stream": True,
            "messages": user(f"again [mock status={status}]"),
        },
        raw_headers(provider, upstream),
    )
    received(upstream, provider, "stream", provider.chat_model)
    assert resp.status == status and resp.content_type == "application/json"
    data = await resp.json()
    assert data["type"] == "error" and data["error"]["type"] == error_type


@pytest.mark.parametrize(
    ("provider", "fail"), cases("mid_stream_error", ["provider_error", "drop_mid_stream"])
)
async def test_mid_stream_failure_ends_with_an_error_event(
    gateway: Gateway, upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic, fail: str
) -> None:
    """The upstream fails halfway (in its own format, or by dropping the connection): the client
    gets the text so far, then Anthropic's ``error`` event as the last event."""
    directive = provider.mid_stream_fail if fail == "provider_error" else fail
    if provider.id in NATIVE and fail == "provider_error":
        directive = "error_mid_stream"  # Anthropic's own mid-stream failure: an error event
    messages = user(f"break this long answer into many separate pieces now [mock fail={directive} chunks=6]")
    events = await wire_events(
        gateway, upstream, provider, {"model": provider.chat_model, "max_tokens": 100, "messages": messages}
    )
    assert events[-1][0] == "error", [n for n, _ in events]
    error = events[-1][1]["error"]
    assert error["type"] in ("api_error", "overloaded_error") and error["message"]
    before = "".join(d["delta"].get("text", "") for n, d in events if n == "content_block_delta")
    assert before.startswith("Mock reply"), before
    # The SDK raises it, after the text that came before it.
    upstream.requests.clear()
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError):
        async with client.messages.stream(
            model=provider.chat_model, max_tokens=100, messages=messages
        ) as stream:
            async for text in stream.text_stream:
                seen.append(text)
    assert "".join(seen).startswith("Mock reply")


# ---- count_tokens -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", cases("count_tokens"))
async def test_count_tokens(upstream: Upstream, provider: Provider, client: anthropic.AsyncAnthropic) -> None:
    """Counted by the provider where it can count (anthropic, Claude on Vertex AI), else
    estimated by the gateway without a call: never a 404."""
    request: dict[str, Any] = {
        "model": provider.chat_model,
        "system": "You are terse.",
        "messages": user("count these words for me please"),
        "tools": TOOLS,
    }
    counted = await client.messages.count_tokens(**request)
    assert counted.input_tokens > 0
    if provider.id == "anthropic":
        [record] = upstream.requests
        assert record["path"] == "/v1/messages/count_tokens"
        assert json.loads(record["body"]) == request
    elif provider.id == "vertex-ai-claude":
        [record] = upstream.requests
        assert record["path"] == f"{VERTEX_ROOT}/anthropic/models/count-tokens:rawPredict"
        sent = json.loads(record["body"])
        assert sent == {
            **request,
            "model": provider.chat_model.removeprefix("anthropic."),
            "anthropic_version": "vertex-2023-10-16",
        }
    else:
        assert upstream.requests == []
        # The documented estimate: about four characters a token over the request's text.
        assert 10 < counted.input_tokens < 200
