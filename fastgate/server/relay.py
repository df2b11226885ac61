"""One attempt against one target: send, wait for the response head, hand back an Outcome.

Nothing is written to the client here, so a router can still try another target after a
failure; the winning outcome is written by ``respond``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec

from fastgate.errors import error_body
from fastgate.providers.base import Call, Endpoint, LocalResponse, Provider, StreamMapper
from fastgate.server.http1 import UpstreamPool, UpstreamResponse, UpstreamTimeout

#: Upstream response headers never relayed: hop-by-hop, or rewritten by the gateway.
DROPPED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "content-type",
        "date",
        "server",
        "set-cookie",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "alt-svc",
    }
)


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
    mapper: StreamMapper | None = None
    content_type: str = "application/json"
    retries: int = 0

    def release(self) -> None:
        """Drop an unused open stream (a router moved on to another target)."""
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


def relayed_headers(headers: list[tuple[str, str]]) -> dict[str, str]:
    return {k: v for k, v in headers if k.lower() not in DROPPED_HEADERS}


def timeout_outcome(provider: Provider, call: Call, timeout_ms: int) -> Outcome:
    # Portkey's shape for request_timeout (408, no provider field), so clients that match on it work.
    body = error_body(
        408, f"Request exceeded the timeout sent in the request: {timeout_ms}ms", type="timeout_error"
    )
    return Outcome(status=408, provider=provider, call=call, body=body)


def failure_outcome(provider: Provider, call: Call, status: int, message: str) -> Outcome:
    kind = "timeout_error" if status == 504 else "api_error"
    return Outcome(
        status=status,
        provider=provider,
        call=call,
        body=error_body(status, f"{provider.name} error: {message}", type=kind, provider=provider.name),
    )


async def attempt(pool: UpstreamPool, provider: Provider, call: Call, stream: bool) -> Outcome:
    """Run one upstream call; upstream failures become outcomes (502/504/408), never exceptions.

    ``request_timeout`` bounds the wait for the response to start (its head), as Portkey's does;
    the configured read timeout bounds every wait for bytes after that.
    """
    timeout_ms = call.target.request_timeout
    try:
        if timeout_ms:
            try:
                async with asyncio.timeout(timeout_ms / 1000):
                    head = await _start(pool, provider, call)
            except UpstreamTimeout:
                raise
            except TimeoutError:
                return timeout_outcome(provider, call, timeout_ms)
        else:
            head = await _start(pool, provider, call)
        if isinstance(head, LocalResponse):
            return _local_outcome(provider, call, head)
        return await _finish(provider, call, head, stream)
    except TimeoutError:
        return failure_outcome(provider, call, 504, "upstream timed out")
    except OSError as exc:
        return failure_outcome(provider, call, 502, f"upstream connection failed ({exc})")


async def _start(pool: UpstreamPool, provider: Provider, call: Call) -> UpstreamResponse | LocalResponse:
    if provider.local:
        return await provider.respond(call)
    req = provider.request(call)
    return await pool.request(req.method, req.url, req.headers, req.body)


async def _finish(provider: Provider, call: Call, resp: UpstreamResponse, stream: bool) -> Outcome:
    headers = relayed_headers(resp.headers)
    status = resp.status
    if call.endpoint is Endpoint.PROXY:
        # Passthrough: the answer is relayed as it comes, streamed or not, errors included.
        return Outcome(
            status=status,
            provider=provider,
            call=call,
            headers=headers,
            upstream=resp,
            content_type=resp.content_type,
        )
    if status >= 300 or not stream:
        body = await resp.read()
        if status >= 300:
            return Outcome(
                status=status,
                provider=provider,
                call=call,
                headers=headers,
                body=provider.error(status, body),
            )
        return Outcome(
            status=status, provider=provider, call=call, headers=headers, body=provider.response(call, body)
        )
    return Outcome(
        status=status,
        provider=provider,
        call=call,
        headers=headers,
        upstream=resp,
        mapper=provider.stream(call),
        content_type="text/event-stream",
    )


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
    return Outcome(
        status=local.status,
        provider=provider,
        call=call,
        headers=headers,
        body=provider.response(call, local.body),
    )
