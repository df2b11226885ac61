"""Planning cost: a nested three-level config, already cached, per request.

Budget (issue 4): under 10 µs from the header's text to the first target, and the walk's end.
The idiomatic alternative (decoding and validating the config JSON on every request, as Portkey
does) is measured beside it so the table shows what the cache buys.
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import msgspec
import pytest

from bench.conftest import best_time, interleaved_ratio, require_measured
from fastgate.routing.config import ConfigCache, decode_config
from fastgate.routing.plan import RoutePlan, compile_plan, plan_targets
from fastgate.ssrf import HostPolicy

POLICY = HostPolicy((), True)


def _target(key: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "api_key": key, "custom_host": "http://127.0.0.1:9/v1", **extra}


CONFIG = msgspec.json.encode(
    {
        "strategy": {"mode": "fallback", "on_status_codes": [429, 500, 502, 503]},
        "retry": {"attempts": 2},
        "override_params": {"temperature": 0.2},
        "targets": [
            {
                "strategy": {"mode": "loadbalance"},
                "targets": [
                    {
                        "strategy": {"mode": "fallback"},
                        "targets": [_target("sk-a", weight=1), _target("sk-b")],
                    },
                    {"strategy": {"mode": "single"}, "targets": [_target("sk-c")], "weight": 3},
                ],
            },
            {
                "strategy": {
                    "mode": "conditional",
                    "conditions": [{"query": {"metadata.tier": {"$in": ["pro", "team"]}}, "then": "pro"}],
                    "default": "free",
                },
                "targets": [{**_target("sk-d"), "name": "pro"}, {**_target("sk-e"), "name": "free"}],
            },
        ],
    }
).decode()
DOC = {"metadata": {"tier": "pro"}, "params": {}, "url": {"pathname": "/v1/chat/completions"}}
OVERRIDES = {"request_timeout": 30_000}


def _build(raw: str) -> RoutePlan:
    return compile_plan(decode_config(raw, POLICY))


def _plan_request(cache: ConfigCache[str, RoutePlan]) -> str:
    walker = plan_targets(cache.get(CONFIG), doc=DOC, overrides=OVERRIDES)
    leaf = next(walker)
    with contextlib.suppress(StopIteration):
        walker.send((200, True))
    return leaf.target.path


@pytest.mark.benchmark(group="routing-plan")
def test_plan_cached_nested_config(measure: Any) -> None:
    cache: ConfigCache[str, RoutePlan] = ConfigCache(_build)
    path = measure(_plan_request, cache)
    assert path.startswith("config.targets[0].targets[")


def _plan_uncached() -> str:
    walker = plan_targets(_build(CONFIG), doc=DOC, overrides=OVERRIDES)
    return next(walker).target.path


@pytest.mark.benchmark(group="routing-plan")
def test_plan_uncached_baseline(measure: Any) -> None:
    assert measure(_plan_uncached).startswith("config.targets[0]")


def test_budget_cached_planning() -> None:
    require_measured("test_plan_cached_nested_config", "test_plan_uncached_baseline")
    cache: ConfigCache[str, RoutePlan] = ConfigCache(_build)
    cached = partial(_plan_request, cache)
    share = interleaved_ratio(cached, _plan_uncached, rounds=30, number=20)
    per_call = best_time(cached)
    print(f"\ncached plan: {per_call * 1e6:.2f} µs (best of 60 batches), {share:.3f} of decoding per request")
    assert share < 0.1
    assert per_call < 10e-6
