"""The provider table of the conformance suite: how to reach each provider's mock and read what it got.

Each :class:`Provider` says which ``x-portkey-*`` headers point the gateway at the ``upstream``
mock, which models to ask for, which upstream path each capability must hit, and how to read
the user's text and image back out of the body in that provider's own wire format. Findings
(cases that fail for a provider and cannot be fixed in the test setup) are listed once, in
:data:`FINDINGS`, and become strict xfails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from openai import AsyncOpenAI

from fastgate.mock.bedrock_format import MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY
from tests.conftest import Gateway, Upstream

#: Vertex AI test project and region (``x-portkey-vertex-*``), as test_vertex.py uses them.
VERTEX_ROOT = "/v1/projects/proj-1/locations/europe-west4/publishers"
CLAUDE_ON_VERTEX = "claude-sonnet-4@20250514"
BEDROCK_CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"


def _root(upstream: Upstream) -> str:
    return str(upstream.server.make_url("")).rstrip("/")


# ---- how each wire format carries the user's text and image ------------------------------------


def _openai_text(body: dict[str, Any]) -> str:
    """OpenAI chat/completions: the last message's text, or the legacy ``prompt``."""
    if "prompt" in body:
        return str(body["prompt"])
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(p["text"] for p in content if p.get("type") == "text")


def _openai_image(body: dict[str, Any]) -> str:
    """OpenAI (and Cohere v2): an ``image_url`` part carrying the data URL as sent."""
    [part] = [p for p in body["messages"][-1]["content"] if p.get("type") == "image_url"]
    return str(part["image_url"]["url"])


