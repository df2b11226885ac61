"""The Provider interface: values in, values out, no aiohttp.

The server hands a provider a :class:`Call` and gets back an :class:`UpstreamRequest` to send,
then hands it the upstream's status and bytes and gets OpenAI-shaped bytes back. Streams go
through a :class:`StreamMapper`, fed network reads as they arrive.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import msgspec

from fastgate.errors import ErrorBody, ErrorDetail, GatewayError, type_for_status
from fastgate.schema.openai import RawContentChatRequest, RequestView


class Endpoint(enum.Enum):
    #: By identity (members are singletons): Enum's own hashes the name in Python, on every
    #: ``endpoint in provider.endpoints`` of the request path.
    __hash__ = object.__hash__

    CHAT = "chat/completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    MODELS = "models"
    PROXY = "proxy"
    # OpenAI API operations relayed as they are (``API_OPERATIONS``), and the Realtime API.
    FILES = "files"
    BATCHES = "batches"
    UPLOADS = "uploads"
    SPEECH = "audio/speech"
    TRANSCRIPTIONS = "audio/transcriptions"
    TRANSLATIONS = "audio/translations"
    IMAGE_EDITS = "images/edits"
    IMAGE_VARIATIONS = "images/variations"
    REALTIME = "realtime"
    # Mapped per provider where it has the operation (image models, rerankers), else refused.
    IMAGES = "images/generations"
    RERANK = "rerank"
    MODERATIONS = "moderations"
    #: Ingress formats a provider may speak natively (``Provider.endpoints`` says which): the
    #: request goes as it came, its answer comes back as it is. Elsewhere they go through the
    #: chat pivot (``fastgate/gateway/stages/messages.py``).
    MESSAGES = "messages"
    MESSAGES_COUNT = "messages/count_tokens"
    #: ``fastgate/gateway/stages/responses.py``.
    RESPONSES = "responses"


#: OpenAI API operations whose bodies and answers go through as they are, at the path the client
#: used (``Call.path``): uploads streamed, answers relayed as they arrive (audio, file content,
#: transcription events) or, when JSON, read whole.
API_OPERATIONS = frozenset(
    {
        Endpoint.FILES,
        Endpoint.BATCHES,
        Endpoint.UPLOADS,
        Endpoint.SPEECH,
        Endpoint.TRANSCRIPTIONS,
        Endpoint.TRANSLATIONS,
        Endpoint.IMAGE_EDITS,
        Endpoint.IMAGE_VARIATIONS,
    }
)
#: Operations on stored objects rather than a model: a key limited to models may still use them.
MODELLESS = frozenset({Endpoint.FILES, Endpoint.BATCHES, Endpoint.UPLOADS})

#: Anthropic's Messages API, natively.
MESSAGES_INGRESS = frozenset({Endpoint.MESSAGES, Endpoint.MESSAGES_COUNT})
#: The ingress formats' native endpoints: a provider serves them only where it says so.
NATIVE_INGRESS = MESSAGES_INGRESS | {Endpoint.RESPONSES}
#: Endpoints whose answers are relayed as they come, unmapped: the passthrough and the native
#: ingress formats.
RELAYED = frozenset({Endpoint.PROXY}) | NATIVE_INGRESS
#: What an OpenAI-shaped provider serves unless it says otherwise.
OPENAI_ENDPOINTS = frozenset(Endpoint) - NATIVE_INGRESS


class Target(msgspec.Struct, kw_only=True):
    """One resolved leaf of a routing config: which provider, with which credentials and options."""

    provider: str
    api_key: str | None = None
    custom_host: str | None = None
    override_params: dict[str, Any] | None = None
    forward_headers: tuple[str, ...] = ()
    request_timeout: int | None = None
    strict_open_ai_compliance: bool = True
    #: Provider-specific options (``aws_region``, ``resource_name``, ``anthropic_version`` ...).
    options: dict[str, Any] = {}
    #: Where this target sits in the config, for ``x-portkey-last-used-option-index``.
    path: str = "config"
    #: A virtual key's slug: resolved on the server to provider, secret and options.
    virtual_key: str | None = None


class Call(msgspec.Struct, kw_only=True):
    """Everything a provider needs to build one upstream request."""

    endpoint: Endpoint
    target: Target
    body: bytes
    #: The request view, or the whole request (see ``Provider.chat_request_decoder``).
    view: RequestView | RawContentChatRequest
    method: str = "POST"
    #: For the passthrough route: the path after ``/v1`` and the raw query string.
    path: str = ""
    query: str = ""
    #: Incoming headers a provider may read (forward headers, passthrough).
    headers: Mapping[str, str] = {}
    #: The W3C ``traceparent`` sent upstream with this attempt (while tracing is on).
    traceparent: str | None = None
    #: An upload's body, streamed as the client sends it (``body`` is then empty).
    upload: BodySource | None = None


class BodySource(Protocol):
    """A request body read piece by piece (``gateway/uploads.py``)."""

    #: The Content-Length, or -1 (unknown: sent chunked).
    length: int

    async def read(self) -> bytes | None: ...

    def wake(self) -> None: ...

    def attach(self, sink: Callable[[bytes], None]) -> bool:
        """Push pieces to ``sink`` as they arrive from now on, if it can (else read on)."""
        ...

    def detach(self) -> None: ...

    def throttle(self, held: bool) -> None:
        """The attached sink cannot take more now (or can again)."""
        ...

    def with_fields(self, values: Mapping[str, object]) -> BodySource:
        """The body with these leading multipart fields' values replaced (``override_params``)."""
        ...


