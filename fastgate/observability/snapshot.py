"""The console's JSON snapshot, read from the Prometheus metrics the requests already feed (with
``--workers N``, all workers' summed) and the circuit breaker: nothing extra is kept per request.

Percentiles are estimated from histogram buckets, as Prometheus' ``histogram_quantile`` does
(linear within the bucket); requests per second over the last minutes the page draws from the
difference between the snapshots it polls and from the live feed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import msgspec

from fastgate.routing.breaker import CircuitBreaker, circuit_parts

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from fastgate.observability.metrics import Metrics

QUANTILES = (0.5, 0.9, 0.99)
_HITS = frozenset({"HIT", "SEMANTIC HIT"})


class Snapshot(msgspec.Struct, kw_only=True):
    time: float
    uptime_s: float
    requests: int = 0
    by_status: dict[str, int] = {}
    errors_by_provider: dict[str, int] = {}
    cache_hit_rate: float | None = None
    tokens: dict[str, int] = {}
    cost_usd: float = 0.0
    #: Seconds at each quantile (keys "p50", "p90", "p99"); None where nothing was measured.
    latency: dict[str, float | None] = {}
    overhead: dict[str, float | None] = {}
    ttft: dict[str, float | None] = {}
    circuits: list[dict[str, Any]] = []
    metrics: bool = True


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``q`` of a histogram given as cumulative ``(upper bound, count)`` pairs."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower  # past the last finite bound: its value is all that is known
            width = count - below
            return lower + (bound - lower) * ((rank - below) / width if width else 0.0)
        lower, below = bound, count
    return lower


def _histogram(families: dict[str, Metric], name: str) -> dict[str, float | None]:
    summed: dict[float, float] = defaultdict(float)
    family = families.get(name)
    for sample in family.samples if family is not None else ():
        if sample.name.endswith("_bucket"):
            summed[float(sample.labels["le"])] += sample.value
    buckets = sorted(summed.items())
    return {f"p{round(q * 100)}": quantile(q, buckets) for q in QUANTILES}


class Snapshotter:
    def __init__(self, metrics: Metrics | None, breaker: CircuitBreaker) -> None:
        self.metrics = metrics
        self.breaker = breaker
        self.started = time.time()

    def take(self) -> Snapshot:
        now = time.time()
        snap = Snapshot(time=now, uptime_s=round(now - self.started, 3))
        snap.circuits = [
            {
                "config": config,
                "target": target,
                "state": "open" if is_open else "closed",
                "failures": failures,
                "opens": opens,
            }
            for circuit, is_open, failures, opens in self.breaker.circuits()
            for config, target in (circuit_parts(circuit),)
        ]
        if self.metrics is None:
            snap.metrics = False
            return snap
        self.metrics.flush()
        families = {f.name: f for f in self.metrics.collected().collect()}
        by_status: dict[str, int] = defaultdict(int)
        errors: dict[str, int] = defaultdict(int)
        hits = cacheable = 0
        requests = families.get("fastgate_requests")
        for s in requests.samples if requests is not None else ():
            if not s.name.endswith("_total"):
                continue
            n = int(s.value)
            status = s.labels["status_class"]
            by_status[status] += n
            if status in ("4xx", "5xx"):
                errors[s.labels["provider"] or "(gateway)"] += n  # refused before a provider
            if s.labels["cache"] != "DISABLED":
                cacheable += n
                hits += n if s.labels["cache"] in _HITS else 0
        snap.requests = sum(by_status.values())
        snap.by_status = dict(by_status)
        snap.errors_by_provider = {k: v for k, v in errors.items() if v}
        snap.cache_hit_rate = hits / cacheable if cacheable else None
        tokens: dict[str, int] = defaultdict(int)
        family = families.get("fastgate_tokens")
        for s in family.samples if family is not None else ():
            if s.name.endswith("_total"):
                tokens[s.labels["type"]] += int(s.value)
        snap.tokens = dict(tokens)
        family = families.get("fastgate_cost_usd")
        snap.cost_usd = sum(s.value for s in family.samples if s.name.endswith("_total")) if family else 0.0
        snap.latency = _histogram(families, "gen_ai_client_operation_duration_seconds")
        snap.overhead = _histogram(families, "fastgate_overhead_duration_seconds")
        snap.ttft = _histogram(families, "gen_ai_server_time_to_first_token_seconds")
        return snap
