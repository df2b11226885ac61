"""Writing a streamed answer: each upstream read mapped and flushed to the client at once.

After its first read, an upstream's stream is mapped and written from the upstream connection's
own reads (``UpstreamResponse.relay``): a model's stream is hundreds of small reads, tens of
milliseconds apart, and a task switch, a future and a few coroutine layers for each of them were
most of what a stream cost the gateway (``bench/streams.py``). The handler's task waits only for
the end of the stream, or for a client that stopped reading.

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
from fastgate.providers.base import StreamMapper
from fastgate.server.messages import Request
from fastgate.upstream.connection import UpstreamResponse

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
    held = outcome.held
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
                out = _interrupted(outcome, exc)
                clean = False
                break
            if watchers:
                out = _watched(watchers, out)
            if mapper.done:
                break
            if not started:
                await request.start_stream(outcome.status, headers, "text/event-stream", out)
                started = True
                if held is not None:  # an upstream's: the rest is relayed from its reads
                    out, clean = await _relay_rest(request, outcome, held, mapper)
                    break
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


class _Sink:
    """Maps and writes each upstream read, called from the upstream connection's
    ``data_received``: so it never raises, and notes why it stopped taking reads instead."""

    __slots__ = ("broken", "done", "failed", "last", "mapper", "request", "watchers")

    def __init__(self, request: Request, mapper: StreamMapper, watchers: tuple[StreamWatcher, ...]) -> None:
        self.request = request
        self.mapper = mapper
        self.watchers = watchers
        #: The mapper saw the stream's end; what it made of the last read.
        self.done = False
        self.last = b""
        #: The upstream's bytes could not be mapped; the client could not be written to (or a
        #: watcher failed): raised in the handler's task.
        self.failed: Exception | None = None
        self.broken: Exception | None = None

    def __call__(self, chunk: bytes) -> bool:
        """Whether to go on reading now (False: the stream ended, failed, or the client stopped
        taking writes)."""
        try:
            out = self.mapper.feed(chunk)
        except UPSTREAM_FAILURES as exc:
            self.failed = exc
            return False
        try:
            if self.watchers:
                out = _watched(self.watchers, out)
            if self.mapper.done:
                self.done, self.last = True, out
                return False
            return not self.request.write(out)
        except Exception as exc:
            self.broken = exc
            return False


async def _relay_rest(
    request: Request, outcome: Outcome, held: UpstreamResponse, mapper: StreamMapper
) -> tuple[bytes, bool]:
    """The rest of an upstream's stream, mapped and written as it arrives; what to write with
    the end, and whether the stream ended cleanly."""
    sink = _Sink(request, mapper, outcome.watchers)
    while True:
        try:
            if await held.relay(sink):
                break
        except UPSTREAM_FAILURES as exc:
            return _interrupted(outcome, exc), False
        if sink.broken is not None:
            broken, sink.broken = sink.broken, None  # not kept: its frames hold the sink
            raise broken
        if sink.failed is not None:
            return _interrupted(outcome, sink.failed), False
        if sink.done:
            return sink.last, True
        await request.drained()  # the client stopped reading: so does the upstream, meanwhile
    out = mapper.finish()
    return (_watched(outcome.watchers, out) if outcome.watchers else out), True


def _interrupted(outcome: Outcome, exc: BaseException) -> bytes:
    """The error event and ``[DONE]`` that end a stream its upstream broke off."""
    name = outcome.provider.name
    out = error_event(f"{name} error: stream interrupted ({type(exc).__name__})", name)
    if outcome.watchers:  # an ingress format's watcher words the error its own way
        out = _watched(outcome.watchers, out)
    return out


async def pipe_raw(request: Request, outcome: Outcome, headers: dict[str, str]) -> None:
    """Relay an answer as it comes (the passthrough, a native ingress format, an API operation's
    audio or file), its watchers
    seeing each piece. An upstream that breaks midway ends the stream with the error event of
    the answer's format where a stage gave one (``Outcome.on_break``; the stage's watcher keeps
    the stream at an event's end); a raw relay has none, so the client's connection is cut: it
    sees an incomplete body, not a clean end."""
    upstream = outcome.upstream
    chunks = upstream.chunks() if upstream is not None else outcome.events
    assert chunks is not None
    watchers = outcome.watchers
    first = outcome.first  # read ahead (an API operation's answer): it goes with the head
    if first and watchers:
        first = _watched(watchers, first)
    try:
        await request.start_stream(outcome.status, headers, outcome.content_type, first)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except UPSTREAM_FAILURES as exc:
                if outcome.on_break is None:
                    request.abort()
                    return
                name = outcome.provider.name
                request.end_stream(
                    outcome.on_break(f"{name} error: stream interrupted ({type(exc).__name__})")
                )
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
