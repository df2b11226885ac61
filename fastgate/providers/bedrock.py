"""Provider ``bedrock``: AWS Bedrock Runtime through Converse, ConverseStream and InvokeModel.

Image generation goes through InvokeModel (``mapping/images.pxi``): Amazon Titan Image
Generator and Nova Canvas make ``numberOfImages`` in one call, Stability models one image a call
(so ``n`` images are ``n`` signed calls, gathered like Titan's embeddings).

URLs follow the Bedrock Runtime API reference: ``https://bedrock-runtime.{region}.amazonaws.com``
+ ``/model/{modelId}/converse`` (or ``/converse-stream``, ``/invoke``), the model id URL-encoded
(it may be an ARN with ``:`` and ``/``). A custom host replaces that base. Auth is SigV4 (signing
name ``bedrock``) over the exact body bytes sent, or a Bedrock API key as a bearer token
(``aws_auth_type: apiKey``; the key from ``Authorization`` / ``api_key``, or the
``aws_api_key`` option). Static or session credentials only: the STS AssumeRole flow Portkey
runs per request (``assumedRole``) is refused rather than done per request.

Where this differs from Portkey's gateway, on purpose:
- a ConverseStream exception event (throttling, model stream error) becomes an OpenAI error
  event then ``[DONE]``; Portkey turns it into a ``stop`` chunk and loses the message;
- both event-stream CRCs are verified; a corrupted or cut-short stream is an error event;
- ``http(s)`` image URLs are a 400 naming the field: Converse takes bytes or S3 only, and
  fetching client-given URLs from the gateway would be an SSRF surface (``s3://`` is passed on);
- the response's text blocks are joined without a separator, as the stream delivers them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import msgspec

from fastgate._transforms import (
    BedrockStream,
    bedrock_chat_request,
    bedrock_chat_response,
    bedrock_completion_request,
    bedrock_completion_response,
    bedrock_embedding_request,
    bedrock_embedding_response,
    bedrock_error_message,
    bedrock_image_request,
    bedrock_image_response,
    image_answer_format,
)
from fastgate.errors import ErrorBody, ErrorDetail, bad_request, type_for_status
from fastgate.providers import aws_sigv4
from fastgate.providers.base import Call, Endpoint, Provider, UpstreamRequest
from fastgate.providers.image_calls import asks_several
from fastgate.providers.openai import apply_overrides
from fastgate.schema.openai import json_encoder

DEFAULT_REGION = "us-east-1"
SIGNING_NAME = "bedrock"  # service-2.json metadata.signingName
_JSON = "application/json"
_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")


class _EncodingView(msgspec.Struct):
    """The one field of an embeddings request the answer's shape depends on."""

    encoding_format: str | None = None


_encoding_decoder = msgspec.json.Decoder(_EncodingView)


def _option(call: Call, name: str) -> str | None:
    value = call.target.options.get(name)
    return str(value) if value else None


def _region(call: Call) -> str:
    """The region goes into the host name: anything but a region name (``eu-west-3``,
    ``us-gov-west-1``) could point the signed request, session token included, at another host."""
    region = _option(call, "aws_region") or DEFAULT_REGION
    if not _REGION.fullmatch(region):
        raise bad_request(f"Invalid aws_region {region[:40]!r}", param="aws_region")
    return region


