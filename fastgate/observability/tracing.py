"""OpenTelemetry traces (the optional extra ``fastgate[otel]``): a server span per request and a
client span per upstream attempt, with the GenAI semantic conventions' attributes.

The SDK's live span objects cost tens of microseconds each (contexts, locks, attribute
validation, span processors); here the request path only notes ids and times in plain objects
(:class:`TraceState`, :class:`AttemptSpan`), and a thread of the tracer's own builds the SDK's
``ReadableSpan`` objects from them once a second, with their explicit start and end times, and
hands them to the SDK's exporter (OTLP over HTTP, configured by the standard
``OTEL_EXPORTER_OTLP_*`` variables). Imported only when tracing is on: off, the gateway neither
imports the SDK nor does anything per request for it.

Sampling is the SDK's ``ParentBased(TraceIdRatioBased(ratio))``, decided the same way here: a
client's W3C ``traceparent`` (Trace Context §3.2) makes its trace the parent and its sampled flag
the decision; otherwise a new trace id is sampled when its low 64 bits fall under the ratio.
Each attempt's own ``traceparent`` goes upstream. Prompts and completions
(``gen_ai.input.messages`` / ``gen_ai.output.messages``, as sent, cut at ``CONTENT_LIMIT``
bytes) are recorded only with ``FASTGATE_TRACE_CONTENT=1``.
"""

from __future__ import annotations

import logging
import random
import re
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from fastgate._transforms import RequestRecord
from fastgate.observability.semconv import operation_name, provider_name
from fastgate.providers.base import Call, Target
from fastgate.providers.registry import get_provider

log = logging.getLogger("fastgate.tracing")

CONTENT_LIMIT = 16 * 1024
#: Seconds between exports, and requests waiting for one at most (the oldest go first).
EXPORT_S = 1.0
MAX_QUEUED = 8192
_LOW_64 = (1 << 64) - 1
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_OK = Status(StatusCode.UNSET)
_ERROR = Status(StatusCode.ERROR)
_FINISH = b'"finish_reason":"'
_FINISH_REASONS = re.compile(re.escape(_FINISH) + rb'([^"]*)"')


class AttemptSpan(msgspec.Struct):
    """One upstream attempt, as noted on the request path (a Struct: made in C, where a class's
    ``__init__`` ran ~40 bytecodes a traced request)."""

    span_id: int
    start: float
    #: Its target as the stages resolved it (a virtual key's provider), read at export; not the
    #: call, which would keep the request's objects alive until then.
    target: Target
    model: str | None
    retry: int
    body: bytes | None
    end: float = 0.0
    status: int = 0
    response_model: str = ""
    finish_reasons: list[str] = msgspec.field(default_factory=list)
    input_tokens: int = -1
    output_tokens: int = -1
    output: bytes | None = None


class TraceState(msgspec.Struct):
    """A traced request: its ids, its attempts, and what the server span says of it."""

    trace_id: int
    parent_id: int
    sampled: bool
    method: str
    span_id: int
    #: The client's ``traceparent`` as it came, passed on as it is when not sampled here.
    remote: str = ""
    attempts: list[AttemptSpan] = msgspec.field(default_factory=list)
    client: str = ""
    #: Unix time less the monotonic clock at the request's arrival: its spans' clock.
    wall: float = 0.0

    def traceparent(self, span_id: int) -> str:
        # Hex by bytes: a format spec (``:032x``) runs the general formatter, ~1,500
        # instructions for the two ids.
        return f"00-{self.trace_id.to_bytes(16).hex()}-{span_id.to_bytes(8).hex()}-01"


def _span_id() -> int:
    """A new span id: 64 random bits, never all zero (W3C Trace Context §3.2.2.4)."""
    return random.getrandbits(64) or 1


def parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """``(trace id, parent span id, flags)`` of a version-00 ``traceparent``, or None when it is
    not one (W3C Trace Context §3.2.2: all-zero ids are invalid)."""
    parts = value.strip().split("-")
    if len(parts) < 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return trace_id, span_id, flags


