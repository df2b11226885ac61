"""Prometheus metrics, through ``prometheus-client``, from each request's record.

Names and units follow the OpenTelemetry GenAI semantic conventions where they define the metric
(``gen_ai.client.operation.duration`` → ``gen_ai_client_operation_duration_seconds``, attributes
as labels with ``.`` → ``_``, their advised bucket boundaries too); the gateway's own metrics
carry the ``fastgate_`` prefix. Label values are bounded: routes are route patterns, providers the
registry's slugs, models come from an allow-list (the server config's aliases and prices,
``FASTGATE_METRICS_MODELS``, and the models the price catalogue knows) and any other is ``other``.

A request adds a few numbers to C arrays kept per label set (``Tally``, compiled in
``kernels/observe.pxi``); they are handed to prometheus-client at a scrape, so a request pays a
dozen C additions instead of a dozen locked increments of prometheus-client's values. With
``--workers N`` each worker writes prometheus-client's multiprocess files
(``PROMETHEUS_MULTIPROC_DIR``, set by the supervisor before the workers start): its pending values
are written every ``FLUSH_S`` (``Observability.start``), and a scrape of any worker waits that
long, then sums every worker's files.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from fastgate._transforms import Tally
from fastgate.observability.semconv import operation_name, provider_name
from fastgate.routing.breaker import CircuitBreaker, circuit_parts

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: With several workers: how late a worker's values reach the shared files, at most.
FLUSH_S = 0.25

#: Bucket boundaries the semantic conventions advise (metrics/gen-ai-metrics.md); the duration's
#: with four below 10 ms added, where cached answers and local models land.
DURATION_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ... 67108864
#: The gateway's own share is micro- to milliseconds.
OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0)

_GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
_PM = ("provider", "model")
_CIRCUIT = ("config", "target")


class _Children:
    """The prometheus-client children one label set's sums go to at a hand-over."""

    __slots__ = ("counters", "hists")

    def __init__(
        self, m: Metrics, route: str, provider: str, model: str, status: int, cache: str, error: str
    ):
        genai = (operation_name(route), provider_name(provider), model)
        # In the order of TallySeries.take's totals, and of its histograms (Tally's bounds).
        self.counters = (
            m.requests.labels(route, provider, model, f"{status // 100}xx", cache),
            m.tokens.labels(provider, model, "input"),
            m.tokens.labels(provider, model, "output"),
            m.tokens.labels(provider, model, "cached"),
            m.tokens.labels(provider, model, "reasoning"),
            m.cost.labels(provider, model),
            m.retries.labels(provider),
            m.fallbacks.labels(provider),
        )
        self.hists = (
            m.duration.labels(*genai, error),
            m.overhead.labels(route),
            m.ttft.labels(*genai),
            m.upstream.labels(provider, model),
            m.token_usage.labels(*genai, "input"),
            m.token_usage.labels(*genai, "output"),
        )

    def add(self, totals: tuple[float, ...], hists: list[tuple[list[int], float]]) -> None:
        for child, value in zip(self.counters, totals, strict=True):
            if value:
                child.inc(value)
        for hist, (counts, total) in zip(self.hists, hists, strict=True):
            # The child's own per-bucket values, which it adds up when collected: what its
            # ``observe`` increments, here by the pending count at once.
            buckets = hist._buckets
            for i, n in enumerate(counts):
                if n:
                    buckets[i].inc(n)
            if total:
                hist._sum.inc(total)


