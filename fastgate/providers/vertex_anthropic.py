"""Claude on Vertex AI (provider ``vertex-ai``, publisher ``anthropic``): what differs from Gemini.

Google's "Use Anthropic's Claude models" (https://cloud.google.com/vertex-ai/generative-ai/docs/
partner-models/claude/use-claude) and Anthropic's "Claude on Vertex AI"
(https://docs.anthropic.com/en/api/claude-on-vertex-ai) give the differences from the Messages API:
- URL ``.../publishers/anthropic/models/{model}:rawPredict``, or ``:streamRawPredict`` for a stream
  (the body still says ``"stream": true``; Vertex answers with Anthropic's own SSE events);
- the model is named by the URL only, never in the body;
- the API version travels in the body as ``anthropic_version`` (``vertex-2023-10-16``), not in
  an ``anthropic-version`` header; betas still go in the ``anthropic-beta`` header.
Bodies, answers, streams and errors are the Anthropic mapping (``mapping/anthropic.pxi``), named
``vertex-ai``. URL prefix and auth (client token or service account) are :class:`VertexProvider`'s.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from fastgate._transforms import (
    AnthropicStream,
    anthropic_to_openai_chat,
    anthropic_to_openai_completion,
    openai_chat_to_anthropic,
    openai_completion_to_anthropic,
)
from fastgate.errors import GatewayError, bad_request
from fastgate.providers.base import MESSAGES_INGRESS, Call, Endpoint, UpstreamRequest, forward_headers

PUBLISHER = "anthropic"
#: The body version Vertex requires of Claude requests (both references above).
VERTEX_VERSION = "vertex-2023-10-16"
#: Anthropic's error body always opens ``{"type": "error", ...}``
#: (https://docs.anthropic.com/en/api/errors); Vertex's own front door answers google.rpc.Status.
_ANTHROPIC_ERROR = re.compile(rb'\s*\{\s*"type"\s*:\s*"error"')
_object_decoder = msgspec.json.Decoder(dict[str, Any])
_encode = msgspec.json.Encoder().encode


def claude_model(model: str) -> str | None:
    """The Vertex model id when ``model`` names a Claude model, else None.

    ``anthropic.<model>`` is Portkey's convention. Bare ``claude-*`` names are taken too: Google
    publishes no model of that name, so they can only mean Anthropic's (on Portkey they reach
    ``publishers/google`` and fail with a 404).
    """
    publisher, dot, rest = model.partition(".")
    if dot and publisher == PUBLISHER:
        return rest
    return model if model.startswith("claude-") else None


def is_anthropic_error(body: bytes) -> bool:
    """Whether an error body is Anthropic's rather than Google's (a prefix look, no decode)."""
    return _ANTHROPIC_ERROR.match(body) is not None


class VertexClaude:
    """The anthropic publisher's mapping for :class:`VertexProvider`, which delegates to it by model."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def build(self, call: Call, headers: dict[str, str], model_url: str) -> UpstreamRequest:
        """The request to ``model_url`` (``.../publishers/anthropic/models/{model}``) plus its method."""
        if call.endpoint in MESSAGES_INGRESS:
            return self.native(call, headers, model_url)
        if call.endpoint not in (Endpoint.CHAT, Endpoint.COMPLETIONS):
            raise GatewayError(
                400,
                f"{call.endpoint.value} is not supported by {self.provider} for Claude models",
                code="unsupported_endpoint",
            )
        options = call.target.options
        to_anthropic = (
            openai_completion_to_anthropic
            if call.endpoint is Endpoint.COMPLETIONS
            else openai_chat_to_anthropic
        )
        try:
            body = to_anthropic(
                call.body,
                call.target.override_params,
                body_version=str(options.get("anthropic_version") or VERTEX_VERSION),
                send_model=False,
            )
        except msgspec.ValidationError as exc:
            raise bad_request(f"Invalid request body: {exc}") from None
        beta = options.get("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(map(str, beta))
        forward_headers(call, headers)
        headers["Content-Type"] = "application/json"
        method = "streamRawPredict" if call.view.stream else "rawPredict"
        return UpstreamRequest("POST", f"{model_url}:{method}", headers, body)

    def native(
        self, call: Call, headers: dict[str, str], model_url: str, counted: str | None = None
    ) -> UpstreamRequest:
        """A Messages request as the client wrote it, as Vertex takes it: the model named by the
        URL, the API version in the body, betas in the header as the client sent them. A token
        count goes to the ``count-tokens`` model, the Vertex id of the ``counted`` one in its
        body (https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/count-tokens)."""
        try:
            body = _object_decoder.decode(call.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise bad_request("Request body is not a JSON object") from None
        if counted is None:
            body.pop("model", None)
        else:
            body["model"] = counted
        body.setdefault(
            "anthropic_version", str(call.target.options.get("anthropic_version") or VERTEX_VERSION)
        )
        beta = call.target.options.get("anthropic_beta") or call.headers.get("anthropic-beta")
        if beta:
            headers["anthropic-beta"] = beta if isinstance(beta, str) else ",".join(map(str, beta))
        forward_headers(call, headers)
        headers["Content-Type"] = "application/json"
        method = "rawPredict" if counted is not None or not body.get("stream") else "streamRawPredict"
        return UpstreamRequest("POST", f"{model_url}:{method}", headers, _encode(body))

    def response(self, call: Call, body: bytes) -> bytes:
        if call.endpoint is Endpoint.COMPLETIONS:
            return anthropic_to_openai_completion(body, self.provider)
        return anthropic_to_openai_chat(body, self.provider, call.target.strict_open_ai_compliance)

    def stream(self, call: Call) -> AnthropicStream:
        options = call.view.stream_options
        return AnthropicStream(
            self.provider,
            include_usage=bool(options and options.include_usage),
            strict=call.target.strict_open_ai_compliance,
            text_completion=call.endpoint is Endpoint.COMPLETIONS,
        )
