"""The observability of one worker: what each finished request's record goes to (the metrics, the
access log, the console feed, the tracer), and their lives beside the server's.

The per-request part is the observability stage (``gateway/stages/observability.py``, compiled
in ``kernels/observe.pxi``), which fills the record and hands it to the metrics' sums and the
log's buffer itself; requests the dispatcher refuses itself (no route, over the in-flight limit)
come here through its ``refused`` hook. What is off
costs nothing: no metrics object, no log buffer, no tracer import; the console feed is one
attribute test while no console is connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from fastgate._transforms import LogLines, RequestRecord
from fastgate.errors import GatewayError
from fastgate.limits.prices import Pricing
from fastgate.observability.access_log import AccessLog, safe
from fastgate.observability.feed import Feed
from fastgate.observability.metrics import CONTENT_TYPE, FLUSH_S, Metrics
from fastgate.observability.semconv import route_of
from fastgate.routing.breaker import CircuitBreaker
from fastgate.server.messages import Request, Response
from fastgate.settings import Settings

if TYPE_CHECKING:
    from fastgate.observability.tracing import Tracer

#: The route label of a request no route matched (its path is the client's: unbounded).
UNMATCHED = "unmatched"
monotonic = time.monotonic
wall_clock = time.time


class Observability:
    def __init__(
        self,
        settings: Settings,
        pricing: Pricing,
        models: Iterable[str],
        breaker: CircuitBreaker,
        in_flight: Callable[[], int],
    ) -> None:
        self.settings = settings
        self.pricing = pricing
        self.metrics = (
            Metrics([*models, *settings.metrics_models], self._priced, breaker, in_flight)
            if settings.metrics
            else None
        )
        path = settings.access_log
        self.log = AccessLog(settings.log_format, None if path == "-" else path) if path else None
        self.tracer: Tracer | None = None
        if settings.tracing:
            try:
                from fastgate.observability.tracing import Tracer
            except ImportError as exc:
                raise RuntimeError(f'FASTGATE_TRACING needs pip install "fastgate[otel]" ({exc})') from None
            self.tracer = Tracer(settings.trace_sample_ratio, settings.trace_content)
        self.feed = Feed()
        #: The console feed's entries (JSON, as the log's lines).
        self.entries = LogLines(safe)
        self._tasks: list[asyncio.Task[None]] = []

    def _priced(self, provider: str, model: str) -> bool:
        """Whether the price table or catalogue knows a model (a name worth a metric label)."""
        return self.pricing.rates(provider, model) is not None

    def finish(self, rec: RequestRecord, trace_id: str, given: bool, client: str, key: str) -> None:
        """The request is over and its record complete: to the metrics, the log, the consoles
        watching and the tracer."""
        metrics = self.metrics
        if metrics is not None:
            metrics.tally.observe(rec)
        log, feed = self.log, self.feed
        if log is not None or feed.active:
            wall = wall_clock()
            if log is not None:
                log.write(rec, wall, trace_id, given, client, key)
            if feed.active:
                self.publish(rec, trace_id, given, client, key)
        trace = rec.trace
        if trace is not None and trace.sampled:
            trace.client = client
            assert self.tracer is not None
            self.tracer.finish(rec)

    def publish(self, rec: RequestRecord, trace_id: str, given: bool, client: str, key: str) -> None:
        """A request's entry to the consoles watching (only while one is)."""
        self.feed.publish(self.entries.line(rec, wall_clock(), trace_id, given, client, key))

    def refused(self, request: Request, error: GatewayError) -> None:
        """The dispatcher refused a request itself (no such route, or over the in-flight limit)."""
        now = monotonic()
        route = UNMATCHED if error.status in (404, 405) else route_of(request.path, "")
        rec = RequestRecord(now)
        rec.end, rec.route, rec.status, rec.error = now, route, error.status, error.type
        self.finish(rec, "", False, request.peer, "")

    # ---- the metrics page and the worker's life ---------------------------------------------------

    async def scrape(self, request: Request) -> Response:
        assert self.metrics is not None
        body = await self.metrics.render()
        return Response(200, body, {"Cache-Control": "no-cache"}, content_type=CONTENT_TYPE)

    async def _hand_over_forever(self, metrics: Metrics) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            metrics.flush()

    def start(self) -> None:
        self.pricing.warm()
        loop = asyncio.get_running_loop()
        metrics = self.metrics
        if metrics is not None and metrics.multiprocess:
            # Other workers' scrapes read the shared files: this worker's sums go there every
            # FLUSH_S (with what is read rather than counted: requests in flight, circuits).
            self._tasks.append(loop.create_task(self._hand_over_forever(metrics)))
        if self.log is not None:
            self._tasks.append(loop.create_task(self.log.flush_forever()))
        if self.tracer is not None:
            self.tracer.start()

    def stop_feeds(self) -> None:
        """Shutdown begins: consoles' streams end, so the server need not wait for them."""
        self.feed.close()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.metrics is not None:
            self.metrics.flush()
        if self.log is not None:
            self.log.close()
        if self.tracer is not None:
            await asyncio.to_thread(self.tracer.shutdown)