class Metrics:
    """The metric set of one worker: ``observe(record)`` once per request, ``render()`` at a scrape."""

    def __init__(
        self,
        models: Iterable[str] = (),
        known: Callable[[str, str], bool] | None = None,
        breaker: CircuitBreaker | None = None,
        in_flight: Callable[[], int] | None = None,
    ) -> None:
        self.breaker = breaker
        self.in_flight_count = in_flight
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fastgate_requests",
            "Requests answered, by route, provider, model, status class and cache status.",
            ("route", "provider", "model", "status_class", "cache"),
            registry=registry,
        )
        self.in_flight = Gauge(
            "fastgate_requests_in_flight",
            "Requests being answered now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.duration = Histogram(
            "gen_ai_client_operation_duration",
            "GenAI operation duration (gen_ai.client.operation.duration): arrival to last byte.",
            (*_GENAI, "error_type"),
            unit="seconds",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "gen_ai_server_time_to_first_token",
            "Time to first token (gen_ai.server.time_to_first_token): arrival to the answer's first "
            "byte from the upstream (a stream's first chunk).",
            _GENAI,
            unit="seconds",
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.token_usage = Histogram(
            "gen_ai_client_token_usage",
            "Tokens per request (gen_ai.client.token.usage), by gen_ai_token_type input or output.",
            (*_GENAI, "gen_ai_token_type"),
            buckets=TOKEN_BUCKETS,
            registry=registry,
        )
        self.upstream = Histogram(
            "fastgate_upstream_duration",
            "Time spent waiting on upstreams: every attempt of a request, and a stream's body.",
            _PM,
            unit="seconds",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "fastgate_overhead_duration",
            "The gateway's own time per request: total minus time waiting on upstreams.",
            ("route",),
            unit="seconds",
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "fastgate_tokens",
            "Tokens by type: input, output, cached (input read from the provider's cache), reasoning.",
            (*_PM, "type"),
            registry=registry,
        )
        self.cost = Counter(
            "fastgate_cost_usd",
            "Cost of answers in US dollars, where a price is known.",
            _PM,
            registry=registry,
        )
        self.retries = Counter(
            "fastgate_retries",
            "Retries of a target after a failed attempt.",
            ("provider",),
            registry=registry,
        )
        self.fallbacks = Counter(
            "fastgate_fallbacks",
            "Targets given up for the next one, by the provider that answered at last.",
            ("provider",),
            registry=registry,
        )
        self.guardrails = Counter(
            "fastgate_guardrail_verdicts",
            "Guardrail hook verdicts, by event (before_request, after_request) and verdict.",
            ("event", "verdict"),
            registry=registry,
        )
        self.circuit_state = Gauge(
            "fastgate_circuit_state",
            "Circuit of a config's target: 0 closed, 1 open (open in any worker).",
            _CIRCUIT,
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.circuit_failures = Gauge(
            "fastgate_circuit_failures",
            "Failed answers of a config's target in its current window (the most of any worker).",
            _CIRCUIT,
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.circuit_opens = Counter(
            "fastgate_circuit_opens",
            "Times the circuit of a config's target opened.",
            _CIRCUIT,
            registry=registry,
        )
        self.circuit_skips = Counter(
            "fastgate_circuit_skips",
            "Requests that passed over a target: its circuit was open.",
            _CIRCUIT,
            registry=registry,
        )
        #: The sums per label set. Model names in ``models`` are shown as themselves;
        #: ``known(provider, model)`` decides the others (once per pair), any else is ``other``.
        self.tally = Tally(
            (
                DURATION_BUCKETS,
                OVERHEAD_BUCKETS,
                TTFT_BUCKETS,
                DURATION_BUCKETS,
                TOKEN_BUCKETS,
                TOKEN_BUCKETS,
            ),
            models,
            known or (lambda provider, model: False),
            lambda key: _Children(self, *key),
        )
        #: Circuit counts already handed over (counters grow by the difference).
        self._opens: dict[str, int] = {}
        self._skips: dict[str, int] = {}
        self._shown_circuits: set[str] = set()
        #: Guardrail verdicts counted since the last flush, by event and verdict.
        self._verdicts: dict[tuple[str, str], int] = {}

    def count_verdict(self, event: str, verdict: str) -> None:
        """Counted here, handed over at the next flush: prometheus-client's ``labels(...).inc()``
        takes two locks and builds its key each time, microseconds on every guarded request."""
        key = (event, verdict)
        self._verdicts[key] = self._verdicts.get(key, 0) + 1

    def flush(self) -> None:
        """Hand the pending values to prometheus-client, with what is read rather than counted:
        requests in flight and circuits (at a scrape; with several workers also every
        ``FLUSH_S``, so other workers' scrapes see them)."""
        for series in self.tally.take_dirty():
            totals, hists = series.take()
            series.children.add(totals, hists)
        if self._verdicts:
            verdicts, self._verdicts = self._verdicts, {}
            for (event, verdict), count in verdicts.items():
                self.guardrails.labels(event, verdict).inc(count)
        if self.in_flight_count is not None:
            self.in_flight.set(self.in_flight_count())
        if self.breaker is not None:
            self._flush_circuits(self.breaker)

    def _flush_circuits(self, breaker: CircuitBreaker) -> None:
        shown = set()
        for circuit, is_open, failures, opens in breaker.circuits():
            labels = circuit_parts(circuit)
            shown.add(circuit)
            self.circuit_state.labels(*labels).set(1 if is_open else 0)
            self.circuit_failures.labels(*labels).set(failures)
            _grow(self.circuit_opens.labels(*labels), self._opens, circuit, opens)
        for circuit in self._shown_circuits - shown:  # forgotten by the breaker: closed, no failures
            labels = circuit_parts(circuit)
            self.circuit_state.labels(*labels).set(0)
            self.circuit_failures.labels(*labels).set(0)
        self._shown_circuits |= shown
        for circuit, skips in list(breaker.skips.items()):
            _grow(self.circuit_skips.labels(*circuit_parts(circuit)), self._skips, circuit, skips)

    async def render(self) -> bytes:
        """The scrape: this worker's metrics, or with ``--workers N`` all workers' summed."""
        self.flush()
        if not self.multiprocess:
            return generate_latest(self.registry)
        # The other workers write what they counted at most FLUSH_S after it: wait that long.
        await asyncio.sleep(FLUSH_S * 1.5)
        return generate_latest(self.collected())

    def collected(self) -> CollectorRegistry:
        """The registry a scrape reads: this worker's, or every worker's files summed."""
        if not self.multiprocess:
            return self.registry
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry


def _grow(child: Any, seen: dict[str, int], name: str, total: int) -> None:
    """A counter brought up to ``total`` (a count the breaker keeps), by the difference since
    the last look; a count the breaker forgot and began again adds what it has counted since."""
    before = seen.get(name, 0)
    added = total - before if total >= before else total
    if added:
        child.inc(added)
    seen[name] = total
