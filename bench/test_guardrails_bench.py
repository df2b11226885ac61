"""Guardrails on the request path: three checks that need no network on a ~1 KB chat request.

Budget (issue 22): at most 15 µs of CPU per request over the same request without hooks, the two
timed in alternation in one run. Each side does what the gateway does for it: the config from the
config cache, the body decoded (a view without hooks; the whole object with them, which the
checks read and the view is taken from), and the answer's bytes; with hooks, the context, the
before-request hooks and the answer with its ``hook_results`` spliced in. The checks are compiled
once per config: the cache hands back the same compiled checks on every request.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
import pytest

from bench.conftest import interleaved_times
from fastgate.guardrails.context import CHAT, HookContext
from fastgate.guardrails.engine import HookRun, before_request
from fastgate.guardrails.outcome import json_answer
from fastgate.guardrails.runtime import Runtime
from fastgate.routing.config import ConfigCache, decode_config
from fastgate.routing.plan import Leaf, RoutePlan, compile_plan
from fastgate.schema.openai import object_decoder, view_decoder
from fastgate.ssrf import HostPolicy

POLICY = HostPolicy((), True)
TARGET = {"provider": "openai", "api_key": "sk-bench", "custom_host": "http://127.0.0.1:9/v1"}
PLAIN = msgspec.json.encode(TARGET).decode()
GUARDED = msgspec.json.encode(
    {
        **TARGET,
        "input_guardrails": [
            {
                "deny": True,
                "default.regexMatch": {"rule": r"\b(?:\d[ -]?){13,16}\b", "not": True},
                "default.wordCount": {"minWords": 1, "maxWords": 2000},
                "default.characterCount": {"minCharacters": 1, "maxCharacters": 20000},
            }
        ],
    }
).decode()
QUESTION = "Please summarise the following notes for the weekly report, keeping every number. " * 10
BODY = msgspec.json.encode(
    {
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": QUESTION},
        ],
    }
)
ANSWER = msgspec.json.encode(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Done."}, "finish_reason": "stop"}
        ],
    }
)
RUNTIME = Runtime(transport=None)  # type: ignore[arg-type]  # these checks never call out


def _cache() -> ConfigCache[str, RoutePlan]:
    return ConfigCache(lambda raw: compile_plan(decode_config(raw, POLICY)))


def _leaf(cache: ConfigCache[str, RoutePlan], raw: str) -> Leaf:
    root = cache.get(raw).root
    assert isinstance(root, Leaf)
    return root


def _resolved(coro: Any) -> HookRun:
    """The value of a coroutine that never waits (checks without I/O), without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise AssertionError("a local check waited")


def without_hooks(cache: ConfigCache[str, RoutePlan]) -> tuple[int, bytes]:
    leaf = _leaf(cache, PLAIN)
    view = view_decoder.decode(BODY)
    assert leaf.hooks is None and view.model
    return 200, ANSWER


def with_hooks(cache: ConfigCache[str, RoutePlan]) -> tuple[int, bytes]:
    leaf = _leaf(cache, GUARDED)
    hooks = leaf.hooks
    assert hooks is not None
    params = object_decoder.decode(BODY)
    ctx = HookContext(params, CHAT, leaf.target.provider)
    run = _resolved(before_request(hooks, ctx, RUNTIME))
    if run.denied:
        raise AssertionError("the bench request must pass")
    return json_answer(200, ANSWER, run)


@pytest.mark.benchmark(group="guardrails")
def test_request_without_hooks(measure: Any) -> None:
    assert measure(without_hooks, _cache()) == (200, ANSWER)


@pytest.mark.benchmark(group="guardrails")
def test_request_with_three_checks(measure: Any) -> None:
    status, body = measure(with_hooks, _cache())
    assert status == 200 and b'"hook_results"' in body


def test_budget_three_checks_add_at_most_15_us() -> None:
    assert 900 <= len(BODY) <= 1200
    cache = _cache()
    first = _leaf(cache, GUARDED).hooks
    # CPU time (the issue's measure): the time other tenants held the core is not the checks'.
    guarded, plain = interleaved_times(
        lambda: with_hooks(cache), lambda: without_hooks(cache), number=200, timer=time.thread_time
    )
    added_us = (guarded - plain) * 1e6
    print(
        f"\nper request: without hooks {plain * 1e6:.2f} µs, with three checks {guarded * 1e6:.2f} µs "
        f"(+{added_us:.2f} µs)"
    )
    # Compiled once: every request got the same compiled hooks from the config cache.
    assert _leaf(cache, GUARDED).hooks is first
    assert added_us <= 15.0