class Tracer:
    def __init__(
        self,
        sample_ratio: float = 1.0,
        content: bool = False,
        exporter: SpanExporter | None = None,
        *,
        export_s: float = EXPORT_S,
    ) -> None:
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        self.exporter = exporter
        self.content = content
        #: The SDK's TraceIdRatioBased bound.
        self.bound = round(sample_ratio * (1 << 64))
        self.resource = Resource.create({"service.name": "fastgate"})
        self.scope = InstrumentationScope("fastgate")
        self._queue: deque[RequestRecord] = deque(maxlen=MAX_QUEUED)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._export_s = export_s
        self._thread: threading.Thread | None = None

    # ---- the request path: ids and times only ---------------------------------------------------

    def arrive(self, headers: Mapping[str, str], method: str) -> TraceState | None:
        """The request's trace, sampled or carrying the client's on; None when neither."""
        given = headers.get("traceparent")
        parent = parse_traceparent(given) if given else None
        if parent is not None:
            trace_id, parent_id, flags = parent
            state = TraceState(trace_id, parent_id, bool(flags & 1), method, _span_id())
            if not state.sampled:
                state.remote = given or ""
            return state
        trace_id = random.getrandbits(128) or 1
        if trace_id & _LOW_64 >= self.bound:
            return None
        return TraceState(trace_id, 0, True, method, _span_id())

    def attempt(self, state: TraceState, call: Call, now: float, retry: int) -> None:
        """An attempt goes upstream (``retry``: its number among its target's retries): its span
        begins, and its ``traceparent`` goes with it."""
        if not state.sampled:
            call.traceparent = state.remote
            return
        attempts = state.attempts
        if attempts and not attempts[-1].end:
            attempts.pop()  # begun for a retry that did not come
        span_id = _span_id()
        body = call.body if self.content else None
        attempts.append(AttemptSpan(span_id, now, call.target, call.view.model, retry, body))
        call.traceparent = state.traceparent(span_id)

    def answered(self, state: TraceState, status: int, now: float, view: Any, body: bytes | None) -> None:
        """The attempt's answer came (``view``: its model and usage, when read)."""
        if not state.sampled or not state.attempts:
            return
        span = state.attempts[-1]
        span.end = now
        span.status = status
        if view is not None:
            span.response_model = view.model or ""
            if view.usage is not None:
                span.input_tokens = view.usage.prompt_tokens
                span.output_tokens = view.usage.completion_tokens
        if body:
            _note_reasons(span.finish_reasons, body)
            if self.content:
                span.output = body

    @staticmethod
    def _answered_attempt(state: TraceState) -> AttemptSpan | None:
        """The attempt whose answer is being relayed (a span begun for a retry that did not come
        may follow it)."""
        for span in reversed(state.attempts):
            if span.end:
                return span
        return None

    def stream_events(self, state: TraceState, out: bytes) -> None:
        """A stream's events (OpenAI chunks) on their way: their finish reasons, noted."""
        if out.find(_FINISH) >= 0:
            span = self._answered_attempt(state)
            if span is not None:
                _note_reasons(span.finish_reasons, out)

    def stream_usage(self, state: TraceState, view: Any) -> None:
        """A stream's usage, read as it ended."""
        span = self._answered_attempt(state)
        if span is not None and view.usage is not None:
            span.response_model = span.response_model or view.model or ""
            span.input_tokens = view.usage.prompt_tokens
            span.output_tokens = view.usage.completion_tokens

    def finish(self, rec: RequestRecord) -> None:
        """The request is over: its record waits for the exporting thread."""
        self._queue.append(rec)

    # ---- off the request path: the SDK's spans, built and exported ---------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fastgate-tracing", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._export_s):
            self.flush()

    def flush(self) -> None:
        """Build and export the spans of every finished request now."""
        with self._lock:
            queue = self._queue
            spans: list[ReadableSpan] = []
            while queue:
                spans += self._spans(queue.popleft())
            if not spans:
                return
            try:
                self.exporter.export(spans)
            except Exception:  # an exporter's failure never reaches the requests
                log.exception("trace export failed")

    def shutdown(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()
        self.exporter.shutdown()

    def _ns(self, state: TraceState, perf: float) -> int:
        return int((state.wall + perf) * 1e9)

    def _spans(self, rec: RequestRecord) -> list[ReadableSpan]:
        state: TraceState = rec.trace
        trace_id = state.trace_id
        server = SpanContext(trace_id, state.span_id, is_remote=False, trace_flags=_SAMPLED)
        parent = SpanContext(trace_id, state.parent_id, True, _SAMPLED) if state.parent_id else None
        operation = operation_name(rec.route)
        spans = []
        for attempt in state.attempts:
            if attempt.end:
                spans.append(self._client_span(state, server, operation, attempt))
        attributes: dict[str, Any] = {
            "http.request.method": state.method,
            "http.route": rec.route,
            "http.response.status_code": rec.status,
            "gen_ai.operation.name": operation,
            "fastgate.option_index": rec.option,
            "fastgate.retry_count": rec.retries,
            "fastgate.fallback_hops": max(0, rec.attempts - 1 - rec.retries),
            "fastgate.cache_status": rec.cache,
        }
        if state.client:
            attributes["client.address"] = state.client
        if rec.provider:
            attributes["gen_ai.provider.name"] = provider_name(rec.provider)
        if rec.model:
            attributes["gen_ai.request.model"] = rec.model
        if rec.response_model:
            attributes["gen_ai.response.model"] = rec.response_model
        if rec.accounted:
            attributes["gen_ai.usage.input_tokens"] = rec.input_tokens
            attributes["gen_ai.usage.output_tokens"] = rec.output_tokens
        if rec.error:
            attributes["error.type"] = rec.error
        spans.append(
            ReadableSpan(
                f"{state.method} {rec.route}",
                server,
                parent,
                self.resource,
                attributes,
                kind=SpanKind.SERVER,
                status=_ERROR if rec.status >= 500 else _OK,
                start_time=self._ns(state, rec.start),
                end_time=self._ns(state, rec.end),
                instrumentation_scope=self.scope,
            )
        )
        return spans

    def _client_span(
        self, state: TraceState, server: SpanContext, operation: str, attempt: AttemptSpan
    ) -> ReadableSpan:
        target = attempt.target
        params = target.override_params
        model = params.get("model") if params else None
        if not isinstance(model, str):
            model = attempt.model
        provider = target.provider
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider_name(provider),
            "http.response.status_code": attempt.status,
            "fastgate.option_index": target.path,
            "fastgate.retry_count": attempt.retry,
        }
        if isinstance(model, str):
            attributes["gen_ai.request.model"] = model
        host = _host(target)
        if host:
            attributes["server.address"] = host
        if attempt.response_model:
            attributes["gen_ai.response.model"] = attempt.response_model
        if attempt.finish_reasons:
            attributes["gen_ai.response.finish_reasons"] = attempt.finish_reasons
        if attempt.input_tokens >= 0:
            attributes["gen_ai.usage.input_tokens"] = attempt.input_tokens
            attributes["gen_ai.usage.output_tokens"] = attempt.output_tokens
        if attempt.body:
            attributes["gen_ai.input.messages"] = attempt.body[:CONTENT_LIMIT].decode("utf-8", "replace")
        if attempt.output:
            attributes["gen_ai.output.messages"] = attempt.output[:CONTENT_LIMIT].decode("utf-8", "replace")
        failed = attempt.status >= 400
        if failed:
            attributes["error.type"] = str(attempt.status)
        name = f"{operation} {model}" if isinstance(model, str) else operation
        return ReadableSpan(
            name,
            SpanContext(state.trace_id, attempt.span_id, False, _SAMPLED),
            server,
            self.resource,
            attributes,
            kind=SpanKind.CLIENT,
            status=_ERROR if failed else _OK,
            start_time=self._ns(state, attempt.start),
            end_time=self._ns(state, attempt.end),
            instrumentation_scope=self.scope,
        )


def _note_reasons(reasons: list[str], text: bytes) -> None:
    """The finish reasons an OpenAI answer or chunk gives (``"finish_reason":"stop"``), found by a
    scan of its bytes: a JSON answer is not decoded again for them."""
    for reason in _FINISH_REASONS.findall(text):  # a loop: a comprehension is a frame of its own
        reasons.append(reason.decode("utf-8", "replace"))


def _host(target: Target) -> str:
    """The upstream's host name (``server.address``): the custom host's, or the provider's own."""
    url = target.custom_host or getattr(get_provider(target.provider), "base_url", None) or ""
    return urlsplit(url).hostname or "" if url else ""
