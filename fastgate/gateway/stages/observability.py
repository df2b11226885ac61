"""Observability as a stage: each request's record, noted at a few points of its way and handed to
the metrics, the access log, the console and the tracer once the answer is out.

It runs around the other stages (first in their order, so its ``respond`` and watcher come last)
and notes only numbers on the request path: when the request arrived (``arrive``), when each
target was tried (``engage``, which engages it no further unless a trace or a retry needs its
``after``), when the answer was in hand with its usage and cost (``respond``, which also adds the
``Server-Timing`` and cost headers) and when it was written (``end``). Those four are compiled
(``ObservationHooks``, ``kernels/observe.pxi``): in Python their attribute reads and formatting
cost more than the budget of the whole feature. Usage is read once per answer
(``Outcome.usage``, shared with the limits stage), a stream's as it passes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastgate._transforms import ObservationHooks, RequestRecord
from fastgate.errors import GatewayError, type_for_status
from fastgate.gateway.options import RequestOptions
from fastgate.gateway.pipeline import Attempt, Exchange, Stage
from fastgate.gateway.relay import Outcome
from fastgate.limits.usage import RelayedUsage, UsageView, body_usage, usage_decoder
from fastgate.observability.observer import Observability
from fastgate.observability.semconv import ROUTES
from fastgate.providers.base import RELAYED, Call, Endpoint, Target
from fastgate.routing.plan import Leaf
from fastgate.schema.openai import CompletionTokensDetails, PromptTokensDetails, RequestView, Usage
from fastgate.server.connection import Connection
from fastgate.server.messages import Request

if TYPE_CHECKING:  # tracing, and the SDK it imports, only when it is on
    from fastgate.observability.tracing import TraceState

_USAGE_MARK = b'"usage":{'
_DATA = b"data: "
#: The gateway's classes whose fields the compiled hooks read by slot.
_TYPES: dict[str, type] = {
    "Exchange": Exchange,
    "Outcome": Outcome,
    "Call": Call,
    "Target": Target,
    "Request": Request,
    "RequestOptions": RequestOptions,
    "UsageView": UsageView,
    "Usage": Usage,
    "PromptTokensDetails": PromptTokensDetails,
    "CompletionTokensDetails": CompletionTokensDetails,
    "Leaf": Leaf,
    "Attempt": Attempt,
    "RequestView": RequestView,
    "Connection": Connection,
}


class ObservabilityStage(ObservationHooks, Stage):
    hears_all = True  # every request is recorded, refused ones included

    def __init__(self, observability: Observability, headers: bool) -> None:
        """``headers``: ``Server-Timing`` and the cost header on answers."""
        obs = self.observability = observability
        log = obs.log
        super().__init__(
            _TYPES,
            obs.metrics.tally if obs.metrics is not None else None,
            log.lines if log is not None and log.json else None,
            log if log is not None and not log.json else None,
            obs.feed,
            obs.tracer,
            obs.pricing,
            headers,
            usage_decoder.decode,
            GatewayError,
            type_for_status,
            Endpoint.PROXY,
            RELAYED,
        )
        for route in ROUTES:
            self.known_route(route, route)

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        """Each answer of an attempt that retries or is traced: its retries counted, its span."""
        rec: RequestRecord = ex.noted(self)
        answers = at.notes.get(self, 0)
        at.notes[self] = answers + 1
        if answers:  # a retry's answer
            rec.attempts += 1
            rec.retries += 1
        tracer = self.tracer
        trace = rec.trace
        if trace is not None:
            now = time.monotonic()  # the record's clock (kernels/observe.pxi)
            tracer.answered(trace, outcome.status, now, outcome.answer_usage(), outcome.body)
            if at.leaf.retry is not None:
                tracer.attempt(trace, at.call, now, answers + 1)  # a retry's span, if one comes
        return outcome

    def watch_stream(self, ex: Exchange, outcome: Outcome, rec: RequestRecord) -> None:
        if outcome.mapper is None:  # relayed as it came: the passthrough, a native ingress format
            if outcome.usage is None and 200 <= outcome.status < 300:
                outcome.watchers += (_RelayedWatch(outcome),)
            return
        asks = outcome.call.view.stream_options
        if rec.trace is not None or (asks and asks.include_usage):
            reasons = self.tracer.stream_events if rec.trace is not None else None
            outcome.watchers += (_StreamWatch(rec, outcome, reasons),)

    def finished(self, ex: Exchange, rec: RequestRecord, client: str) -> None:
        obs = self.observability
        if ex.verdicts and obs.metrics is not None:
            for event, verdict in ex.verdicts:
                obs.metrics.count_verdict(event, verdict)
        request = ex.request
        if obs.feed.active:
            key = ex.key
            trace_id = ex.opts.trace_id if ex.opts is not None else ""
            given = "x-portkey-trace-id" in request.headers
            name = (key.name or key.id) if key is not None else ""
            obs.publish(rec, trace_id, given, client, name)
        trace = rec.trace
        if trace is not None:
            if ex.outcome is not None and ex.outcome.usage is not None and rec.streamed:
                self.tracer.stream_usage(trace, ex.outcome.usage)
            if trace.sampled:
                trace.client = client
                self.tracer.finish(rec)

    def log_full(self) -> None:
        assert self.observability.log is not None
        self.observability.log.flush()


class IngressUsage(Stage):
    """The inner half of observability for the ingress formats (Messages, Responses): it reads
    the usage of the chat answer before their stages translate it (``Outcome.usage``), which the
    observability stage, around them all, then accounts. Engaged only for those requests."""

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        outcome.answer_usage()
        return outcome

    def arrive(self, ex: Exchange) -> bool:
        return bool(ex.ingress)

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> _StreamWatch | None:
        if outcome.mapper is None or not 200 <= outcome.status < 300:
            return None
        return _StreamWatch(None, outcome, None)


class _RelayedWatch:
    """An answer relayed as it came: the usage it reports in whichever API's shape, read as it
    passes and put on the outcome as it ends."""

    __slots__ = ("outcome", "reader")

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.reader = RelayedUsage(outcome.content_type)

    def feed(self, out: bytes) -> bytes:
        return self.reader.feed(out)

    async def end(self) -> bytes:
        reader = self.reader
        usage = reader.usage()
        if usage is not None and self.outcome.usage is None:
            self.outcome.usage = UsageView(reader.model, usage)
        return b""


class _StreamWatch:
    """A stream on its way to the client, last of the watchers: its usage chunk (when a watcher
    before it has not read it already) and, while traced, its finish reasons."""

    __slots__ = ("outcome", "reasons", "rec")

    def __init__(
        self,
        rec: RequestRecord | None,
        outcome: Outcome,
        reasons: Callable[[TraceState, bytes], None] | None,
    ) -> None:
        self.rec = rec
        self.outcome = outcome
        self.reasons = reasons

    def feed(self, out: bytes) -> bytes:
        outcome = self.outcome
        if outcome.usage is None and out.find(_USAGE_MARK) >= 0:
            for event in out.split(b"\n\n"):
                if event.find(_USAGE_MARK) >= 0 and event.startswith(_DATA):
                    view = body_usage(event[len(_DATA) :])
                    if view.usage is not None:
                        outcome.usage = view
        if self.reasons is not None and self.rec is not None:
            self.reasons(self.rec.trace, out)
        return out

    async def end(self) -> bytes:
        return b""
