"""One attempt against one target: send, wait for the response head, hand back an Outcome.

Nothing is written to the client here, so a router can still try another target after a
failure; the winning outcome is written by ``respond``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

import msgspec

from fastgate.errors import GatewayError, InvalidUpstreamAnswer, error_body
from fastgate.gateway.realtime_session import MockPeer, Session
from fastgate.gateway.uploads import ReplayableBody
from fastgate.headers import HOP_BY_HOP
from fastgate.limits.usage import UsageView, body_usage
from fastgate.providers.base import (
    API_OPERATIONS,
    RELAYED,
    Call,
    Endpoint,
    LocalResponse,
    Provider,
    StreamMapper,
    UpstreamRequest,
)
from fastgate.providers.openai import check_answer
from fastgate.upstream.connection import UpstreamResponse
from fastgate.upstream.pool import UpstreamPool
from fastgate.upstream.websocket import HandshakeRefused, open_upstream

_REALTIME = Endpoint.REALTIME
#: Upstream calls of one fanned-out request in flight at once.
_FAN_OUT_CONCURRENCY = 8

#: Upstream response headers never relayed: hop-by-hop, or rewritten by the gateway.
DROPPED_HEADERS = HOP_BY_HOP | {
    "content-length",
    "content-encoding",
    "content-type",
    "date",
    "server",
    "set-cookie",
    "alt-svc",
}


class StreamWatcher(Protocol):
    """Sees a stream on its way to the client (``pipeline.Stage.watch``); watchers are chained,
    each fed what the one before it let through."""

    def feed(self, out: bytes) -> bytes:
        """What to write instead of ``out`` (a watcher may drop what it added, or translate)."""
        ...

    async def end(self) -> bytes:
        """The stream finished cleanly; anything left to write."""
        ...


class Outcome(msgspec.Struct, kw_only=True):
    """The answer of one target, before it is written to the client."""

    status: int
    provider: Provider
    call: Call
    headers: dict[str, str] = {}
    #: A complete body (JSON), already in OpenAI's shape.
    body: bytes | None = None
    #: An open upstream stream and the mapper that turns it into OpenAI SSE.
    upstream: UpstreamResponse | None = None
    events: AsyncIterator[bytes] | None = None
    #: A stream's first chunk, read ahead (see ``_read_ahead``): written before ``events``.
    first: bytes = b""
    mapper: StreamMapper | None = None
    content_type: str = "application/json"
    retries: int = 0
    #: False when no answer came from the upstream (no connection, timed out, or a stream that
    #: ended before its first byte): a fallback moves on whatever its status codes say.
    reached: bool = True
    #: An answer from the response cache (no upstream was called).
    from_cache: bool = False
    #: The upstream response behind ``events`` once its first chunk was read ahead.
    held: UpstreamResponse | None = None
    #: See a stream's output on its way to the client, in stage order (``pipeline.Stage.watch``).
    watchers: tuple[StreamWatcher, ...] = ()
    #: What the answer says of its model and usage, read once for every stage that needs it
    #: (``answer_usage``; for a stream, by the first watcher that meets its usage chunk).
    usage: UsageView | None = None

    def answer_usage(self) -> UsageView | None:
        """The model and usage of a complete 2xx JSON answer, decoded on first use (None for
        a stream, an error, or the passthrough's answer, which is the provider's own format)."""
        view = self.usage
        if (
            view is None
            and self.body is not None
            and 200 <= self.status < 300
            and self.call.endpoint not in RELAYED
        ):
            view = self.usage = body_usage(self.body)
        return view

    #: Relayed as it arrives, not read whole: the passthrough's answers, and an API operation's
    #: 2xx answer that is not JSON (audio, a file's content, transcription events).
    relayed: bool = False
    #: A Realtime session whose upstream side is open (``gateway/realtime.py``).
    session: Session | None = None
    #: For an answer relayed as it comes: the last event to write, given why, if the upstream
    #: breaks off midway (an ingress format's error event); None cuts the client's connection.
    on_break: Callable[[str], bytes] | None = None

    def release(self) -> None:
        """Drop an unused open stream or session (a router moved on to another target)."""
        if self.session is not None:
            self.session.close()
            self.session = None
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        if self.held is not None:
            self.held.close()
            self.held = None


#: Content types that are not a stream, whatever was asked for (every provider streams SSE or AWS
#: event-stream): such an answer to a stream request is read whole and reported as a failure.
_NOT_A_STREAM = frozenset({"application/json", "text/html", "text/plain"})


class _NoFirstByte(Exception):
    """The upstream said 200, then its stream ended before sending anything."""


def timeout_outcome(provider: Provider, call: Call, timeout_ms: int) -> Outcome:
    # Portkey's shape for request_timeout (408, no provider field), so clients that match on it work.
    body = error_body(
        408, f"Request exceeded the timeout sent in the request: {timeout_ms}ms", type="timeout_error"
    )
    return Outcome(status=408, provider=provider, call=call, body=body, reached=False)


def failure_outcome(provider: Provider, call: Call, status: int, message: str) -> Outcome:
    kind = "timeout_error" if status == 504 else "api_error"
    return Outcome(
        status=status,
        provider=provider,
        call=call,
        body=error_body(status, f"{provider.name} error: {message}", type=kind, provider=provider.name),
        reached=False,
    )


def attempt(pool: UpstreamPool, provider: Provider, call: Call, stream: bool) -> Awaitable[Outcome]:
    """Run one upstream call; upstream failures become outcomes (502/504/408), never exceptions.

    ``request_timeout`` bounds the wait for the answer to start: the response head, as Portkey's
    does, and for a stream also its first chunk, so a stream that stalls or breaks before
    reaching the client can still be retried or fall back to the next target. The configured
    read timeout bounds every wait for bytes after that.
    """
    timeout_ms = call.target.request_timeout
    if timeout_ms:
        return _attempt_within(pool, provider, call, stream, timeout_ms)
    return _attempt(pool, provider, call, stream, None)  # no timer to arm, no coroutine layer for one


async def _attempt_within(
    pool: UpstreamPool, provider: Provider, call: Call, stream: bool, timeout_ms: int
) -> Outcome:
    deadline = asyncio.timeout(timeout_ms / 1000)
    try:
        async with deadline:
            return await _attempt(pool, provider, call, stream, deadline)
    except TimeoutError:  # the deadline's (``_attempt`` makes the upstream's own a 504)
        return timeout_outcome(provider, call, timeout_ms)


async def _attempt(
    pool: UpstreamPool, provider: Provider, call: Call, stream: bool, deadline: asyncio.Timeout | None
) -> Outcome:
    """The answer's start (its head, and for a stream its first chunk), then a whole answer's
    body; ``deadline`` (``request_timeout``) is lifted once the answer has started."""
    try:
        upload = call.upload
        if upload is not None and isinstance(upload, ReplayableBody) and upload.replayable:
            upload.rewind()  # another attempt: the body from its first byte
        if call.endpoint is _REALTIME:
            outcome = await _open_session(pool, provider, call)
        elif provider.local:
            outcome = _local_outcome(provider, call, await provider.respond(call))
        elif (requests := provider.fan_out(call)) is not None:
            outcome = _local_outcome(provider, call, await _gather(pool, provider, call, requests))
        else:
            req = await provider.request_async(call, pool) if provider.needs_io else provider.request(call)
            if call.traceparent is not None:
                req.headers["traceparent"] = call.traceparent  # W3C Trace Context §3.2: this attempt's span
            head = await pool.request(req.method, req.url, req.headers, req.body, req.upload)
            outcome = _head_outcome(provider, call, head, stream)
        if outcome.mapper is not None:
            await _read_ahead(outcome)
        elif outcome.relayed and outcome.upstream is not None and call.endpoint in API_OPERATIONS:
            # Its first piece before anything is written: until then another target can answer,
            # and the head goes out with it in one write.
            await _read_ahead(outcome, empty_ok=True)
        if deadline is not None:
            deadline.reschedule(None)
        resp = outcome.upstream
        if resp is not None and outcome.mapper is None and not outcome.relayed:
            # Mostly the whole answer came with its head: no read to wait for.
            body = resp.received_body()
            _settle_body(outcome, stream, body if body is not None else await resp.read())
    except TimeoutError:
        outcome = failure_outcome(provider, call, 504, "upstream timed out")
    except _NoFirstByte:
        outcome = failure_outcome(provider, call, 502, "stream ended before its first byte")
    except OSError as exc:
        outcome = failure_outcome(provider, call, 502, f"upstream connection failed ({exc})")
    return outcome


async def _open_session(pool: UpstreamPool, provider: Provider, call: Call) -> Outcome:
    """A Realtime session's upstream side, opened up to its handshake's 101 (the upstream's
    refusal is the outcome, as any answer's status would be)."""
    if provider.local:
        model = call.view.model or "gpt-realtime"
        session = Session(MockPeer(model), "realtime", pool.max_frame, pool.websocket_idle_s)
        return Outcome(status=101, provider=provider, call=call, session=session)
    req = provider.realtime_request(call)
    headers = dict(req.headers)
    offered = [p.strip() for p in headers.pop("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    url = "ws" + req.url[4:] if req.url.startswith("http") else req.url
    try:
        end = await open_upstream(
            pool.resolver,
            url,
            headers,
            offered,
            connect_timeout=pool.connect_timeout,
            max_size=pool.max_frame,
        )
    except HandshakeRefused as exc:
        answer = exc.response
        status = answer.status_code if answer.status_code >= 300 else 502
        body = bytes(answer.body or b"")
        return Outcome(
            status=status,
            provider=provider,
            call=call,
            body=_without_secrets(provider.error(status, body), call),
        )
    session = Session(end, end.ws.subprotocol, pool.max_frame, pool.websocket_idle_s)
    return Outcome(status=101, provider=provider, call=call, session=session)


async def _gather(
    pool: UpstreamPool, provider: Provider, call: Call, requests: list[UpstreamRequest]
) -> LocalResponse:
    """Run a fanned-out call's requests, a few at a time; the first failure is the answer."""
    gate = asyncio.Semaphore(_FAN_OUT_CONCURRENCY)

    async def one(req: UpstreamRequest) -> tuple[int, bytes]:
        async with gate:
            resp = await pool.request(req.method, req.url, req.headers, req.body)
            return resp.status, await resp.read()

    answers = await asyncio.gather(*(one(req) for req in requests))
    for status, body in answers:
        if status >= 300:
            return LocalResponse(status, body)
    return LocalResponse(200, provider.combine(call, [body for _, body in answers]))


def _head_outcome(provider: Provider, call: Call, resp: UpstreamResponse, stream: bool) -> Outcome:
    """The outcome as far as the response head tells; the body is still to be read."""
    outcome = Outcome(
        status=resp.status,
        provider=provider,
        call=call,
        headers=resp.headers_except(DROPPED_HEADERS),
        upstream=resp,
    )
    if call.endpoint in RELAYED:
        # Passthrough: the answer is relayed as it comes, streamed or not, errors included.
        outcome.content_type = resp.content_type
        outcome.relayed = True
    elif stream and resp.status < 300 and resp.content_type not in _NOT_A_STREAM:
        outcome.mapper = provider.stream(call)
        outcome.content_type = "text/event-stream"
    elif resp.content_type != "application/json" and call.endpoint in API_OPERATIONS and resp.status < 300:
        outcome.content_type = resp.content_type
        outcome.relayed = True
    return outcome


def _settle_body(outcome: Outcome, stream: bool, body: bytes) -> None:
    """A complete answer, read: mapped (or its error) to OpenAI's shape."""
    resp = outcome.upstream
    assert resp is not None
    outcome.upstream = None
    if 300 <= outcome.status < 400:
        _redirected(outcome)
    elif outcome.status >= 300:
        outcome.body = _without_secrets(outcome.provider.error(outcome.status, body), outcome.call)
    elif stream:
        # Asked for a stream, got a document (an error page, or a JSON error under a 200).
        reason = f"upstream answered a stream request with {resp.content_type}, not a stream"
        _invalid_answer(outcome, InvalidUpstreamAnswer(reason, error=body))
    else:
        _map_answer(outcome, body)


_SECRET_OPTION = ("key", "secret", "token", "password")


def _without_secrets(body: bytes, call: Call) -> bytes:
    """An error body with the credentials this call sent cut out.

    Some upstreams quote the key they were sent in their error message ("Incorrect API key
    provided: sk-..."); relayed as is, it would reach logs and dashboards that store errors.
    """
    target = call.target
    # A virtual key's secret is cut out (and labelled as such) by access.settle.
    secrets = [target.api_key] if target.api_key and not target.virtual_key else []
    secrets += [
        v for k, v in target.options.items() if isinstance(v, str) and any(s in k for s in _SECRET_OPTION)
    ]
    for secret in secrets:
        if len(secret) >= 8:
            body = body.replace(secret.encode(), b"[REDACTED]")
    return body


def _redirected(outcome: Outcome) -> None:
    """An API call answered with a redirect: a 502, and the ``Location`` is not passed on.

    Redirects are never followed (the target was judged by the SSRF policy, the redirect's
    target was not); relaying one would invite the client's SDK to follow it instead.
    """
    provider = outcome.provider
    message = f"{provider.name} error: upstream answered with a redirect ({outcome.status}), not followed"
    outcome.status = 502
    outcome.headers = {k: v for k, v in outcome.headers.items() if k.lower() != "location"}
    outcome.body = error_body(502, message, type="api_error", provider=provider.name)


def _map_answer(outcome: Outcome, body: bytes) -> None:
    try:
        if body.find(b'"error"') >= 0:
            # An error object under a 2xx: a mapping would read it as an empty answer. The
            # substring test keeps the extra look off the common path (``find``, not ``in``:
            # docs/architecture.md, "The compiled hot path").
            check_answer(body)
        outcome.body = outcome.provider.response(outcome.call, body)
    except ValueError as exc:  # not JSON, wrong shape, bad UTF-8, or an error under a 200
        _invalid_answer(outcome, exc)
    except GatewayError as exc:  # a refusal under a 200: every image filtered, say (images.pxi)
        outcome.status = exc.status
        outcome.body = exc.body()


def _invalid_answer(outcome: Outcome, exc: ValueError) -> None:
    """A 2xx answer that cannot be relayed becomes a 502 saying why (and what the upstream said)."""
    provider = outcome.provider
    outcome.status = 502
    error = exc.error if isinstance(exc, InvalidUpstreamAnswer) else None
    if error is not None and error.lstrip().startswith(b"{"):
        outcome.body = _without_secrets(provider.error(502, error), outcome.call)
    else:
        message = f"{provider.name} error: {exc}"
        outcome.body = error_body(502, message, type="api_error", provider=provider.name)


async def _read_ahead(outcome: Outcome, *, empty_ok: bool = False) -> None:
    """Read a stream's first chunk before anything is written to the client.

    Until that chunk arrives the target can still be given up for the next one (Portkey decides
    on the status line alone, so a stream that breaks at once reaches the client as a failure).
    ``empty_ok``: an answer relayed as it is may be empty.
    """
    resp = outcome.upstream
    rest = resp.chunks() if resp is not None else outcome.events
    assert rest is not None
    try:
        try:
            first = await rest.__anext__()
        except StopAsyncIteration:
            first = b""
        if not first and not empty_ok:
            raise _NoFirstByte
    except BaseException:
        outcome.release()
        raise
    outcome.first, outcome.events = first, rest
    outcome.held, outcome.upstream = resp, None


def _local_outcome(provider: Provider, call: Call, local: LocalResponse) -> Outcome:
    headers = {k: v for k, v in local.headers.items() if k.lower() not in DROPPED_HEADERS}
    if local.status >= 300:
        return Outcome(
            status=local.status,
            provider=provider,
            call=call,
            headers=headers,
            body=provider.error(local.status, local.body),
        )
    content_type = local.headers.get("content-type", "application/json")
    if call.endpoint in API_OPERATIONS and content_type != "application/json":
        relayed = Outcome(status=local.status, provider=provider, call=call, headers=headers)
        relayed.content_type, relayed.relayed = content_type, True
        if local.events is None:
            relayed.body = local.body
        else:
            relayed.events = local.events
        return relayed
    if local.events is not None:
        return Outcome(
            status=local.status,
            provider=provider,
            call=call,
            headers=headers,
            events=local.events,
            mapper=provider.stream(call),
            content_type="text/event-stream",
        )
    outcome = Outcome(status=local.status, provider=provider, call=call, headers=headers)
    _map_answer(outcome, local.body)
    return outcome
