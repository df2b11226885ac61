"""Circuit breaking as Portkey's ``cb_config`` defines it: the counts (on a clock the test moves)
and which targets a walk passes over."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastgate.errors import GatewayError
from fastgate.routing.breaker import CircuitBreaker, CircuitRule, LocalCircuits, circuit_name, circuit_parts
from fastgate.routing.config import CircuitBreakerConfig, decode_config
from fastgate.routing.plan import RoutePlan, compile_plan
from fastgate.ssrf import HostPolicy
from tests.routing.test_plan import run as walk
from tests.support.clock import Clock

POLICY = HostPolicy((), True)
FAIL = (503, True)


def circuits(clock: Clock) -> LocalCircuits:
    return LocalCircuits(clock)


async def record(states: LocalCircuits, rule: CircuitRule, *answers: int) -> int:
    left = 0
    for status in answers:
        failed = rule.verdict(status)
        if failed is not None:
            left = await states.circuit_record("c", failed, rule)
    return left


@pytest.mark.parametrize(
    ("codes", "status", "verdict"),
    [
        (None, 500, True),
        (None, 503, True),
        (None, 429, None),
        (None, 400, None),
        (None, 200, False),
        (None, 204, False),
        (frozenset({401, 429}), 429, True),
        (frozenset({401, 429}), 500, None),  # the codes replace the default, as Portkey's
        (frozenset({401, 429}), 201, False),
    ],
)
def test_what_counts_as_a_failure(codes: frozenset[int] | None, status: int, verdict: bool | None) -> None:
    assert CircuitRule(failure_threshold=1, failure_status_codes=codes).verdict(status) is verdict


async def test_opens_at_the_threshold_and_closes_a_cooldown_after_the_first_failure() -> None:
    clock = Clock()
    states = circuits(clock)
    rule = CircuitRule(failure_threshold=3, cooldown_ms=30_000)
    assert await record(states, rule, 500, 200, 500) == 0
    clock.now += 10
    assert await record(states, rule, 502) == 20_000  # open until 30 s after the first failure
    assert await states.circuits_open(["c", "other"]) == [20_000, 0]
    clock.now += 19.9
    assert (await states.circuits_open(["c"]))[0] > 0
    clock.now += 0.2
    assert await states.circuits_open(["c"]) == [0]
    # The counts started afresh: one more failure does not reopen it.
    assert await record(states, rule, 500) == 0


async def test_failures_spread_over_more_than_a_cooldown_never_open_it() -> None:
    clock = Clock()
    states = circuits(clock)
    rule = CircuitRule(failure_threshold=2, cooldown_ms=30_000)
    for _ in range(5):
        assert await record(states, rule, 500) == 0
        clock.now += 31


async def test_failure_percentage_needs_minimum_requests() -> None:
    clock = Clock()
    states = circuits(clock)
    rule = CircuitRule(failure_threshold_percentage=50, minimum_requests=4, cooldown_ms=60_000)
    assert await record(states, rule, 500, 500, 500) == 0  # 100% of 3: under the minimum
    assert await record(states, rule, 200) > 0  # 75% of 4
    clock.now += 61
    assert await record(states, rule, 200, 200, 200, 500) == 0  # 25% of 4


async def test_default_minimum_requests_is_five() -> None:
    states = circuits(Clock())
    rule = CircuitRule(failure_threshold_percentage=20, cooldown_ms=60_000)
    assert await record(states, rule, 200, 200, 200, 500) == 0
    assert await record(states, rule, 200) > 0  # 1 of 5 = 20%


async def test_answers_not_counted_leave_the_circuit_alone() -> None:
    states = circuits(Clock())
    breaker = CircuitBreaker(states)
    rule = CircuitRule(failure_threshold=1, cooldown_ms=30_000)
    for status in (400, 401, 404, 429):
        await breaker.record("c", rule, status)
    assert await breaker.open_among(["c"]) == frozenset()
    await breaker.record("c", rule, 504)
    assert await breaker.open_among(["c", "d"]) == frozenset({"c"})


def plan_of(config: dict[str, Any], cb_config: dict[str, Any] | None = None) -> RoutePlan:
    default = msgspec.convert(cb_config, CircuitBreakerConfig) if cb_config else None
    return compile_plan(decode_config(msgspec.json.encode(config).decode(), POLICY), cb_config=default)


def run(
    plan: RoutePlan, open_paths: set[str], answers: dict[str, tuple[int, bool]] | None = None, **kw: Any
) -> tuple[list[str], list[str]]:
    """(paths tried, paths skipped) with the circuits of ``open_paths`` open."""
    open_circuits = frozenset(c for c in plan.circuits if c.rpartition(" ")[2] in open_paths)
    skipped: list[str] = []
    return walk(plan, answers, open_circuits=open_circuits, skipped=skipped, **kw), skipped


def t(name: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "api_key": f"sk-{name}", "name": name, **extra}


CB = {"failure_threshold": 2, "cooldown_interval": 60_000}


def test_without_cb_config_there_are_no_circuits() -> None:
    plan = plan_of({"strategy": {"mode": "fallback"}, "targets": [t("a"), t("b")]})
    assert plan.circuits == ()
    assert all(leaf.circuit is None for leaf in plan.leaves())


def test_open_targets_of_a_fallback_are_passed_over_and_named() -> None:
    plan = plan_of({"strategy": {"mode": "fallback", "cb_config": CB}, "targets": [t("a"), t("b"), t("c")]})
    assert len(plan.circuits) == 3
    assert run(plan, {"config.targets[0]"}) == (["config.targets[1]"], ["config.targets[0]"])
    both = run(plan, {"config.targets[0]"}, {"config.targets[1]": FAIL})
    assert both == (["config.targets[1]", "config.targets[2]"], ["config.targets[0]"])


def test_when_every_target_is_open_all_are_tried() -> None:
    plan = plan_of({"strategy": {"mode": "fallback", "cb_config": CB}, "targets": [t("a"), t("b")]})
    tried, skipped = run(plan, {"config.targets[0]", "config.targets[1]"}, {"config.targets[0]": FAIL})
    assert tried == ["config.targets[0]", "config.targets[1]"] and skipped == []


def test_loadbalance_draws_among_closed_targets() -> None:
    config = {
        "strategy": {"mode": "loadbalance", "cb_config": CB},
        "targets": [t("a", weight=9), t("b", weight=1)],
    }
    plan = plan_of(config)
    for value in (0.0, 0.5, 0.99):
        assert run(plan, {"config.targets[0]"}, rng=lambda v=value: v) == (
            ["config.targets[1]"],
            ["config.targets[0]"],
        )


def test_single_takes_the_first_closed_target() -> None:
    plan = plan_of({"strategy": {"mode": "single", "cb_config": CB}, "targets": [t("a"), t("b")]})
    assert run(plan, {"config.targets[0]"}) == (["config.targets[1]"], ["config.targets[0]"])


def test_nested_strategies_inherit_and_a_strategy_with_every_target_open_is_open() -> None:
    inner = {"strategy": {"mode": "loadbalance"}, "targets": [t("a"), t("b")]}
    plan = plan_of({"strategy": {"mode": "fallback", "cb_config": CB}, "targets": [inner, t("c")]})
    assert len(plan.circuits) == 3
    assert run(plan, {"config.targets[0].targets[0]"}, rng=lambda: 0.0) == (
        ["config.targets[0].targets[1]"],
        ["config.targets[0].targets[0]"],
    )
    both = {"config.targets[0].targets[0]", "config.targets[0].targets[1]"}
    assert run(plan, both) == (["config.targets[1]"], ["config.targets[0]"])


def test_a_nested_cb_config_wins_and_a_conditional_strategy_is_not_broken() -> None:
    conditional = {
        "strategy": {"mode": "conditional", "cb_config": CB, "default": "x"},
        "targets": [t("x"), t("y")],
    }
    plan = plan_of({"strategy": {"mode": "fallback"}, "targets": [conditional, t("c")]})
    assert plan.circuits == ()
    own = {
        "strategy": {"mode": "fallback", "cb_config": {**CB, "failure_threshold": 7}},
        "targets": [t("a"), t("b")],
    }
    plan = plan_of({"strategy": {"mode": "fallback", "cb_config": CB}, "targets": [own, t("c")]})
    rules = {leaf.target.path: leaf.rule for leaf in plan.leaves()}
    assert rules["config.targets[0].targets[0]"].failure_threshold == 7  # type: ignore[union-attr]
    assert rules["config.targets[1]"].failure_threshold == 2  # type: ignore[union-attr]


def test_the_server_default_applies_where_a_config_sets_none() -> None:
    config = {"strategy": {"mode": "fallback"}, "targets": [t("a"), t("b")]}
    plan = plan_of(config, cb_config={"failure_threshold_percentage": 50, "cooldown_interval": 1000})
    rule = plan.leaves()[0].rule
    assert rule == CircuitRule(failure_threshold_percentage=50, cooldown_ms=30_000)  # Portkey's 30 s floor
    assert plan_of({"provider": "openai", "api_key": "k"}, cb_config=CB).circuits == ()  # one target


def test_circuits_are_named_by_config_and_path() -> None:
    config = {"strategy": {"mode": "fallback", "cb_config": CB}, "targets": [t("a"), t("b")]}
    first, again = plan_of(config), plan_of(config)
    assert first.circuits == again.circuits  # the same config text: the same circuits
    other = plan_of({**config, "targets": [t("a"), t("z")]})
    assert set(first.circuits).isdisjoint(other.circuits)
    assert "sk-a" not in " ".join(first.circuits)  # a digest, never the key
    assert compile_plan(
        decode_config(msgspec.json.encode(config).decode(), POLICY), name="main"
    ).circuits == (
        "main config.targets[0]",
        "main config.targets[1]",
    )


@pytest.mark.parametrize(
    ("cb", "param"),
    [
        ({"cooldown_interval": 60000}, "strategy.cb_config"),
        ({"failure_threshold": 3}, "strategy.cb_config.cooldown_interval"),
        ({"failure_threshold": 0, "cooldown_interval": 1}, "strategy.cb_config"),
        (
            {"failure_threshold_percentage": 120, "cooldown_interval": 1},
            "strategy.cb_config.failure_threshold_percentage",
        ),
        (
            {"failure_threshold": 2, "cooldown_interval": 1, "minimum_requests": 0},
            "strategy.cb_config.minimum_requests",
        ),
        (
            {"failure_threshold": 2, "cooldown_interval": 1, "failure_status_codes": [700]},
            "strategy.cb_config.failure_status_codes",
        ),
        ({"failureThreshold": 2, "cooldown_interval": 1}, "strategy.cb_config"),
    ],
)
def test_a_cb_config_that_cannot_work_is_a_400(cb: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        plan_of({"strategy": {"mode": "fallback", "cb_config": cb}, "targets": [t("a"), t("b")]})
    assert caught.value.status == 400
    assert caught.value.param == param, caught.value.message


async def test_circuits_and_skips_as_metrics_read_them() -> None:
    clock = Clock()
    breaker = CircuitBreaker(LocalCircuits(clock))
    rule = CircuitRule(failure_threshold=1, cooldown_ms=30_000)
    circuit = circuit_name("main", "config.targets[0]")
    await breaker.record(circuit, rule, 503)
    breaker.skipped("main", ["config.targets[0]", "config.targets[0]"])
    assert breaker.skips == {circuit: 2}
    assert breaker.circuits() == [(circuit, True, 1, 1)]
    assert circuit_parts(circuit) == ("main", "config.targets[0]")
    clock.now += 31
    assert breaker.circuits() == [(circuit, False, 0, 1)]  # closed after its cool-down, counts afresh
