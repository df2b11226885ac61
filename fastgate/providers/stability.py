"""Provider ``stability-ai``: Stability AI's image API behind OpenAI's ``/v1/images/generations``.

As Portkey chooses (``src/providers/stability-ai/``): a v1 engine (``stable-diffusion-xl-1024-v1-0``,
``stable-diffusion-v1-6``) goes to ``/v1/generation/{engine}/text-to-image`` as JSON; any other
model to ``/v2beta/stable-image/generate/{model}`` as a multipart form, where fastgate also names
the endpoint for Stability's model names (``stable-image-core`` → ``core``, ``sd3.5-large`` →
``sd3`` with the model in the form). Answers are asked for as JSON (``Accept: application/json``:
base64 images) and mapped in ``mapping/images.pxi``. ``Authorization: Bearer`` carries the key;
the ``stability_client_id`` / ``_user_id`` / ``_version`` options become Stability's client
headers. A custom host replaces ``https://api.stability.ai``.

Errors: v2beta writes ``{"id", "name", "errors": [...]}``, v1 ``{"id", "name", "message"}``; both
keep the upstream status, the message joined from ``errors``, ``name`` as the code.
"""

from __future__ import annotations

import msgspec

from fastgate._transforms import (
    image_answer_format,
    stability_image_request,
    stability_image_response,
)
from fastgate.errors import ErrorBody, ErrorDetail, type_for_status
from fastgate.providers.base import Call, Endpoint, UpstreamRequest, forward_headers
from fastgate.providers.image_calls import asks_several
from fastgate.providers.openai import OpenAICompatible
from fastgate.schema.openai import json_encoder

BASE_URL = "https://api.stability.ai"
#: Stability's client identification headers (API reference, "Authentication").
CLIENT_HEADERS = {
    "stability_client_id": "stability-client-id",
    "stability_client_user_id": "stability-client-user-id",
    "stability_client_version": "stability-client-version",
}


class _StabilityError(msgspec.Struct):
    name: str | None = None
    message: str | None = None
    errors: list[str] | None = None


_error_decoder = msgspec.json.Decoder(_StabilityError)


class StabilityAI(OpenAICompatible):
    def __init__(self) -> None:
        super().__init__(
            "stability-ai",
            BASE_URL,
            option_headers=CLIENT_HEADERS,
            endpoints=frozenset({Endpoint.IMAGES, Endpoint.PROXY}),
        )

    def _requests(self, call: Call) -> list[UpstreamRequest]:
        path, content_type, bodies = stability_image_request(call.body, call.target.override_params)
        url = self.url(call, path)
        requests = []
        for body in bodies:
            headers = self.auth_headers(call)
            forward_headers(call, headers)
            headers["Content-Type"] = content_type
            headers["Accept"] = "application/json"  # base64 JSON, not the image's bytes
            requests.append(UpstreamRequest("POST", url, headers, body))
        return requests

    def request(self, call: Call) -> UpstreamRequest:
        if call.endpoint is not Endpoint.IMAGES:
            return self.proxy_request(call)
        return self._requests(call)[0]

    def fan_out(self, call: Call) -> list[UpstreamRequest] | None:
        """v2beta makes one image a call: ``n`` images are ``n`` calls (v1 engines take ``samples``)."""
        if call.endpoint is not Endpoint.IMAGES or not asks_several(call):
            return None
        requests = self._requests(call)
        return requests if len(requests) > 1 else None

    def combine(self, call: Call, bodies: list[bytes]) -> bytes:
        return b"[" + b",".join(bodies) + b"]"

    def response(self, call: Call, body: bytes) -> bytes:
        if call.endpoint is not Endpoint.IMAGES:
            return body
        as_url, fmt = image_answer_format(call.body, call.target.override_params)
        return stability_image_response(body, as_url, fmt)

    def error(self, status: int, body: bytes) -> bytes:
        try:
            parsed = _error_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return super().error(status, body)
        message = ", ".join(parsed.errors) if parsed.errors else parsed.message
        if not message:
            return super().error(status, body)
        detail = ErrorDetail(f"stability-ai error: {message}", type_for_status(status), None, parsed.name)
        return json_encoder.encode(ErrorBody(detail, self.name))
