"""Provider ``cohere``: Cohere API v2 (``/v2/chat``, ``/v2/embed``, ``/v2/rerank``) behind the
gateway's routes (OpenAI's, and ``/v1/rerank`` in Cohere's own shape).

The body mapping lives in the compiled module (``mapping/cohere.pxi``); this module picks the
URL, auth and which mapping runs. Legacy ``/v1/completions`` goes through ``/v2/chat`` with the
prompt as one user turn (Cohere's own ``/v1/generate`` is deprecated). Errors keep the upstream
status; Cohere's ``{"message": ...}`` body is read by :meth:`Provider.error`.
"""

from __future__ import annotations

import msgspec

from fastgate._transforms import (
    CohereStream,
    cohere_chat_request,
    cohere_chat_response,
    cohere_completion_request,
    cohere_completion_response,
    cohere_embed_request,
    cohere_embed_response,
    cohere_rerank_request,
    cohere_rerank_response,
)
from fastgate.errors import bad_request
from fastgate.providers.base import Call, Endpoint, UpstreamRequest, forward_headers
from fastgate.providers.openai import OpenAICompatible

BASE_URL = "https://api.cohere.com"
_PATHS = {
    Endpoint.CHAT: "/v2/chat",
    Endpoint.COMPLETIONS: "/v2/chat",
    Endpoint.EMBEDDINGS: "/v2/embed",
    Endpoint.RERANK: "/v2/rerank",
}


class _EncodingFormat(msgspec.Struct):
    encoding_format: str | None = None


# Reads one field of an embeddings request; msgspec skips the rest without building objects.
_encoding_format = msgspec.json.Decoder(_EncodingFormat)


def _model(call: Call) -> str:
    """The model the client asked for (an ``override_params`` model wins): Cohere's chat
    answers carry none of their own."""
    overrides = call.target.override_params
    model = overrides.get("model") if overrides else None
    return str(model or call.view.model or "")


class CohereProvider(OpenAICompatible):
    chat_extensions = True

    def __init__(self) -> None:
        super().__init__(
            "cohere",
            BASE_URL,
            add_provider_field=False,
            endpoints=frozenset(
                {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.RERANK, Endpoint.PROXY}
            ),
        )

    def request(self, call: Call) -> UpstreamRequest:
        if call.endpoint is Endpoint.PROXY:
            return self.proxy_request(call)
        overrides = call.target.override_params
        try:
            if call.endpoint is Endpoint.CHAT:
                body = cohere_chat_request(call.body, overrides)
            elif call.endpoint is Endpoint.COMPLETIONS:
                body = cohere_completion_request(call.body, overrides)
            elif call.endpoint is Endpoint.RERANK:
                body = cohere_rerank_request(call.body, overrides)
            else:
                body = cohere_embed_request(call.body, overrides)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise bad_request(f"Invalid request body for cohere: {exc}") from None
        headers = self.auth_headers(call)
        forward_headers(call, headers)
        headers["Content-Type"] = "application/json"
        return UpstreamRequest("POST", self.url(call, _PATHS[call.endpoint]), headers, body)

    def response(self, call: Call, body: bytes) -> bytes:
        strict = call.target.strict_open_ai_compliance
        if call.endpoint is Endpoint.CHAT:
            return cohere_chat_response(body, _model(call), strict)
        if call.endpoint is Endpoint.COMPLETIONS:
            return cohere_completion_response(body, _model(call), strict)
        if call.endpoint is Endpoint.RERANK:
            return cohere_rerank_response(body, call.body, call.target.override_params)
        overrides = call.target.override_params or {}
        encoding = overrides.get("encoding_format") or _encoding_format.decode(call.body).encoding_format
        return cohere_embed_response(body, _model(call), encoding == "base64")

    def stream(self, call: Call) -> CohereStream:
        options = call.view.stream_options
        return CohereStream(
            _model(call),
            include_usage=bool(options and options.include_usage),
            strict=call.target.strict_open_ai_compliance,
            text=call.endpoint is Endpoint.COMPLETIONS,
        )
