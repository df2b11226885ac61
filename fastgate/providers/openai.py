"""OpenAI and every provider that speaks its wire format: the body goes through untouched.

Only what must change is re-encoded (``override_params``), so a parameter OpenAI adds tomorrow
reaches the upstream today.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate._transforms import SSERelay
from fastgate.errors import GatewayError, InvalidUpstreamAnswer
from fastgate.headers import HOP_BY_HOP
from fastgate.providers.base import (
    API_OPERATIONS,
    OPENAI_ENDPOINTS,
    RELAYED,
    Call,
    Endpoint,
    Provider,
    StreamMapper,
    UpstreamRequest,
    forward_headers,
)
from fastgate.providers.urls import under_host
from fastgate.schema.openai import json_encoder, object_decoder

_DONE = b"data: [DONE]\n\n"
#: Held once: on Python 3.11 each ``Endpoint.X`` goes through EnumType's ``__getattr__`` hook (~50 ns).
_MODELS, _PROXY = Endpoint.MODELS, Endpoint.PROXY
#: What an OpenAI-compatible API serves unless its row says otherwise: moderations are OpenAI's
#: own, and rerank (not an OpenAI route) only where the provider documents one.
COMPATIBLE_ENDPOINTS = OPENAI_ENDPOINTS - {Endpoint.MODERATIONS, Endpoint.RERANK}
#: Incoming headers the passthrough does not copy: hop-by-hop ones, and those the upstream request
#: gets anew (its own Host and length; no 100-continue; the gateway reads the answer's encoding).
NOT_FORWARDED = HOP_BY_HOP | {"host", "content-length", "expect", "accept-encoding"}
#: On a native ingress format, the client's credentials too (as the providers' clients send them):
#: read as the target's key already, never relayed beside or over it.
_NATIVE_NOT_FORWARDED = NOT_FORWARDED | {"authorization", "x-api-key", "api-key"}


class _AnswerProbe(msgspec.Struct):
    """What is checked of a 2xx body relayed untouched: that it is JSON, and not an error."""

    error: Any = None


_probe = msgspec.json.Decoder(_AnswerProbe).decode


def check_answer(body: bytes) -> None:
    """Refuse a 2xx body that is not a JSON object, or that carries an ``error`` object.

    One validating pass that builds nothing but the error (other fields are skipped), so a
    relayed body stays cheap; without it a truncated or HTML body would reach the client as a
    200 ``application/json`` answer its SDK cannot parse.
    """
    try:
        probe = _probe(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise InvalidUpstreamAnswer(
            f"upstream answered 200 with a body that is not a JSON object ({exc})"
        ) from None
    if probe.error is not None:
        raise InvalidUpstreamAnswer("upstream answered 200 with an error", error=body)


class PassthroughStream:
    """Relays OpenAI SSE event by event and makes sure it ends with ``[DONE]``."""

    __slots__ = ("_relay",)

    def __init__(self) -> None:
        self._relay = SSERelay()

    @property
    def done(self) -> bool:
        return self._relay.done

    def feed(self, chunk: bytes) -> bytes:
        return self._relay.feed(chunk)

    def finish(self) -> bytes:
        return b"" if self._relay.done else _DONE


def apply_overrides(body: bytes, overrides: dict[str, Any] | None) -> bytes:
    """Merge a config's ``override_params`` over the request body (the config wins)."""
    if not overrides:
        return body
    params = object_decoder.decode(body) if body else {}
    params.update(overrides)
    return json_encoder.encode(params)


