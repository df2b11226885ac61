"""Provider ``google``: the Gemini API (https://ai.google.dev/api), mapped in ``mapping/gemini.pxi``.

URLs: ``{base}/models/{model}:generateContent``, ``:streamGenerateContent?alt=sse`` (SSE, one
GenerateContentResponse per event; without ``alt=sse`` Google streams one JSON array, which is
what Portkey parses), ``:batchEmbedContents`` and, for Imagen models, ``:predict`` (image
generation, ``mapping/images.pxi``). The API key travels in the ``x-goog-api-key``
header (https://ai.google.dev/api#authentication), not in ``?key=`` as Portkey sends it, so keys
never appear in URLs, proxy logs or access logs. ``custom_host`` replaces the base URL, which
for Portkey is the host alone: ``/v1beta`` belongs to the endpoint (google/api.ts).
"""

from __future__ import annotations

import re

import msgspec

from fastgate._transforms import (
    GeminiStream,
    gemini_chat_request,
    gemini_chat_response,
    gemini_completion_request,
    gemini_completion_response,
    gemini_embed_request,
    gemini_embed_response,
    gemini_error,
    image_answer_format,
    imagen_request,
    imagen_response,
)
from fastgate.errors import bad_request
from fastgate.providers.base import Call, Endpoint, Provider, UpstreamRequest, forward_headers
from fastgate.providers.openai import NOT_FORWARDED
from fastgate.providers.urls import under_host

BASE_URL = "https://generativelanguage.googleapis.com"
VERSION = "/v1beta"
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]*")
#: Mapped endpoints, plus Portkey's passthrough (``countTokens``, ``cachedContents`` ... in
#: Google's own format). ``/v1/models`` is not offered: Google lists models in its own shape.
GEMINI_ENDPOINTS = frozenset(
    {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.IMAGES, Endpoint.PROXY}
)


class _EncodingView(msgspec.Struct):
    encoding_format: str | None = None


_encoding_decoder = msgspec.json.Decoder(_EncodingView)


def embedding_encoding(call: Call) -> str | None:
    """``encoding_format`` of an embeddings request, read again for the answer: a skim of one
    field (the request was mapped in an earlier step, and ``Call`` carries only the raw body)."""
    overrides = call.target.override_params
    if overrides and "encoding_format" in overrides:
        return str(overrides["encoding_format"])
    return _encoding_decoder.decode(call.body).encoding_format


def model_name(model: str | None) -> str:
    """The model id as a URL path segment: ``models/`` dropped, anything else path-like refused."""
    if not model:
        raise bad_request("model is required", param="model")
    name = model.removeprefix("models/")
    if not _MODEL.fullmatch(name):
        raise bad_request(f"Invalid model name {model!r}", param="model")
    return name


def requested_model(call: Call) -> str:
    """The model a mapped answer names when the upstream does not say (overrides win)."""
    overrides = call.target.override_params
    if overrides and isinstance(overrides.get("model"), str):
        return str(overrides["model"])
    return call.view.model or ""


class GeminiMapping(Provider):
    """What Gemini on Google AI and on Vertex AI share: bodies, answers, streams, errors."""

    endpoints = GEMINI_ENDPOINTS
    chat_extensions = True

    def api_url(self, call: Call, path: str) -> str:
        """``path`` (after the API version: ``/models/...``) under the base URL or the custom host
        in its place (``.../v1beta`` for Gemini, ``.../v1`` for Vertex)."""
        raise NotImplementedError

    def operation_url(self, call: Call, model: str, operation: str) -> str:
        raise NotImplementedError

    def auth_headers(self, call: Call) -> dict[str, str]:
        raise NotImplementedError

    #: Imagen on Vertex takes ``seed``, ``negativePrompt`` and ``addWatermark``; the Gemini API does not.
    imagen_on_vertex = False
    #: The embeddings method and its two mappings (Vertex embeds with ``:predict``).
    embed_operation = "batchEmbedContents"
    embed_request = staticmethod(gemini_embed_request)
    embed_response = staticmethod(gemini_embed_response)

    def build(self, call: Call, headers: dict[str, str]) -> UpstreamRequest:
        overrides = call.target.override_params
        if call.endpoint is Endpoint.EMBEDDINGS:
            model, _, body = self.embed_request(call.body, overrides)
            operation = self.embed_operation
        elif call.endpoint is Endpoint.IMAGES:
            model, body = imagen_request(call.body, overrides, self.name, self.imagen_on_vertex)
            operation = "predict"
        else:
            if call.endpoint is Endpoint.CHAT:
                model, body = gemini_chat_request(call.body, overrides)
            else:
                model, body = gemini_completion_request(call.body, overrides)
            operation = "streamGenerateContent?alt=sse" if call.view.stream else "generateContent"
        forward_headers(call, headers)
        headers["Content-Type"] = "application/json"
        return UpstreamRequest("POST", self.operation_url(call, model_name(model), operation), headers, body)

    def passthrough(self, call: Call, auth: dict[str, str]) -> UpstreamRequest:
        """Portkey's passthrough: the path after ``/v1`` appended to the base URL, the incoming
        headers forwarded except ``x-portkey-*``, hop-by-hop ones and ``Authorization`` (the
        client's key or token, already turned into ``auth``: Google would read a Bearer API key
        as a broken OAuth token)."""
        headers: dict[str, str] = {}
        for name, value in call.headers.items():
            lower = name.lower()
            if lower.startswith("x-portkey-") or lower in NOT_FORWARDED or lower == "authorization":
                continue
            headers[name] = value
        headers.update(auth)
        url = self.api_url(call, call.path)
        if call.query:
            url = f"{url}?{call.query}"
        body = call.body if call.method not in ("GET", "HEAD", "DELETE") or call.body else None
        return UpstreamRequest(call.method, url, headers, body or None, call.upload)

    def request(self, call: Call) -> UpstreamRequest:
        if call.endpoint is Endpoint.PROXY:
            return self.passthrough(call, self.auth_headers(call))
        return self.build(call, self.auth_headers(call))

    def response(self, call: Call, body: bytes) -> bytes:
        model = requested_model(call)
        if call.endpoint is Endpoint.CHAT:
            return gemini_chat_response(body, model, self.name, call.target.strict_open_ai_compliance)
        if call.endpoint is Endpoint.COMPLETIONS:
            return gemini_completion_response(body, model, self.name)
        if call.endpoint is Endpoint.IMAGES:
            as_url = image_answer_format(call.body, call.target.override_params)[0]
            return imagen_response(body, self.name, as_url)
        return self.embed_response(body, model, self.name, embedding_encoding(call) == "base64")

    def stream(self, call: Call) -> GeminiStream:
        options = call.view.stream_options
        return GeminiStream(
            requested_model(call),
            self.name,
            bool(options and options.include_usage),
            call.target.strict_open_ai_compliance,
            call.endpoint is Endpoint.COMPLETIONS,
        )

    def error(self, status: int, body: bytes) -> bytes:
        mapped = gemini_error(status, body, self.name)
        return mapped if mapped is not None else super().error(status, body)


class GoogleProvider(GeminiMapping):
    name = "google"

    def api_url(self, call: Call, path: str) -> str:
        host = call.target.custom_host
        return under_host(host, VERSION + path) if host else BASE_URL + VERSION + path

    def operation_url(self, call: Call, model: str, operation: str) -> str:
        return self.api_url(call, f"/models/{model}:{operation}")

    def auth_headers(self, call: Call) -> dict[str, str]:
        key = call.target.api_key
        return {"x-goog-api-key": key} if key else {}