def _anthropic_text(body: dict[str, Any]) -> str:
    """Anthropic Messages: text blocks of the last message (a bare string is allowed too)."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(b["text"] for b in content if b.get("type") == "text")


def _anthropic_image(body: dict[str, Any]) -> str:
    """Anthropic Messages: ``{"type": "image", "source": {"type": "base64", "media_type", "data"}}``
    (https://docs.anthropic.com/en/api/messages, image content block)."""
    [block] = [b for b in body["messages"][-1]["content"] if b.get("type") == "image"]
    source = block["source"]
    assert source["type"] == "base64"
    return f"data:{source['media_type']};base64,{source['data']}"


def _gemini_text(body: dict[str, Any]) -> str:
    """Gemini generateContent: text parts of the last ``contents`` entry."""
    return " ".join(p["text"] for p in body["contents"][-1]["parts"] if "text" in p)


def _gemini_image(body: dict[str, Any]) -> str:
    """Gemini: ``{"inlineData": {"mimeType", "data"}}`` (https://ai.google.dev/api/caching#Blob)."""
    [part] = [p for p in body["contents"][-1]["parts"] if "inlineData" in p]
    blob = part["inlineData"]
    return f"data:{blob['mimeType']};base64,{blob['data']}"


def _bedrock_text(body: dict[str, Any]) -> str:
    """Bedrock Converse: ``text`` content blocks of the last message."""
    return " ".join(b["text"] for b in body["messages"][-1]["content"] if "text" in b)


def _bedrock_image(body: dict[str, Any]) -> str:
    """Bedrock Converse: ``{"image": {"format": "png", "source": {"bytes": <base64>}}}``
    (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ImageBlock.html)."""
    [block] = [b for b in body["messages"][-1]["content"] if "image" in b]
    image = block["image"]
    return f"data:image/{image['format']};base64,{image['source']['bytes']}"


def _cohere_text(body: dict[str, Any]) -> str:
    """Cohere v2 chat: the last message's content, a string or ``text`` parts."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return " ".join(p["text"] for p in content if p.get("type") == "text")


def _openai_tools(body: dict[str, Any]) -> list[str]:
    """OpenAI and Cohere v2: ``tools[].function.name``."""
    return [t["function"]["name"] for t in body["tools"]]


def _anthropic_tools(body: dict[str, Any]) -> list[str]:
    """Anthropic: ``tools[].name`` (https://docs.anthropic.com/en/api/messages, tools)."""
    return [t["name"] for t in body["tools"]]


def _gemini_tools(body: dict[str, Any]) -> list[str]:
    """Gemini: ``tools[].functionDeclarations[].name`` (https://ai.google.dev/api/caching#Tool)."""
    return [d["name"] for t in body["tools"] for d in t.get("functionDeclarations", ())]


def _bedrock_tools(body: dict[str, Any]) -> list[str]:
    """Bedrock Converse: ``toolConfig.tools[].toolSpec.name``."""
    return [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]]


# ---- the table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    id: str
    #: ``x-portkey-provider``: what the gateway answers in ``provider``.
    name: str
    chat_model: str
    headers: Callable[[Upstream], dict[str, str]]
    #: The client's key (the SDK's ``api_key``: ``Authorization: Bearer ...``).
    api_key: str
    #: Upstream path per operation (``chat``, ``stream``, ``embeddings``, ``completions``,
    #: ``completions_stream``), ``{model}`` filled in with the model asked for.
    paths: dict[str, str]
    #: The header that carries the credential upstream, and what its value starts with.
    auth: tuple[str, str]
    text: Callable[[dict[str, Any]], str]
    image: Callable[[dict[str, Any]], str]
    #: The names of the tools offered, read from the provider-format body.
    tools: Callable[[dict[str, Any]], list[str]]
    embed_model: str | None = None
    #: The texts to embed, read from the provider-format embeddings body.
    embed_inputs: Callable[[dict[str, Any]], list[str]] = lambda body: list(body["input"])
    #: A model that embeds several inputs in one call, where ``embed_model`` cannot.
    embed_batch_model: str | None = None
    #: Whether the provider's embeddings answer counts input tokens (usage > 0).
    embed_counts_tokens: bool = True
    #: How to make the mock stop for length: appended to the prompt, with ``max_tokens=3``
    #: (the Anthropic, Bedrock and Cohere mocks cut at ``max_tokens`` words by themselves).
    length_marker: str = ""
    #: How the mock fails a stream halfway in this provider's own format (``[mock fail=...]``).
    mid_stream_fail: str = "error_mid_stream"
    #: Capabilities the provider's real API lacks, with the reason.
    lacks: dict[str, str] = field(default_factory=dict)

    def client(self, gateway: Gateway, upstream: Upstream) -> AsyncOpenAI:
        return AsyncOpenAI(
            api_key=self.api_key,
            base_url=gateway.url + "/v1",
            default_headers=self.headers(upstream),
            max_retries=0,
        )

    def raw_headers(self, upstream: Upstream) -> dict[str, str]:
        """What the SDK sends, for requests made over raw HTTP."""
        return {**self.headers(upstream), "Authorization": f"Bearer {self.api_key}"}

    def path(self, operation: str, model: str) -> str:
        return self.paths[operation].format(model=model)


def _openai_paths(prefix: str) -> dict[str, str]:
    return {
        "chat": f"{prefix}/chat/completions",
        "stream": f"{prefix}/chat/completions",
        "embeddings": f"{prefix}/embeddings",
        "completions": f"{prefix}/completions",
        "completions_stream": f"{prefix}/completions",
    }


def _gemini_paths(prefix: str) -> dict[str, str]:
    return {
        "chat": prefix + "/{model}:generateContent",
        "stream": prefix + "/{model}:streamGenerateContent",
        "completions": prefix + "/{model}:generateContent",
        "completions_stream": prefix + "/{model}:streamGenerateContent",
    }


_PASSTHROUGH_LENGTH = (
    "OpenAI wire format: the gateway relays finish_reason untouched, and the mock's OpenAI "
    "format never stops for length, so there is no mapping to check"
)
_NO_EMBEDDINGS_ANTHROPIC = (
    "Anthropic has no embeddings API (https://docs.anthropic.com/en/docs/build-with-claude/embeddings)"
)

PROVIDERS: list[Provider] = [
    Provider(
        id="openai",
        name="openai",
        chat_model="gpt-4o-mini",
        embed_model="text-embedding-3-small",
        headers=lambda up: {"x-portkey-provider": "openai", "x-portkey-custom-host": up.url},
        api_key="sk-test-openai",
        auth=("Authorization", "Bearer sk-test-openai"),
        lacks={"length": _PASSTHROUGH_LENGTH},
        paths=_openai_paths("/v1"),
        text=_openai_text,
        image=_openai_image,
        tools=_openai_tools,
    ),
    Provider(
        id="groq",
        name="groq",
        chat_model="llama-3.3-70b-versatile",
        headers=lambda up: {"x-portkey-provider": "groq", "x-portkey-custom-host": up.url},
        api_key="gsk-test-groq",
        auth=("Authorization", "Bearer gsk-test-groq"),
        paths=_openai_paths("/v1"),
        text=_openai_text,
        image=_openai_image,
        tools=_openai_tools,
        lacks={
            "embeddings": "Groq's API has no embeddings endpoint (console.groq.com/docs/openai)",
            "completions": "Groq's API has no legacy completions endpoint (console.groq.com/docs/openai)",
            "length": _PASSTHROUGH_LENGTH,
        },
    ),
    Provider(
        id="azure-openai",
        name="azure-openai",
        chat_model="gpt-4o",
        embed_model="text-embedding-3-small",
        headers=lambda up: {
            "x-portkey-provider": "azure-openai",
            "x-portkey-custom-host": _root(up) + "/openai",
            "x-portkey-azure-resource-name": "my-resource",
            "x-portkey-azure-deployment-id": "gpt4o-dep",
            "x-portkey-azure-api-version": "2024-10-21",
        },
        api_key="az-key",
        auth=("api-key", "az-key"),
        lacks={"length": _PASSTHROUGH_LENGTH},
        paths=_openai_paths("/openai/deployments/gpt4o-dep"),
        text=_openai_text,
        image=_openai_image,
        tools=_openai_tools,
    ),
    Provider(
        id="mistral-ai",
        name="mistral-ai",
        chat_model="mistral-small-latest",
        embed_model="mistral-embed",
        headers=lambda up: {"x-portkey-provider": "mistral-ai", "x-portkey-custom-host": up.url},
        api_key="m-key",
        auth=("Authorization", "Bearer m-key"),
        # Mistral has no legacy completions API (docs.mistral.ai/api): the gateway sends chat.
        paths={
            **_openai_paths("/v1"),
            "completions": "/v1/chat/completions",
            "completions_stream": "/v1/chat/completions",
        },
        text=_openai_text,
        image=_openai_image,
        tools=_openai_tools,
        lacks={"length": _PASSTHROUGH_LENGTH},
    ),
    Provider(
        id="anthropic",
        name="anthropic",
        chat_model="claude-mock-1",
        headers=lambda up: {"x-portkey-provider": "anthropic", "x-portkey-custom-host": up.url},
        api_key="sk-ant-test",
        auth=("x-api-key", "sk-ant-test"),
        paths={
            "chat": "/v1/messages",
            "stream": "/v1/messages",
            "completions": "/v1/messages",
            "completions_stream": "/v1/messages",
        },
        text=_anthropic_text,
        image=_anthropic_image,
        tools=_anthropic_tools,
        lacks={"embeddings": _NO_EMBEDDINGS_ANTHROPIC},
    ),
    Provider(
        id="google",
        name="google",
        chat_model="gemini-2.0-flash",
        embed_model="text-embedding-004",
        # batchEmbedContents answers ``{"embeddings": [{"values"}]}`` and no token count
        # (https://ai.google.dev/api/embeddings#response-body_1): usage is honestly 0.
        embed_counts_tokens=False,
        length_marker=" [mock finish=MAX_TOKENS]",
        # batchEmbedContents: ``requests[].content.parts[].text`` (https://ai.google.dev/api/embeddings)
        embed_inputs=lambda body: [p["text"] for r in body["requests"] for p in r["content"]["parts"]],
        headers=lambda up: {"x-portkey-provider": "google", "x-portkey-custom-host": _root(up) + "/v1beta"},
        api_key="AIza-test-key-0123456789",
        auth=("x-goog-api-key", "AIza-test-key-0123456789"),
        paths={**_gemini_paths("/v1beta/models"), "embeddings": "/v1beta/models/{model}:batchEmbedContents"},
        text=_gemini_text,
        image=_gemini_image,
        tools=_gemini_tools,
    ),
    Provider(
        id="vertex-ai-gemini",
        name="vertex-ai",
        chat_model="gemini-2.0-flash",
        embed_model="text-embedding-005",
        length_marker=" [mock finish=MAX_TOKENS]",
        # Vertex text embeddings predict: ``instances[].content``
        # (cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api)
        embed_inputs=lambda body: [i["content"] for i in body["instances"]],
        headers=lambda up: {
            "x-portkey-provider": "vertex-ai",
            "x-portkey-custom-host": _root(up) + "/v1",
            "x-portkey-vertex-project-id": "proj-1",
            "x-portkey-vertex-region": "europe-west4",
        },
        api_key="ya29.client-token",
        auth=("Authorization", "Bearer ya29.client-token"),
        paths={
            **_gemini_paths(VERTEX_ROOT + "/google/models"),
            "embeddings": VERTEX_ROOT + "/google/models/{model}:predict",
        },
        text=_gemini_text,
        image=_gemini_image,
        tools=_gemini_tools,
    ),
    Provider(
        id="vertex-ai-claude",
        name="vertex-ai",
        chat_model="anthropic." + CLAUDE_ON_VERTEX,
        headers=lambda up: {
            "x-portkey-provider": "vertex-ai",
            "x-portkey-custom-host": _root(up) + "/v1",
            "x-portkey-vertex-project-id": "proj-1",
            "x-portkey-vertex-region": "europe-west4",
        },
        api_key="ya29.client-token",
        auth=("Authorization", "Bearer ya29.client-token"),
        paths={
            "chat": f"{VERTEX_ROOT}/anthropic/models/{CLAUDE_ON_VERTEX}:rawPredict",
            "stream": f"{VERTEX_ROOT}/anthropic/models/{CLAUDE_ON_VERTEX}:streamRawPredict",
            "completions": f"{VERTEX_ROOT}/anthropic/models/{CLAUDE_ON_VERTEX}:rawPredict",
            "completions_stream": f"{VERTEX_ROOT}/anthropic/models/{CLAUDE_ON_VERTEX}:streamRawPredict",
        },
        text=_anthropic_text,
        image=_anthropic_image,
        tools=_anthropic_tools,
        lacks={"embeddings": "Claude on Vertex AI has no embeddings model (Anthropic offers none)"},
    ),
    Provider(
        id="bedrock",
        name="bedrock",
        chat_model=BEDROCK_CLAUDE,
        embed_model="amazon.titan-embed-text-v2:0",
        # Titan Text Embeddings V2 InvokeModel body: ``{"inputText": ...}``, one text per call
        # (docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html)
        embed_inputs=lambda body: [body["inputText"]],
        # ConverseStream's own mid-stream failure: a ``modelStreamErrorException`` event
        # (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html).
        mid_stream_fail="exception:modelStreamErrorException",
        # Titan takes one ``inputText`` per call; Cohere Embed on Bedrock takes ``texts`` (a batch).
        embed_batch_model="cohere.embed-english-v3",
        headers=lambda up: {
            "x-portkey-provider": "bedrock",
            "x-portkey-custom-host": _root(up),
            "x-portkey-aws-access-key-id": MOCK_AWS_ACCESS_KEY_ID,
            "x-portkey-aws-secret-access-key": MOCK_AWS_SECRET_ACCESS_KEY,
            "x-portkey-aws-region": "us-west-2",
        },
        api_key="unused",
        auth=("Authorization", f"AWS4-HMAC-SHA256 Credential={MOCK_AWS_ACCESS_KEY_ID}/"),
        paths={
            "chat": "/model/{model}/converse",
            "stream": "/model/{model}/converse-stream",
            "embeddings": "/model/{model}/invoke",
            "completions": "/model/{model}/converse",
            "completions_stream": "/model/{model}/converse-stream",
        },
        text=_bedrock_text,
        image=_bedrock_image,
        tools=_bedrock_tools,
    ),
    Provider(
        id="cohere",
        name="cohere",
        chat_model="command-a-vision-07-2025",
        embed_model="embed-v4.0",
        # Cohere v2 embed: ``texts`` (docs.cohere.com/reference/embed)
        embed_inputs=lambda body: list(body["texts"]),
        headers=lambda up: {"x-portkey-provider": "cohere", "x-portkey-custom-host": _root(up)},
        api_key="co-test",
        auth=("Authorization", "Bearer co-test"),
        paths={
            "chat": "/v2/chat",
            "stream": "/v2/chat",
            "embeddings": "/v2/embed",
            "completions": "/v2/chat",
            "completions_stream": "/v2/chat",
        },
        text=_cohere_text,
        image=_openai_image,
        tools=_openai_tools,
        # Cohere's stream reports a failed generation in ``message-end`` with finish_reason ERROR
        # (docs.cohere.com/reference/chat-stream).
        mid_stream_fail="finish_error",
        lacks={
            "tool_choice": "Cohere v2 tool_choice is only REQUIRED or NONE, it cannot name a tool "
            "(docs.cohere.com/reference/chat)"
        },
    ),
]

#: (provider id, capability) → what is wrong. Each becomes ``xfail(strict=True)``.
FINDINGS: dict[tuple[str, str], str] = {}


def cases(capability: str, variants: list[str | None] | None = None) -> list[Any]:
    """The table as pytest params for one capability (crossed with ``variants`` if given):
    skipped where the provider's API lacks it, strict xfail where :data:`FINDINGS` records a
    defect (keyed by capability, or ``capability:variant``)."""
    out = []
    for p in PROVIDERS:
        for variant in [*variants] if variants else [None]:
            key = capability if variant is None else f"{capability}:{variant}"
            marks: list[Any] = []
            if capability in p.lacks:
                marks.append(pytest.mark.skip(reason=p.lacks[capability]))
            elif (p.id, key) in FINDINGS:
                marks.append(pytest.mark.xfail(strict=True, reason=FINDINGS[(p.id, key)]))
            values = (p,) if variant is None else (p, variant)
            out.append(
                pytest.param(*values, id=p.id if variant is None else f"{p.id}-{variant}", marks=marks)
            )
    return out


def received(upstream: Upstream, provider: Provider, operation: str, model: str) -> dict[str, Any]:
    """The one request the upstream got: on the operation's path, with the provider's own
    credential header; its JSON body."""
    [record] = upstream.requests
    assert record["path"] == provider.path(operation, model), record["path"]
    header, expected = provider.auth
    assert record["headers"].get(header, "").startswith(expected), header
    if header != "Authorization":  # the client's bearer key is not passed on beside it
        assert "Authorization" not in record["headers"]
    body: dict[str, Any] = msgspec.json.decode(record["body"])
    return body


def ingress_cases(
    capability: str,
    variants: list[Any] | None,
    lacks: dict[tuple[str, str], str],
    findings: dict[tuple[str, str], str],
) -> list[Any]:
    """The table as params for one capability of an ingress format (Messages, Responses),
    crossed with ``variants``: skipped where ``lacks`` says the provider has nothing to check,
    strict xfail where ``findings`` records a defect (both keyed by provider id and capability)."""
    out = []
    for p in PROVIDERS:
        marks: list[Any] = []
        if (p.id, capability) in lacks:
            marks.append(pytest.mark.skip(reason=lacks[(p.id, capability)]))
        elif (p.id, capability) in findings:
            marks.append(pytest.mark.xfail(strict=True, reason=findings[(p.id, capability)]))
        for variant in variants or [None]:
            values = (p,) if variant is None else (p, variant)
            name = p.id if variant is None else f"{p.id}-{variant}"
            out.append(pytest.param(*values, id=name, marks=marks))
    return out