class OpenAICompatible(Provider):
    """A provider reached at ``base_url`` with OpenAI's paths, bodies and SSE.

    ``base_url`` is where the provider documents its API (``https://api.together.xyz/v1``);
    ``version`` is the part of it that Portkey counts as the endpoint rather than the base
    (``/v1`` for ``together-ai``, whose ``getBaseURL`` is ``https://api.together.xyz``), so a
    custom host, which replaces Portkey's base, gets it appended.
    """

    def __init__(
        self,
        name: str,
        base_url: str | None,
        *,
        version: str = "",
        auth_header: str = "Authorization",
        auth_prefix: str = "Bearer ",
        add_provider_field: bool = True,
        endpoints: frozenset[Endpoint] = COMPATIBLE_ENDPOINTS,
        option_headers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.auth_header = auth_header
        self.auth_prefix = auth_prefix
        self.version = version
        self.endpoints = endpoints
        #: Provider options sent as headers (``openai_organization`` → ``OpenAI-Organization``).
        self.option_headers = option_headers or {}
        self.option_names = frozenset(self.option_headers)
        # Portkey adds ``"provider": "<slug>"`` to other providers' answers; spliced, not re-encoded.
        self._provider_suffix = f',"provider":"{name}"}}'.encode() if add_provider_field else b""

    def url(self, call: Call, path: str) -> str:
        """The upstream URL of an API path (``/chat/completions``, or a passthrough's path)."""
        host = call.target.custom_host
        if host:
            return under_host(host, self.version + path)
        if self.base_url is None:
            raise GatewayError(
                400, f"provider {self.name} needs a custom_host (x-portkey-custom-host)", param="custom_host"
            )
        return self.base_url + path

    def auth_headers(self, call: Call) -> dict[str, str]:
        headers: dict[str, str] = {}
        key = call.target.api_key
        if key:
            headers[self.auth_header] = self.auth_prefix + key
        options = call.target.options
        if options:  # mostly none: no look at each option header
            for option, header in self.option_headers.items():
                value = options.get(option)
                if value:
                    headers[header] = str(value)
        return headers

    def request_headers(self, call: Call) -> dict[str, str]:
        """Auth and options, then the client headers the target forwards (mostly none: no call
        for them)."""
        headers = self.auth_headers(call)
        return forward_headers(call, headers) if call.target.forward_headers else headers

    def request(self, call: Call) -> UpstreamRequest:
        if call.endpoint in RELAYED:
            return self.proxy_request(call)
        if call.endpoint in API_OPERATIONS:
            return self.operation_request(call)
        headers = self.request_headers(call)
        url = self.url(call, "/" + call.endpoint._value_)  # the value, without Enum's property
        if call.endpoint is _MODELS:
            return UpstreamRequest("GET", f"{url}?{call.query}" if call.query else url, headers, None)
        headers["Content-Type"] = "application/json"
        return UpstreamRequest("POST", url, headers, apply_overrides(call.body, call.target.override_params))

    def proxy_request(self, call: Call) -> UpstreamRequest:
        """Portkey's passthrough: every incoming header but ``x-portkey-*`` and hop-by-hop ones,
        which win over the provider's own auth (the client may bring its own).

        A native ingress format (Messages as the client sent them) goes with the target's
        credential alone: the client's was read as the target's key already, and a virtual
        key's or a config's secret is not to be replaced by whatever key the client holds
        (Claude Code sends one whether or not the gateway needs it)."""
        headers = self.auth_headers(call)
        dropped = NOT_FORWARDED if call.endpoint is _PROXY else _NATIVE_NOT_FORWARDED
        for name, value in call.headers.items():
            lower = name.lower()
            if lower.startswith("x-portkey-") or lower in dropped:
                continue
            headers[name] = value
        url = self.url(call, call.path)
        if call.query:
            url = f"{url}?{call.query}"
        body = call.body if call.method not in ("GET", "HEAD", "DELETE") or call.body else None
        return UpstreamRequest(call.method, url, headers, body or None, call.upload)

    def operation_request(self, call: Call) -> UpstreamRequest:
        """An API operation (files, batches, uploads, audio, image edits) at the path the client
        used, under the provider's base URL: its body as it came (an upload streamed, a JSON body
        with ``override_params`` merged in) with its ``Content-Type`` (a form's boundary)."""
        headers = self.request_headers(call)
        beta = call.headers.get("openai-beta")
        if beta and "OpenAI-Beta" not in headers:  # the SDKs' beta opt-in, as Portkey forwards it
            headers["OpenAI-Beta"] = beta
        content_type = call.headers.get("content-type")
        body: bytes | None = None
        if content_type:
            headers["Content-Type"] = content_type
            if call.upload is None and call.body:
                json = content_type.partition(";")[0].strip().lower() == "application/json"
                body = apply_overrides(call.body, call.target.override_params) if json else call.body
        upload = call.upload
        if upload is not None and call.target.override_params:
            upload = upload.with_fields(call.target.override_params)  # a form's fields, as JSON's
        url = self.url(call, call.path)
        return UpstreamRequest(
            call.method, f"{url}?{call.query}" if call.query else url, headers, body, upload
        )

    def realtime_request(self, call: Call) -> UpstreamRequest:
        """``GET {base}/realtime?model=...`` (OpenAI Realtime API, WebSocket), with the client's
        ``OpenAI-Beta`` and subprotocols but the key one (``openai-insecure-api-key.``), whose
        key is sent as the provider key instead."""
        headers = self.request_headers(call)
        beta = call.headers.get("openai-beta")
        if beta and "OpenAI-Beta" not in headers:
            headers["OpenAI-Beta"] = beta
        offered = [
            p.strip()
            for p in (call.headers.get("sec-websocket-protocol") or "").split(",")
            if p.strip() and not p.strip().startswith("openai-insecure-api-key.")
        ]
        if offered:
            headers["Sec-WebSocket-Protocol"] = ", ".join(offered)
        url = self.url(call, "/realtime")
        return UpstreamRequest("GET", f"{url}?{call.query}" if call.query else url, headers, None)

    def response(self, call: Call, body: bytes) -> bytes:
        check_answer(body)
        suffix = self._provider_suffix
        if suffix and body.endswith(b"}") and call.endpoint is not _PROXY:
            head = body[:-1].rstrip()
            return head + (suffix[1:] if head.endswith(b"{") else suffix)  # "{}": no comma
        return body

    def stream(self, call: Call) -> StreamMapper:
        return PassthroughStream()
