"""Provider ``anthropic``: Claude through the Messages API (https://docs.anthropic.com/en/api/messages).

Chat and legacy completions are rebuilt as ``POST /v1/messages`` by the compiled mapping;
``GET /v1/models`` is mapped to OpenAI's model list; the passthrough route relays to the same
base URL with Anthropic's auth. Options (``x-portkey-anthropic-version`` / ``anthropic_version``,
``anthropic_beta``) come from ``Target.options``.

Where Portkey's gateway gets Anthropic wrong, fastgate does not (reference §5.2, §9 items 4-5):
``max_tokens`` defaults to 4096 instead of a 400 from Anthropic; ``prompt_tokens`` includes cached
input tokens as OpenAI's does; a mid-stream ``error`` event becomes an error chunk and ``[DONE]``;
every stream's first chunk carries ``role``; usage is streamed only when
``stream_options.include_usage`` asks for it; consecutive tool results become one user turn;
chunk ids are Anthropic's message id rather than a made-up one.
"""

from __future__ import annotations

import msgspec

from fastgate._transforms import (
    AnthropicStream,
    anthropic_models_to_openai,
    anthropic_to_openai_chat,
    anthropic_to_openai_completion,
    openai_chat_to_anthropic,
    openai_completion_to_anthropic,
)
from fastgate.errors import bad_request
from fastgate.providers.base import MESSAGES_INGRESS, RELAYED, Call, Endpoint, UpstreamRequest
from fastgate.providers.openai import OpenAICompatible
from fastgate.schema.openai import RawContentChatRequest

#: The API version every request names (https://docs.anthropic.com/en/api/versioning).
DEFAULT_VERSION = "2023-06-01"
#: Held once, as in ``providers/openai.py``.
_CHAT, _COMPLETIONS, _MODELS = Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.MODELS


class AnthropicProvider(OpenAICompatible):
    """Shares the base-URL, custom-host, forward-header and passthrough handling of
    :class:`OpenAICompatible`; every body it sends or reads is mapped."""

    chat_request_decoder = msgspec.json.Decoder(RawContentChatRequest)

    def __init__(self) -> None:
        super().__init__(
            "anthropic",
            "https://api.anthropic.com/v1",
            # Anthropic authenticates with the bare key in ``x-api-key``.
            auth_header="x-api-key",
            auth_prefix="",
            endpoints=frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.MODELS, Endpoint.PROXY})
            | MESSAGES_INGRESS,
            option_headers={"anthropic_version": "anthropic-version", "anthropic_beta": "anthropic-beta"},
        )

    def auth_headers(self, call: Call) -> dict[str, str]:
        # Anthropic's own headers from the client (what Claude Code sends), then the options,
        # which win, as Portkey's do. The base named, not super() (the super object costs as much
        # as the rest of this method), and only with options: mostly the bare key is all it adds.
        target = call.target
        client = call.headers
        version = client.get("anthropic-version") or DEFAULT_VERSION
        headers = (
            {self.auth_header: target.api_key, "anthropic-version": version}
            if target.api_key
            else {"anthropic-version": version}
        )
        beta = client.get("anthropic-beta")
        if beta:
            headers["anthropic-beta"] = beta
        if target.options:
            headers.update(OpenAICompatible.auth_headers(self, call))
        return headers

    def request(self, call: Call) -> UpstreamRequest:
        if call.endpoint in RELAYED:  # the passthrough, and Messages as the client sent them
            return self.proxy_request(call)
        headers = self.request_headers(call)
        if call.endpoint is _MODELS:
            return UpstreamRequest("GET", self.url(call, "/models"), headers, None)
        headers["Content-Type"] = "application/json"
        try:
            if call.endpoint is _COMPLETIONS:
                body = openai_completion_to_anthropic(call.body, call.target.override_params)
            else:
                view = call.view  # the whole request when the handler decoded it so
                request = view if type(view) is RawContentChatRequest else None
                body = openai_chat_to_anthropic(call.body, call.target.override_params, request)
        except msgspec.ValidationError as exc:
            raise bad_request(f"Invalid request body: {exc}") from None
        return UpstreamRequest("POST", self.url(call, "/messages"), headers, body)

    def response(self, call: Call, body: bytes) -> bytes:
        endpoint = call.endpoint
        if endpoint is _CHAT:
            return anthropic_to_openai_chat(body, self.name, call.target.strict_open_ai_compliance)
        if endpoint is _COMPLETIONS:
            return anthropic_to_openai_completion(body, self.name)
        if endpoint is _MODELS:
            return anthropic_models_to_openai(body, self.name)
        return body

    def stream(self, call: Call) -> AnthropicStream:
        options = call.view.stream_options
        # By position (include_usage, strict, text_completion): keywords cost a compiled
        # ``__init__`` a parse of their names, on every stream.
        return AnthropicStream(
            self.name,
            bool(options and options.include_usage),
            call.target.strict_open_ai_compliance,
            call.endpoint is _COMPLETIONS,
        )
