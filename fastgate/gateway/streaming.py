"""Writing a streamed answer: each upstream read mapped and flushed to the client at once.

A failure of the upstream after the first byte cannot change the status any more, so it ends
the stream with an OpenAI-shaped error event and ``[DONE]``; so does a stream still running when
the server's shutdown grace period ends. A client that goes away cancels the handler, which
closes the upstream response and frees its connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastgate.errors import error_body
from fastgate.gateway.relay import Outcome, StreamWatcher
from fastgate.server.messages import Request

_DONE = b"data: [DONE]\n\n"
UPSTREAM_FAILURES = (OSError, TimeoutError, ValueError)


def error_event(message: str, provider: str | None) -> bytes:
    return b"data: " + error_body(502, message, type="api_error", provider=provider) + b"\n\n" + _DONE


_SHUT_DOWN = error_event(
    "fastgate is shutting down: the stream was ended before the upstream finished it", None
)


async def write_stream(request: Request, outcome: Outcome, headers: dict[str, str]) -> None:
    """Relay the stream; the head goes out with the first mapped read, and the last read with
    the end of the body, so an upstream that sent everything at once costs one write."""
    mapper = outcome.mapper
    assert mapper is not None
    if outcome.upstream is not None:
        source: AsyncIterator[bytes] = outcome.upstream.chunks()
    else:
        assert outcome.events is not None
        source = outcome.events
    headers["Cache-Control"] = "no-cache"
    headers["X-Accel-Buffering"] = "no"
    watchers = outcome.watchers
    started = False
    chunk = outcome.first  # already read ahead: no wait (and no iterator layer) for it
    try:
        pull = source.__anext__
        clean = True
        while True:
            try:
                if not chunk:
                    chunk = await pull()
                out = mapper.feed(chunk)
                chunk = b""
            except StopAsyncIteration:
                out = mapper.finish()
                if watchers:
                    out = _watched(watchers, out)
                break
            except UPSTREAM_FAILURES as exc:
                name = outcome.provider.name
                out = error_event(f"{name} error: stream interrupted ({type(exc).__name__})", name)
                if watchers:  # an ingress format's watcher words the error its own way
                    out = _watched(watchers, out)
                clean = False
                break
            if watchers:
                out = _watched(watchers, out)
            if mapper.done:
                break
            if not started:
                await request.start_stream(outcome.status, headers, "text/event-stream", out)
                started = True
            elif out:
                await request.send(out)
        if watchers and clean:
            out += await _ended(watchers)
        if started:
            request.end_stream(out)
        else:  # the whole stream came in one read: one write
            await request.start_stream(outcome.status, headers, "text/event-stream", out, end=True)
    except asyncio.CancelledError:
        if started and request.shutting_down:  # the grace period is over: say so, then [DONE]
            request.end_stream(_SHUT_DOWN)
        raise
    finally:
        outcome.release()


async def pipe_raw(request: Request, outcome: Outcome, headers: dict[str, str]) -> None:
    """Relay an answer as it comes (the passthrough, a native ingress format), its watchers
    seeing each piece; an upstream that breaks midway cuts the client's connection, since a raw
    relay has no error event to send: the client sees an incomplete body, not a clean end."""
    upstream = outcome.upstream
    assert upstream is not None
    chunks = upstream.chunks()
    watchers = outcome.watchers
    try:
        await request.start_stream(outcome.status, headers, outcome.content_type)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except UPSTREAM_FAILURES:
                request.abort()
                return
            if watchers:
                chunk = _watched(watchers, chunk)
            await request.send(chunk)
        request.end_stream(await _ended(watchers) if watchers else b"")
    finally:
        outcome.release()


def _watched(watchers: tuple[StreamWatcher, ...], out: bytes) -> bytes:
    for watcher in watchers:
        out = watcher.feed(out)
    return out


async def _ended(watchers: tuple[StreamWatcher, ...]) -> bytes:
    """The watchers' last words, each passed through the watchers after it."""
    tail = b""
    for watcher in watchers:
        tail = (watcher.feed(tail) if tail else b"") + await watcher.end()
    return tail
