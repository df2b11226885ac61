"""Plan logic without network: which targets a config tries, in which order, with what settings."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate.errors import GatewayError
from fastgate.routing.config import ConfigCache, decode_config
from fastgate.routing.plan import Leaf, RoutePlan, compile_plan, plan_targets
from fastgate.ssrf import HostPolicy

POLICY = HostPolicy((), True)


def plan_of(config: dict[str, Any]) -> RoutePlan:
    return compile_plan(decode_config(msgspec.json.encode(config).decode(), POLICY))


def run(
    plan: RoutePlan,
    answers: dict[str, tuple[int, bool]] | None = None,
    **kwargs: Any,
) -> list[str]:
    """The paths tried, each answered from ``answers`` (default: 200)."""
    tried: list[str] = []
    walker = plan_targets(plan, **kwargs)
    leaf = next(walker)
    while True:
        tried.append(leaf.target.path)
        try:
            leaf = walker.send((answers or {}).get(leaf.target.path, (200, True)))
        except StopIteration:
            return tried


def t(name: str, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "api_key": f"sk-{name}", "name": name, **extra}


FALLBACK = {"strategy": {"mode": "fallback"}, "targets": [t("a"), t("b"), t("c")]}
FAIL = (503, True)
UNREACHED = (502, False)


@pytest.mark.parametrize(
    ("config", "answers", "tried"),
    [
        ({"provider": "openai", "api_key": "k"}, {}, ["config"]),
        ({"targets": [t("a"), t("b")]}, {}, ["config.targets[0]"]),
        ({"strategy": {"mode": "single"}, "targets": [t("a"), t("b")]}, {}, ["config.targets[0]"]),
        (FALLBACK, {}, ["config.targets[0]"]),
        (FALLBACK, {"config.targets[0]": FAIL}, ["config.targets[0]", "config.targets[1]"]),
        (
            FALLBACK,
            {"config.targets[0]": (429, True), "config.targets[1]": (500, True), "config.targets[2]": FAIL},
            ["config.targets[0]", "config.targets[1]", "config.targets[2]"],
        ),
        (FALLBACK, {"config.targets[0]": (400, True)}, ["config.targets[0]", "config.targets[1]"]),
        # on_status_codes restricts fallback to those codes...
        (
            {**FALLBACK, "strategy": {"mode": "fallback", "on_status_codes": [429]}},
            {"config.targets[0]": (503, True)},
            ["config.targets[0]"],
        ),
        (
            {**FALLBACK, "strategy": {"mode": "fallback", "on_status_codes": [429]}},
            {"config.targets[0]": (429, True)},
            ["config.targets[0]", "config.targets[1]"],
        ),
        # ...but no answer at all (unreachable, timed out, empty stream) always falls back.
        (
            {**FALLBACK, "strategy": {"mode": "fallback", "onStatusCodes": [429]}},
            {"config.targets[0]": UNREACHED},
            ["config.targets[0]", "config.targets[1]"],
        ),
        # Nesting: a fallback of (a fallback, a single) of ...
        (
            {
                "strategy": {"mode": "fallback"},
                "targets": [
                    {"strategy": {"mode": "fallback"}, "targets": [t("a"), t("b")]},
                    {"targets": [{"strategy": {"mode": "fallback"}, "targets": [t("c"), t("d")]}]},
                ],
            },
            {
                "config.targets[0].targets[0]": FAIL,
                "config.targets[0].targets[1]": FAIL,
                "config.targets[1].targets[0].targets[0]": FAIL,
            },
            [
                "config.targets[0].targets[0]",
                "config.targets[0].targets[1]",
                "config.targets[1].targets[0].targets[0]",
                "config.targets[1].targets[0].targets[1]",
            ],
        ),
        # A nested fallback that succeeds ends the outer one.
        (
            {
                "strategy": {"mode": "fallback"},
                "targets": [{"strategy": {"mode": "fallback"}, "targets": [t("a"), t("b")]}, t("c")],
            },
            {"config.targets[0].targets[0]": FAIL},
            ["config.targets[0].targets[0]", "config.targets[0].targets[1]"],
        ),
    ],
)
def test_strategies(config: dict[str, Any], answers: dict[str, tuple[int, bool]], tried: list[str]) -> None:
    assert run(plan_of(config), answers) == tried


def test_loadbalance_weight_zero_is_never_chosen() -> None:
    plan = plan_of(
        {"strategy": {"mode": "loadbalance"}, "targets": [t("a", weight=0), t("b"), t("c", weight=0)]}
    )
    for value in (0.0, 0.3, 0.999999):
        assert run(plan, rng=lambda v=value: v) == ["config.targets[1]"]


@pytest.mark.parametrize(("rand", "index"), [(0.0, 0), (0.2499, 0), (0.25, 1), (0.9999, 1)])
def test_loadbalance_picks_by_weight(rand: float, index: int) -> None:
    plan = plan_of({"strategy": {"mode": "loadbalance"}, "targets": [t("a", weight=1), t("b", weight=3)]})
    assert run(plan, rng=lambda: rand) == [f"config.targets[{index}]"]


def test_loadbalance_one_to_three_split_is_within_tolerance() -> None:
    plan = plan_of({"strategy": {"mode": "loadbalance"}, "targets": [t("a", weight=1), t("b", weight=3)]})
    n = 20_000
    counts = Counter(run(plan)[0] for _ in range(n))
    # Binomial(n, 1/4): sd ≈ 61; 6 sd either side fails once in ~10^9 runs.
    assert abs(counts["config.targets[0]"] - n / 4) < 6 * (n * 0.25 * 0.75) ** 0.5
    assert counts["config.targets[0]"] + counts["config.targets[1]"] == n


def test_loadbalance_failure_is_the_nodes_answer_to_an_outer_fallback() -> None:
    plan = plan_of(
        {
            "strategy": {"mode": "fallback"},
            "targets": [{"strategy": {"mode": "loadbalance"}, "targets": [t("a"), t("b")]}, t("c")],
        }
    )
    tried = run(plan, {"config.targets[0].targets[0]": FAIL, "config.targets[0].targets[1]": FAIL})
    assert len(tried) == 2 and tried[1] == "config.targets[1]"


CONDITIONAL = {
    "strategy": {
        "mode": "conditional",
        "conditions": [
            {"query": {"metadata.plan": "pro", "params.model": {"$regex": "^gpt"}}, "then": "fast"},
            {"query": {"url.pathname": {"$regex": "embeddings$"}}, "then": "embed"},
        ],
        "default": "cheap",
    },
    "targets": [t("cheap"), t("fast"), t("embed")],
}


@pytest.mark.parametrize(
    ("doc", "path"),
    [
        ({"metadata": {"plan": "pro"}, "params": {"model": "gpt-4o"}, "url": {"pathname": "/v1/x"}}, 1),
        ({"metadata": {"plan": "pro"}, "params": {"model": "claude"}, "url": {"pathname": "/v1/x"}}, 0),
        ({"metadata": {}, "params": {}, "url": {"pathname": "/v1/embeddings"}}, 2),
        ({}, 0),
    ],
)
def test_conditional(doc: dict[str, Any], path: int) -> None:
    plan = plan_of(CONDITIONAL)
    assert plan.roots == {"metadata", "params", "url"} and plan.decodes_body
    assert run(plan, doc=doc) == [f"config.targets[{path}]"]


def test_conditional_without_match_or_default_is_a_400() -> None:
    config = {**CONDITIONAL, "strategy": {**CONDITIONAL["strategy"], "default": None}}
    plan = plan_of(config)
    with pytest.raises(GatewayError) as info:
        run(plan, doc={"metadata": {"plan": "free"}})
    assert info.value.status == 400


def test_conditional_nested_in_fallback() -> None:
    plan = plan_of({"strategy": {"mode": "fallback"}, "targets": [CONDITIONAL, t("last")]})
    assert plan.decodes_body
    doc = {"metadata": {"plan": "pro"}, "params": {"model": "gpt-x"}, "url": {"pathname": "/"}}
    assert run(plan, {"config.targets[0].targets[1]": FAIL}, doc=doc) == [
        "config.targets[0].targets[1]",
        "config.targets[1]",
    ]


def test_metadata_only_conditions_do_not_need_params() -> None:
    plan = plan_of(
        {
            "strategy": {"mode": "conditional", "conditions": [{"query": {"metadata.a": 1}, "then": "x"}]},
            "targets": [t("x")],
        }
    )
    assert plan.roots == {"metadata"} and not plan.decodes_body


def leaves(config: dict[str, Any]) -> dict[str, Leaf]:
    return {leaf.target.path: leaf for leaf in plan_of(config).leaves()}


def test_inheritance_child_wins_and_override_params_merge() -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "override_params": {"temperature": 0.1, "max_tokens": 5},
        "retry": {"attempts": 2},
        "request_timeout": 1000,
        "custom_host": "http://127.0.0.1:9/v1",
        "forward_headers": ["x-a"],
        "strict_open_ai_compliance": False,
        "cache": {"mode": "simple"},
        "targets": [
            t("a", override_params={"max_tokens": 9, "seed": 1}, retry={"attempts": 4}),
            {
                "strategy": {"mode": "single"},
                "requestTimeout": 50,
                "customHost": "http://127.0.0.1:8/v1",
                "forwardHeaders": [],
                "strictOpenAiCompliance": True,
                "targets": [t("b", override_params={"temperature": 1})],
            },
        ],
    }
    by_path = leaves(config)
    a, b = by_path["config.targets[0]"], by_path["config.targets[1].targets[0]"]
    assert a.target.override_params == {"temperature": 0.1, "max_tokens": 9, "seed": 1}
    assert a.retry is not None and a.retry.attempts == 4
    assert a.target.request_timeout == 1000 and a.target.custom_host == "http://127.0.0.1:9/v1"
    assert a.target.forward_headers == ("x-a",) and a.target.strict_open_ai_compliance is False
    assert a.cache is not None and a.cache.mode == "simple"
    assert b.target.override_params == {"temperature": 1, "max_tokens": 5}
    assert b.retry is not None and b.retry.attempts == 2
    assert b.target.request_timeout == 50 and b.target.custom_host == "http://127.0.0.1:8/v1"
    assert b.target.forward_headers == () and b.target.strict_open_ai_compliance is True


def test_header_overrides_beat_every_target() -> None:
    plan = plan_of(
        {"strategy": {"mode": "fallback"}, "targets": [t("a", custom_host="http://127.0.0.1:1/v1")]}
    )
    walker = plan_targets(plan, overrides={"custom_host": "http://127.0.0.1:2/v1", "request_timeout": 7})
    leaf = next(walker)
    assert leaf.target.custom_host == "http://127.0.0.1:2/v1" and leaf.target.request_timeout == 7


@pytest.mark.parametrize(
    ("config", "param"),
    [
        ({"strategy": {"mode": "sideways"}, "targets": [t("a")]}, "strategy.mode"),
        (
            {"strategy": {"mode": "fallback"}, "targets": [t("a"), t("b"), {**t("c"), "weight": "x"}]},
            "targets[2].weight",
        ),
        (
            {"strategy": {"mode": "loadbalance"}, "targets": [t("a"), {**t("b"), "weight": -1}]},
            "targets[1].weight",
        ),
        ({"strategy": {"mode": "loadbalance"}, "targets": [t("a", weight=0)]}, "targets"),
        ({"strategy": {"mode": "fallback"}}, "targets"),
        ({"strategy": {"mode": "fallback"}, "targets": []}, "targets"),
        ({"strategy": {"mode": "fallback"}, "targets": [t("a"), {"api_key": "k"}]}, "targets[1].provider"),
        (
            {"strategy": {"mode": "fallback"}, "targets": [{"provider": "nope", "api_key": "k"}]},
            "targets[0].provider",
        ),
        (
            {"targets": [{"targets": [t("a", retry={"attempts": "many"})]}]},
            "targets[0].targets[0].retry.attempts",
        ),
        ({"targets": [t("a", retry={"attempts": -1})]}, "targets[0].retry.attempts"),
        ({"targets": [t("a", request_timeout=0)]}, "targets[0].request_timeout"),
        ({"targets": [t("a", custom_host="http://169.254.169.254/")]}, "targets[0].custom_host"),
        ({"targets": [t("a", cache={"mode": "fuzzy"})]}, "targets[0].cache.mode"),
        (
            {
                "strategy": {
                    "mode": "conditional",
                    "conditions": [{"query": {"metadata.a": 1}, "then": "zz"}],
                },
                "targets": [t("a")],
            },
            "strategy.conditions[0].then",
        ),
        (
            {
                "strategy": {
                    "mode": "conditional",
                    "conditions": [{"query": {"metadata.a": {"$x": 1}}, "then": "a"}],
                },
                "targets": [t("a")],
            },
            "strategy.conditions[0].query.metadata.a.$x",
        ),
        ({"strategy": {"mode": "conditional", "default": "nobody"}, "targets": [t("a")]}, "strategy.default"),
        ({"strategy": {"mode": "conditional"}, "targets": [t("a")]}, "strategy.conditions"),
        (
            {
                "strategy": {"mode": "fallback"},
                "targets": [{"strategy": {"mode": "conditional"}, "targets": [t("a")]}],
            },
            "targets[0].strategy.conditions",
        ),
    ],
)
def test_bad_config_names_the_field(config: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        plan_of(config)
    assert info.value.status == 400
    assert info.value.param == param
    assert param in info.value.message


def test_cache_decodes_each_distinct_config_once() -> None:
    calls: list[str] = []

    def build(raw: str) -> RoutePlan:
        calls.append(raw)
        return compile_plan(decode_config(raw, POLICY))

    cache = ConfigCache(build, size=2)
    one, two, bad = '{"provider":"openai"}', '{"provider":"groq"}', '{"strategy":{"mode":"x"}}'
    assert cache.get(one) is cache.get(one)
    for _ in range(2):
        with pytest.raises(GatewayError):
            cache.get(bad)
    assert calls == [one, bad]
    cache.get(two)  # evicts the least recently used (one)
    cache.get(one)
    assert calls == [one, bad, two, one]


def _first(plan: RoutePlan, rng: Callable[[], float]) -> str:
    return next(plan_targets(plan, rng=rng)).target.path


def test_walks_are_independent_per_request() -> None:
    plan = plan_of({"strategy": {"mode": "loadbalance"}, "targets": [t("a"), t("b")]})
    seeded = random.Random(7)
    picks = {_first(plan, seeded.random) for _ in range(50)}
    assert picks == {"config.targets[0]", "config.targets[1]"}


@settings(max_examples=300, deadline=None)
@given(
    weights=st.lists(st.sampled_from([0, 0, 0.5, 1, 2, 3, 7.25, 1e-3, 1e6]), min_size=1, max_size=8).filter(
        any
    ),
    rand=st.one_of(st.floats(min_value=0.0, max_value=1.0, exclude_max=True), st.just(1.0 - 2**-53)),
)
def test_loadbalance_never_picks_weight_zero(weights: list[float], rand: float) -> None:
    plan = plan_of(
        {"strategy": {"mode": "loadbalance"}, "targets": [t(str(i), weight=w) for i, w in enumerate(weights)]}
    )
    [path] = run(plan, rng=lambda: rand)
    assert weights[int(path.removeprefix("config.targets[").rstrip("]"))] > 0


def test_a_lone_anthropic_target_has_its_body_decoded_whole_once() -> None:
    """The handler decodes the body for the view and the mapping at once only where one
    provider, known from the config, maps it (Provider.chat_request_decoder)."""
    assert plan_of({"provider": "anthropic", "api_key": "k"}).chat_request_decoder is not None
    assert plan_of({"provider": "openai", "api_key": "k"}).chat_request_decoder is None
    two = {
        "strategy": {"mode": "fallback"},
        "targets": [{"provider": "anthropic"}, {"provider": "anthropic"}],
    }
    assert plan_of(two).chat_request_decoder is None
