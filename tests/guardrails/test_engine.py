"""Running hooks: verdicts, deny, fail-open errors, sequential and side-by-side checks,
transformations, feedback, skips, async hooks, and the results in Portkey's exact shape."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from fastgate.guardrails.check import Check, CheckOutcome
from fastgate.guardrails.compile import LeafHooks, compile_specs
from fastgate.guardrails.context import BEFORE, CHAT, EMBED, IMAGE_GENERATE, HookContext
from fastgate.guardrails.engine import after_request, before_request, spawn_async
from fastgate.guardrails.registry import Registry
from fastgate.guardrails.runtime import Runtime
from fastgate.guardrails.spec import HookSpec, shorthand_specs
from tests.guardrails.conftest import chat, chat_answer, context, leaf_hooks, plan_leaf

RUNTIME = Runtime(transport=None)  # type: ignore[arg-type]  # local checks never call out
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def encoded(value: Any) -> Any:
    return msgspec.json.decode(msgspec.json.encode(value))


async def test_a_denying_hook_that_fails_denies_and_others_only_fail() -> None:
    hooks = leaf_hooks(
        {
            "input_guardrails": [
                {"id": "soft", "contains": {"words": ["please"], "operator": "any"}},
                {"id": "hard", "deny": True, "regexMatch": {"rule": r"\d{16}", "not": True}},
            ]
        }
    )
    run = await before_request(hooks, context(chat("card 4111111111111111")), RUNTIME)
    assert run.denied and run.failed
    assert [(r.id, r.verdict, r.deny) for r in run.results] == [("soft", False, False), ("hard", False, True)]
    run = await before_request(hooks, context(chat("4111 please")), RUNTIME)
    assert not run.denied and not run.failed


async def test_results_have_portkeys_exact_shape() -> None:
    hooks = leaf_hooks(
        {"input_guardrails": [{"id": "g", "deny": True, "wordCount": {"minWords": 1, "maxWords": 9}}]}
    )
    run = await before_request(hooks, context(chat("two words")), RUNTIME)
    (hook,) = encoded(run.results)
    assert list(hook) == [
        "verdict",
        "id",
        "transformed",
        "checks",
        "feedback",
        "execution_time",
        "async",
        "type",
        "created_at",
        "deny",
    ]
    assert hook["verdict"] is True and hook["async"] is False and hook["type"] == "guardrail"
    assert hook["feedback"] is None and isinstance(hook["execution_time"], int)
    assert ISO_MS.match(hook["created_at"])
    (check,) = hook["checks"]
    assert list(check) == [
        "data",
        "verdict",
        "id",
        "execution_time",
        "transformed",
        "created_at",
        "log",
        "fail_on_error",
    ]  # "error" is absent when there is none, as in Portkey's JSON
    assert check["id"] == "default.wordCount" and check["data"]["wordCount"] == 2


async def test_check_errors_fail_open_unless_fail_on_error() -> None:
    hooks = leaf_hooks(
        {
            "input_guardrails": [
                {"id": "open", "deny": True, "regexMatch": {"rule": ""}},
                {"id": "closed", "deny": True, "regexMatch": {"rule": "", "failOnError": True}},
            ]
        }
    )
    run = await before_request(hooks, context(chat("text")), RUNTIME)
    first, second = encoded(run.results)
    assert first["verdict"] is True and first["checks"][0]["verdict"] is False
    assert first["checks"][0]["error"] == {"message": "Missing regex pattern", "name": "Error"}
    assert (
        second["verdict"] is False and second["deny"] is True and second["checks"][0]["fail_on_error"] is True
    )
    assert run.denied


class Boom(Check):
    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        raise RuntimeError("bug")


class Tag(Check):
    """Appends its ``tag`` to the last message (a transform that shows the order of checks)."""

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        text = ctx.text(event)
        return CheckOutcome(
            True, {"saw": text}, request=ctx.with_texts(event, [text + self.parameters["tag"]])
        )


def hooks_of(*specs: dict[str, Any]) -> LeafHooks:
    registry = Registry({"t.boom": Boom, "t.tag": Tag})
    parsed = [
        (msgspec.convert(s, HookSpec), f"config.before_request_hooks[{i}]") for i, s in enumerate(specs)
    ]
    return LeafHooks(compile_specs(parsed, registry), ())


async def test_a_check_that_raises_is_portkeys_check_error() -> None:
    run = await before_request(hooks_of({"id": "h", "checks": [{"id": "t.boom"}]}), context(), RUNTIME)
    (check,) = encoded(run.results)[0]["checks"]
    assert check["verdict"] is False and check["error"] == {
        "message": "Error executing check",
        "name": "Check error",
    }
    assert run.results[0].verdict is True  # it fails open too


async def test_side_by_side_checks_see_the_same_request_and_the_last_transform_wins() -> None:
    tags = [{"id": "t.tag", "parameters": {"tag": "A"}}, {"id": "t.tag", "parameters": {"tag": "B"}}]
    ctx = context(chat("x"))
    run = await before_request(hooks_of({"id": "h", "checks": tags}), ctx, RUNTIME)
    assert [c.data for c in run.results[0].checks] == [{"saw": "x"}, {"saw": "x"}]
    assert run.request is not None and run.request["messages"][-1]["content"] == "xB"


async def test_sequential_checks_and_successive_hooks_chain_their_transforms() -> None:
    tags = [{"id": "t.tag", "parameters": {"tag": "A"}}, {"id": "t.tag", "parameters": {"tag": "B"}}]
    run = await before_request(
        hooks_of({"id": "h", "sequential": True, "checks": tags}, {"id": "h2", "checks": [tags[0]]}),
        context(chat("x")),
        RUNTIME,
    )
    assert [c.data for c in run.results[0].checks] == [{"saw": "x"}, {"saw": "xA"}]
    assert run.results[0].transformed is True
    assert run.request is not None and run.request["messages"][-1]["content"] == "xABA"


async def test_disabled_checks_do_not_run() -> None:
    spec = {
        "id": "h",
        "checks": [{"id": "t.boom", "is_enabled": False}, {"id": "t.tag", "parameters": {"tag": "!"}}],
    }
    run = await before_request(hooks_of(spec), context(chat("x")), RUNTIME)
    assert [c.id for c in run.results[0].checks] == ["t.tag"]


async def test_feedback_on_fail_and_on_success() -> None:
    hooks = leaf_hooks(
        {
            "input_guardrails": [
                {
                    "on_fail": {"feedback": {"value": -10, "weight": 1, "metadata": {"user": "u"}}},
                    "on_success": {"feedback": {"value": 10}},
                    "contains": {"words": ["zebra"]},
                    "notNull": {},
                    "regexMatch": {"rule": ""},
                }
            ]
        }
    )
    run = await before_request(hooks, context(chat("fox")), RUNTIME)
    assert encoded(run.results[0].feedback) == {
        "value": -10,
        "weight": 1,
        "metadata": {
            "user": "u",
            "successfulChecks": "default.notNull",
            "failedChecks": "default.contains",
            "erroredChecks": "default.regexMatch",
        },
    }
    run = await before_request(hooks, context(chat("zebra")), RUNTIME)
    assert encoded(run.results[0].feedback)["value"] == 10


async def test_after_hooks_read_the_answer_and_are_skipped_unless_it_is_a_200() -> None:
    hooks = leaf_hooks(
        {"output_guardrails": [{"id": "o", "deny": True, "contains": {"words": ["bad"], "operator": "none"}}]}
    )
    ctx = context(chat("q"))
    run = await after_request(hooks, ctx, chat_answer("bad answer"), 200, RUNTIME)
    assert run.denied and run.results[0].id == "o"
    run = await after_request(hooks, ctx, {"error": {"message": "x"}}, 500, RUNTIME)
    assert run.results == [] and not run.failed


async def test_embeddings_run_before_guardrails_only() -> None:
    hooks = leaf_hooks(
        {
            "input_guardrails": [{"id": "g", "regexMatch": {"rule": "x"}}],
            "input_mutators": [{"id": "m", "addPrefix": {"prefix": "p"}}],
            "output_guardrails": [{"id": "o", "notNull": {}}],
        }
    )
    ctx = context({"model": "e", "input": "x"}, kind=EMBED)
    before = await before_request(hooks, ctx, RUNTIME)
    assert [r.id for r in before.results] == ["g"]
    after = await after_request(hooks, ctx, {"data": []}, 200, RUNTIME)
    assert after.results == []
    other = await before_request(hooks, context(chat("x"), kind="createSpeech"), RUNTIME)
    assert other.results == []


async def test_image_generations_run_before_guardrails_on_the_prompt() -> None:
    hooks = leaf_hooks(
        {
            "input_guardrails": [{"id": "g", "deny": True, "regexMatch": {"rule": "forbidden", "not": True}}],
            "input_mutators": [{"id": "m", "regexReplace": {"rule": "/secret/g", "redactText": "***"}}],
            "output_guardrails": [{"id": "o", "notNull": {}}],
        }
    )
    request = {"model": "gpt-image-1.5", "prompt": "a secret forbidden garden", "n": 1}
    ctx = context(request, kind=IMAGE_GENERATE)
    assert ctx.text(BEFORE) == "a secret forbidden garden"
    before = await before_request(hooks, ctx, RUNTIME)
    assert before.denied and [r.id for r in before.results] == ["g", "m"]
    assert before.request is not None and before.request["prompt"] == "a *** forbidden garden"
    assert request["prompt"] == "a secret forbidden garden"  # the gateway's own JSON is untouched
    after = await after_request(hooks, ctx, {"created": 1, "data": [{"b64_json": "QQ=="}]}, 200, RUNTIME)
    assert after.results == []  # an image answer has no text to judge


async def test_after_hooks_see_the_transformed_request_and_may_change_the_answer() -> None:
    hooks = leaf_hooks(
        {
            "input_mutators": [{"regexReplace": {"rule": "secret"}}],
            "output_guardrails": [{"regexReplace": {"rule": "/answer/g", "redactText": "A"}}],
        }
    )
    ctx = context(chat("my secret"))
    before = await before_request(hooks, ctx, RUNTIME)
    assert before.request is not None and before.request["messages"][-1]["content"] == "my [REDACTED]"
    after = await after_request(hooks, ctx, chat_answer("answer answer"), 200, RUNTIME)
    assert after.response is not None and after.response["choices"][0]["message"]["content"] == "A A"
    assert after.request is not None  # the request stays the transformed one


class Slow(Check):
    is_async = True
    seen: list[str] = []

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)

    async def run_async(self, ctx: HookContext, event: str, runtime: Runtime) -> CheckOutcome:
        await asyncio.sleep(0)
        Slow.seen.append(event)
        return CheckOutcome(False)


async def test_async_hooks_run_after_the_answer_and_change_nothing() -> None:
    registry = Registry({"t.slow": Slow})
    specs = shorthand_specs(
        [{"id": "a", "async": True, "deny": True, "t.slow": {}}], "input", "guardrail", "x"
    )
    hooks = LeafHooks(compile_specs(specs, registry), compile_specs(specs, registry))
    ctx = context(chat("x"))
    run = await before_request(hooks, ctx, RUNTIME)
    assert run.results == [] and not run.denied
    Slow.seen = []
    ctx.set_response(chat_answer("a"), 200)  # the answer went out
    task = spawn_async(hooks, ctx, RUNTIME)
    assert task is not None and Slow.seen == []
    await task
    assert Slow.seen == ["beforeRequestHook", "afterRequestHook"] and not RUNTIME.background


async def test_async_mutators_never_run() -> None:
    leaf = plan_leaf(
        {
            "provider": "openai",
            "api_key": "k",
            "input_mutators": [{"async": True, "addPrefix": {"prefix": "p"}}],
        }
    )
    assert leaf.hooks is None


async def test_hooks_without_checks_pass() -> None:
    hooks = leaf_hooks({"before_request_hooks": [{"id": "empty"}]})
    run = await before_request(hooks, context(kind=CHAT), RUNTIME)
    assert [(r.id, r.verdict, r.checks) for r in run.results] == [("empty", True, [])]
