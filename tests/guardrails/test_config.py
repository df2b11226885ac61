"""Hooks in configs: full objects and shorthands, camelCase, inheritance over nested targets,
the default-guardrail headers, entry-point checks, and every refusal a 400 naming its path."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fastgate.errors import GatewayError
from fastgate.guardrails.checks import text as text_checks
from fastgate.guardrails.defaults import DefaultGuardrails
from fastgate.guardrails.registry import Registry
from fastgate.routing.config import ConfigCache, decode_config
from fastgate.routing.plan import Leaf, RoutePlan, compile_plan
from tests.guardrails.conftest import POLICY, leaf_hooks, plan_leaf

TARGET = {"provider": "openai", "api_key": "sk-test"}


def refusal(config: dict[str, Any]) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        compile_plan(decode_config(msgspec.json.encode(config).decode(), POLICY))
    assert info.value.status == 400
    return info.value


def test_shorthand_keys_are_checks_and_reserved_keys_the_hook() -> None:
    hooks = leaf_hooks(
        {
            "input_guardrails": [
                {
                    "id": "pii",
                    "deny": True,
                    "on_fail": {"feedback": {"value": -1}},
                    "regexMatch": {"rule": "x"},
                    "mine": {"id": "default.wordCount", "maxWords": 3},
                    "default.alluppercase": {"is_enabled": False},
                    "notNull": True,
                }
            ],
            "output_mutators": [{"regexReplace": {"rule": "y"}}],
        }
    )
    (hook,) = hooks.before
    assert (hook.id, hook.type, hook.deny, hook.sequential) == ("pii", "guardrail", True, False)
    assert [c.id for c in hook.checks] == ["default.regexMatch", "default.wordCount", "default.notNull"]
    assert hook.on_fail is not None and hook.on_fail.value == -1
    (mutator,) = hooks.after
    assert mutator.type == "mutator" and mutator.sequential and mutator.id.startswith("output_guardrail_")


def test_full_hook_objects_in_camel_case() -> None:
    hooks = leaf_hooks(
        {
            "beforeRequestHooks": [
                {
                    "id": "h1",
                    "type": "guardrail",
                    "async": True,
                    "onSuccess": {"feedback": {"weight": 2, "metadata": {"team_name": "t"}}},
                    "checks": [
                        {"id": "default.wordCount", "parameters": {"minWords": 1}},
                        {"id": "characterCount", "parameters": {}, "is_enabled": False},
                    ],
                }
            ],
            "afterRequestHooks": [{"id": "h2", "checks": [{"id": "default.notNull"}]}],
        }
    )
    assert hooks.before == () and [h.id for h in hooks.before_async] == ["h1"]
    (hook,) = hooks.before_async
    assert [c.id for c in hook.checks] == ["default.wordCount"]
    assert hook.checks[0].parameters == {"minWords": 1}  # parameter names are not snake-cased
    assert hook.on_success is not None and hook.on_success.metadata == {"team_name": "t"}
    assert [h.type for h in hooks.after] == ["guardrail"]


def test_order_is_full_hooks_then_guardrails_then_mutators() -> None:
    hooks = leaf_hooks(
        {
            "before_request_hooks": [{"id": "full", "checks": []}],
            "input_mutators": [{"id": "mut", "addPrefix": {"prefix": "p"}}],
            "input_guardrails": [{"id": "guard", "notNull": {}}],
        }
    )
    assert [h.id for h in hooks.before] == ["full", "guard", "mut"]


def test_targets_inherit_hooks_and_their_own_replace_them() -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "input_guardrails": [{"id": "root-in", "notNull": {}}],
        "output_guardrails": [{"id": "root-out", "notNull": {}}],
        "targets": [
            TARGET,
            {**TARGET, "input_guardrails": [{"id": "own-in", "notNull": {}}]},
            {**TARGET, "before_request_hooks": []},
            {"strategy": {"mode": "single"}, "targets": [TARGET]},
        ],
    }
    plan = compile_plan(decode_config(msgspec.json.encode(config).decode(), POLICY))
    leaves = plan.leaves()
    ids = [
        ([h.id for h in leaf.hooks.before], [h.id for h in leaf.hooks.after]) if leaf.hooks else None
        for leaf in leaves
    ]
    assert ids == [
        (["root-in"], ["root-out"]),
        (["own-in"], ["root-out"]),  # before and after are inherited each on its own
        ([], ["root-out"]),  # an empty list clears what is inherited
        (["root-in"], ["root-out"]),
    ]
    # One compilation per node: every leaf that inherits shares the same hooks.
    assert leaves[0].hooks is not None and leaves[3].hooks is not None
    assert leaves[0].hooks.before[0] is leaves[3].hooks.before[0]


def test_a_leaf_without_hooks_carries_none() -> None:
    assert plan_leaf(TARGET).hooks is None
    assert plan_leaf({**TARGET, "input_guardrails": []}).hooks is None


def test_header_overrides_keep_the_leaf_hooks() -> None:
    leaf = plan_leaf({**TARGET, "input_guardrails": [{"notNull": {}}]})
    assert leaf.overridden({"request_timeout": 5}).hooks is leaf.hooks


@pytest.mark.parametrize(
    ("config", "param", "words"),
    [
        (
            {
                "strategy": {"mode": "fallback"},
                "targets": [TARGET, {**TARGET, "input_guardrails": [{"notNull": {}, "nope": {}}]}],
            },
            "config.targets[1].input_guardrails[0].checks[1].id",
            "unknown check 'default.nope'",
        ),
        (
            {
                **TARGET,
                "before_request_hooks": [
                    {"id": "h", "checks": [{"id": "default.notNull"}, {"id": "foo.bar"}]}
                ],
            },
            "config.before_request_hooks[0].checks[1].id",
            "unknown check 'foo.bar'",
        ),
        (
            {**TARGET, "output_guardrails": [{"portkey.pii": {"credentials": {}}}]},
            "config.output_guardrails[0].checks[0].id",
            "hosted service",
        ),
        (
            {**TARGET, "input_guardrails": [{"regexMatch": {"rule": "(?=lookahead)x"}}]},
            "config.input_guardrails[0].checks[0].parameters",
            "cannot be compiled by RE2",
        ),
        (
            {**TARGET, "input_guardrails": [{"regexReplace": {"rule": "/x/q"}}]},
            "config.input_guardrails[0].checks[0].parameters",
            "invalid regex flags",
        ),
        (
            {**TARGET, "input_guardrails": ["pg-abc123"]},
            "config.input_guardrails[0]",
            "write the guardrail inline",
        ),
        (
            {**TARGET, "input_guardrails": [{"regexMatch": "x"}]},
            "config.input_guardrails[0].regexMatch",
            "object of its parameters",
        ),
        (
            {**TARGET, "input_guardrails": [{"deny": "yes", "notNull": {}}]},
            "config.input_guardrails[0]",
            "Expected `bool`",
        ),
        (
            {
                **TARGET,
                "input_guardrails": [{"jwt": {"jwksUri": "http://127.0.0.1/j", "maxTokenAge": "soon"}}],
            },
            "config.input_guardrails[0].checks[0].parameters",
            "maxTokenAge",
        ),
    ],
)
def test_refusals_name_the_path(config: dict[str, Any], param: str, words: str) -> None:
    error = refusal(config)
    assert error.param == param
    assert words in error.message and param in error.message


def test_a_bad_hook_object_is_refused_with_its_path() -> None:
    error = refusal({**TARGET, "before_request_hooks": [{"id": "h", "checks": [{"id": 3}]}]})
    assert "before_request_hooks[0].checks[0].id" in error.message


def test_checks_are_compiled_once_per_config(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real = text_checks.compile_pattern

    def counting(source: str, where: str, **kw: Any) -> Any:
        compiled.append(source)
        return real(source, where, **kw)

    monkeypatch.setattr(text_checks, "compile_pattern", counting)
    config = msgspec.json.encode({**TARGET, "input_guardrails": [{"regexMatch": {"rule": "abc"}}]}).decode()
    cache: ConfigCache[str, RoutePlan] = ConfigCache(lambda raw: compile_plan(decode_config(raw, POLICY)))
    roots = [cache.get(config).root for _ in range(50)]
    assert compiled == ["abc"]
    assert all(isinstance(r, Leaf) and r.hooks is roots[0].hooks for r in roots)  # type: ignore[union-attr]


def test_default_guardrail_headers() -> None:
    reader = DefaultGuardrails(POLICY)
    assert reader.read({}) is None
    headers = {
        "x-portkey-default-input-guardrails": '[{"deny": true, "regexMatch": {"rule": "x"}}]',
        "x-portkey-default-output-guardrails": '[{"notNull": {}}]',
    }
    hooks = reader.read(headers)
    assert hooks is not None and reader.read(dict(headers)) is hooks  # compiled once per value
    assert [h.deny for h in hooks.before] == [True] and len(hooks.after) == 1
    assert hooks.before[0].id.startswith("input_guardrail_") and hooks.after[0].id.startswith(
        "output_guardrail_"
    )
    own = leaf_hooks({"input_guardrails": [{"id": "own", "notNull": {}}]})
    joined = own.joined(hooks)
    assert [h.id for h in joined.before] == ["own", hooks.before[0].id]  # defaults after the target's


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ("not json", "x-portkey-default-input-guardrails"),
        ('{"a": 1}', "x-portkey-default-input-guardrails"),
        ('[{"nope": {}}]', "x-portkey-default-input-guardrails[0].checks[0].id"),
    ],
)
def test_bad_default_guardrail_headers(value: str, param: str) -> None:
    with pytest.raises(GatewayError) as info:
        DefaultGuardrails(POLICY).read({"x-portkey-default-input-guardrails": value})
    assert info.value.status == 400 and info.value.param == param


def test_entry_point_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's package adds ``myorg.*`` checks through the entry-point group."""
    (tmp_path / "myorg_checks.py").write_text(
        textwrap.dedent(
            """
            from fastgate.guardrails import Check, CheckOutcome, ConfigError

            def no_ssn(ctx, parameters, event):
                found = "123-45-6789" in ctx.text(event)
                return CheckOutcome(not found, {"explanation": "ssn" if found else "clean"})

            class Shout(Check):
                def __init__(self, id, parameters):
                    super().__init__(id, parameters)
                    if "level" not in parameters:
                        raise ConfigError("level is required")

                def run(self, ctx, event):
                    return CheckOutcome(ctx.text(event).isupper())
            """
        )
    )
    info = tmp_path / "myorg_checks-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myorg-checks\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[fastgate.guardrails]\nmyorg.ssn = myorg_checks:no_ssn\nmyorg.shout = myorg_checks:Shout\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = Registry()
    ssn = registry.get("myorg.ssn")
    shout = registry.get("myorg.shout")
    assert ssn is not None and shout is not None
    from tests.guardrails.conftest import chat, context

    check = ssn("myorg.ssn", {})
    assert check.run(context(chat("my ssn 123-45-6789")), "beforeRequestHook").verdict is False
    assert shout("myorg.shout", {"level": 1}).run(context(chat("HI")), "beforeRequestHook").verdict is True
    with pytest.raises(ValueError, match="level is required"):
        shout("myorg.shout", {})