class BedrockProvider(Provider):
    name = "bedrock"
    chat_extensions = True
    option_names = frozenset(
        {
            *("aws_region", "aws_auth_type", "aws_api_key"),
            *("aws_access_key_id", "aws_secret_access_key", "aws_session_token"),
        }
    )
    endpoints = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.IMAGES})
    # Bedrock batch inference reads JSONL from S3 and writes to S3 (CreateModelInvocationJob,
    # docs.aws.amazon.com/bedrock/latest/userguide/batch-inference.html): not relayed here.
    instead = {
        Endpoint.BATCHES: "Bedrock batch inference jobs read and write S3; create one with the AWS SDK or "
        "CLI (CreateModelInvocationJob), or send the requests to /v1/chat/completions one by one",
        Endpoint.FILES: "Bedrock batch input lives in S3; upload it with the AWS SDK or CLI (s3 cp), then "
        "create the job with CreateModelInvocationJob",
    }

    def base(self, call: Call) -> str:
        if call.target.custom_host:
            return call.target.custom_host.rstrip("/")
        return f"https://bedrock-runtime.{_region(call)}.amazonaws.com"

    def request(self, call: Call) -> UpstreamRequest:
        if call.endpoint is Endpoint.IMAGES:
            model, payloads = bedrock_image_request(call.body, call.target.override_params)
            return self._signed(call, model, "invoke", payloads[0])
        body = apply_overrides(call.body, call.target.override_params)
        if call.endpoint is Endpoint.CHAT:
            model, payload = bedrock_chat_request(body)
        elif call.endpoint is Endpoint.COMPLETIONS:
            model, payload = bedrock_completion_request(body)
        else:
            raise self.unsupported(call.endpoint)
        return self._signed(call, model, "converse-stream" if call.view.stream else "converse", payload)

    def fan_out(self, call: Call) -> list[UpstreamRequest] | None:
        """Embeddings go through InvokeModel: one call for Cohere's batch, one per input for Titan;
        so do images of models that make one a call, when several are asked for."""
        if call.endpoint is Endpoint.EMBEDDINGS:
            body = apply_overrides(call.body, call.target.override_params)
            model, payloads = bedrock_embedding_request(body)
        elif call.endpoint is Endpoint.IMAGES and asks_several(call):
            model, payloads = bedrock_image_request(call.body, call.target.override_params)
            if len(payloads) == 1:
                return None  # Titan and Nova Canvas make them in one call
        else:
            return None
        return [self._signed(call, model, "invoke", payload) for payload in payloads]

    def combine(self, call: Call, bodies: list[bytes]) -> bytes:
        return bodies[0] if len(bodies) == 1 else b"[" + b",".join(bodies) + b"]"

    def _signed(self, call: Call, model: str, operation: str, payload: bytes) -> UpstreamRequest:
        url = f"{self.base(call)}/model/{quote(model, safe='')}/{operation}"
        headers = {"Content-Type": _JSON}
        if operation == "invoke":
            headers["Accept"] = _JSON  # InvokeModel's modelled ``accept`` member (service-2.json)
        headers.update(self.auth_headers(call, url, headers, payload))
        return UpstreamRequest("POST", url, headers, payload)

    def auth_headers(self, call: Call, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
        auth_type = _option(call, "aws_auth_type")
        if auth_type == "apiKey":
            # Bedrock API keys are bearer tokens (Bedrock user guide, "API keys").
            key = call.target.api_key or _option(call, "aws_api_key")
            if not key:
                raise bad_request(
                    "aws_auth_type apiKey needs an API key (Authorization header)", param="api_key"
                )
            return {"Authorization": f"Bearer {key}"}
        if auth_type == "assumedRole":
            raise bad_request(
                "aws_auth_type assumedRole is not supported: pass temporary credentials "
                "(aws_access_key_id, aws_secret_access_key, aws_session_token)",
                param="aws_auth_type",
            )
        access_key = _option(call, "aws_access_key_id")
        secret_key = _option(call, "aws_secret_access_key")
        if not access_key or not secret_key:
            raise bad_request(
                "bedrock needs aws_access_key_id and aws_secret_access_key (or aws_auth_type apiKey)",
                param="aws_access_key_id" if not access_key else "aws_secret_access_key",
            )
        credentials = aws_sigv4.AwsCredentials(access_key, secret_key, _option(call, "aws_session_token"))
        return aws_sigv4.sign("POST", url, headers, body, credentials, _region(call), SIGNING_NAME)

    def _model(self, call: Call) -> str:
        overrides: dict[str, Any] = call.target.override_params or {}
        return str(overrides.get("model") or call.view.model or "")

    def response(self, call: Call, body: bytes) -> bytes:
        model = self._model(call)
        if call.endpoint is Endpoint.CHAT:
            return bedrock_chat_response(body, model, call.target.strict_open_ai_compliance)
        if call.endpoint is Endpoint.COMPLETIONS:
            return bedrock_completion_response(body, model)
        if call.endpoint is Endpoint.IMAGES:
            as_url, fmt = image_answer_format(call.body, call.target.override_params)
            return bedrock_image_response(body, model, as_url, fmt)
        as_base64 = _encoding_decoder.decode(call.body).encoding_format == "base64"
        return bedrock_embedding_response(body, model, as_base64)

    def stream(self, call: Call) -> BedrockStream:
        options = call.view.stream_options
        include_usage = bool(options and options.include_usage)
        return BedrockStream(
            self._model(call),
            include_usage,
            text_completion=call.endpoint is Endpoint.COMPLETIONS,
            strict=call.target.strict_open_ai_compliance,
        )

    def error(self, status: int, body: bytes) -> bytes:
        """Bedrock errors are ``{"message": ...}`` (rest-json); the type follows the status, which
        the gateway keeps (403 AccessDenied, 404 ResourceNotFound, 429 Throttling, ...)."""
        message = bedrock_error_message(body)
        if message is None:
            text = body.decode("utf-8", "replace").strip()
            message = text[:500] if text else f"upstream returned HTTP {status}"
        # 424 ModelErrorException / ModelStreamErrorException: the model failed, not the request.
        kind = "api_error" if status == 424 else type_for_status(status)
        return json_encoder.encode(ErrorBody(ErrorDetail(f"bedrock error: {message}", kind), self.name))