class UpstreamRequest(msgspec.Struct):
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None
    #: A body streamed to the upstream as it is read, in place of ``body``.
    upload: BodySource | None = None


class StreamMapper(Protocol):
    """Turns an upstream stream into OpenAI ``chat.completion.chunk`` SSE, read by read."""

    @property
    def done(self) -> bool: ...

    def feed(self, chunk: bytes) -> bytes: ...

    def finish(self) -> bytes:
        """What to send when the upstream ended cleanly (the ``[DONE]`` it may have left out)."""
        ...


class UpstreamReply(Protocol):
    status: int

    async def read(self) -> bytes: ...


class UpstreamClient(Protocol):
    """The pooled upstream client, as a provider's ``request_async`` may use it (a token fetch)."""

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None
    ) -> UpstreamReply: ...


class LocalResponse(msgspec.Struct):
    """An answer produced in-process (the mock provider): no network hop."""

    status: int
    body: bytes = b""
    events: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = {}


def forward_headers(call: Call, headers: dict[str, str]) -> dict[str, str]:
    """Add the client headers the target forwards (``forward_headers``); they win over the
    provider's own, as in Portkey."""
    for name in call.target.forward_headers:
        value = call.headers.get(name)
        if value is not None:
            headers[name] = value
    return headers


_error_decoder = msgspec.json.Decoder(dict[str, Any])
_encode = msgspec.json.Encoder().encode


def _as_str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


class Provider:
    """Base class. Subclasses set ``name`` and override what differs from OpenAI's behaviour."""

    name: str = ""
    #: Endpoints this provider serves; others are a 400 before any network traffic.
    endpoints: frozenset[Endpoint] = OPENAI_ENDPOINTS
    #: The provider options it reads (``Target.options``): a virtual key's ``--option`` names
    #: are checked against them, so a misspelt one is refused instead of silently ignored.
    option_names: frozenset[str] = frozenset()
    #: Answered in-process (``respond``) rather than over HTTP (``request``).
    local: bool = False
    #: Building the request needs an awaited step first (a token exchange): ``request_async``.
    needs_io: bool = False
    #: A provider whose chat mapping decodes the whole body: when it is a request's only target,
    #: the handler decodes the body with this in place of the request view (``Call.view`` is
    #: then the whole request), so the body is decoded once.
    chat_request_decoder: msgspec.json.Decoder[Any] | None = None
    #: A provider whose chat mapping reads fastgate's extensions of the chat body (Portkey's
    #: ``thinking`` and ``top_k``, an assistant turn's signed ``content_blocks``, a part's
    #: ``cache_control``): an ingress format's pivot hands it them. A body relayed to an
    #: OpenAI-compatible upstream keeps to OpenAI's own fields, which strict upstreams check.
    chat_extensions: bool = False

    def speaks(self, endpoint: Endpoint, model: str) -> bool:
        """Whether this provider serves an ingress format's native ``endpoint`` for ``model``
        (else the format goes through the chat pivot)."""
        return endpoint in self.endpoints

    def request(self, call: Call) -> UpstreamRequest:
        raise NotImplementedError

    def fan_out(self, call: Call) -> list[UpstreamRequest] | None:
        """Several upstream calls for one answer, for an API that takes one input per call
        (Bedrock's Titan embeddings); None for the usual single call. ``combine`` joins the answers."""
        return None

    def combine(self, call: Call, bodies: list[bytes]) -> bytes:
        """The answers of ``fan_out``'s calls, in order, as one body that ``response`` maps."""
        raise NotImplementedError

    async def request_async(self, call: Call, client: UpstreamClient) -> UpstreamRequest:
        """``request`` for ``needs_io`` providers; ``client`` is the pooled upstream client."""
        raise NotImplementedError

    async def respond(self, call: Call) -> LocalResponse:
        raise NotImplementedError

    def realtime_request(self, call: Call) -> UpstreamRequest:
        """The Realtime API's WebSocket (an ``https`` URL, opened as ``wss``), for providers
        that serve ``Endpoint.REALTIME``."""
        raise self.unsupported(Endpoint.REALTIME)

    def response(self, call: Call, body: bytes) -> bytes:
        """A 2xx upstream body in OpenAI's shape."""
        return body

    def stream(self, call: Call) -> StreamMapper:
        raise NotImplementedError

    def error(self, status: int, body: bytes) -> bytes:
        """A non-2xx upstream body as an OpenAI error with ``provider`` added.

        The upstream status is kept by the caller; the message says which provider spoke.
        """
        message: str | None = None
        type_ = param = code = None
        try:
            parsed = _error_decoder.decode(body)
        except msgspec.DecodeError:
            parsed = None
        if isinstance(parsed, dict):
            err = parsed.get("error", parsed)
            if isinstance(err, dict):
                message = _as_str(err.get("message") or err.get("detail"))
                type_, param, code = (_as_str(err.get(k)) for k in ("type", "param", "code"))
            elif isinstance(err, str):
                message = err
        if message is None:
            text = body.decode("utf-8", "replace").strip()
            message = text[:500] if text else f"upstream returned HTTP {status}"
        detail = ErrorDetail(f"{self.name} error: {message}", type_ or type_for_status(status), param, code)
        return _encode(ErrorBody(detail, self.name))

    #: What to use instead of an endpoint this provider does not serve, said in its refusal.
    instead: Mapping[Endpoint, str] = {}

    def unsupported(self, endpoint: Endpoint) -> GatewayError:
        hint = self.instead.get(endpoint)
        message = f"{endpoint.value} is not supported by {self.name}" + (f": {hint}" if hint else "")
        return GatewayError(400, message, code="unsupported_endpoint")
