"""Guardrails on the request path: three checks that need no network on a ~1 KB chat request.

Budget (issue 22): at most 15 µs of CPU per request over the same request without hooks. It is held
by instruction count (callgrind, ``bench/instructions.py``): the whole in-process request with the
three checks in its config against the same request with an empty config, observability off, at
most 210,000 instructions more. That is 15 µs at the rate the machine the budget was set and last
met on ran this path (its count then, 188,700 instructions for the part the timing below covers,
took +13.0-13.4 µs there, 2026-12-07): a count is the same on every machine and under any other
tenant, where a time is not. As a time, held as a ratio to the part of the request without hooks
(6x its 2.5 µs there), it failed on the machine of 2026-12-07's seventh session with the code
unchanged: that machine runs the checks 1.5x slower and the rest of the request 1.2x slower, so
no ratio of the two stays put (+20.4 µs, 6.9x there). The timing is still printed.

Each side of the timing is what the gateway does for its request, on the real objects: the options
and plan from the config cache, the exchange seeing the stages arrive, the body decoded (a view
without hooks; whole, the view taken from it, with them, as ``Gateway._infer`` does); then, for
the guarded request only (no stage engages for the other), what ``Gateway._staged`` does around the
upstream call: the attempt engaging the stages (the guardrails stage's context), their ``before``
(the three checks), their ``after`` on the upstream's answer (``hook_results`` spliced in) and
``end``. The upstream call, the same for both, is left out, as are the HTTP parsing and writing;
the whole request in one process is ``python -m bench.inproc --config '<config>'``. The checks are
compiled once per config.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Coroutine, Iterator
from typing import Any

import msgspec
import pytest

from bench.conftest import interleaved_times
from bench.inproc import OBSERVABILITY, chat_body, openai_answer
from bench.instructions import per_request
from fastgate.gateway.app import App, make_app
from fastgate.gateway.pipeline import Exchange, Pipeline
from fastgate.gateway.relay import Outcome
from fastgate.providers.base import Call, Endpoint
from fastgate.providers.registry import get_provider
from fastgate.routing.plan import Leaf
from fastgate.schema.openai import RequestView, object_decoder, view_decoder
from fastgate.server.messages import Request
from fastgate.settings import Settings

CHECKS = {
    "deny": True,
    "default.regexMatch": {"rule": r"\b(?:\d[ -]?){13,16}\b", "not": True},
    "default.wordCount": {"minWords": 1, "maxWords": 2000},
    "default.characterCount": {"minCharacters": 1, "maxCharacters": 20000},
}
BODY = chat_body(False)
ANSWER = openai_answer(False)[0].partition(b"\r\n\r\n")[2]
PROVIDER = get_provider("openai")


def _headers(config: dict[str, Any]) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": "http://127.0.0.1:9/v1",
        "authorization": "Bearer sk-bench",
        "x-portkey-config": json.dumps(config),
    }


PLAIN = _headers({})
GUARDED = _headers({"input_guardrails": [CHECKS]})


def _resolved(coro: Coroutine[Any, Any, Any]) -> Any:
    """The value of a coroutine that never waits (checks without I/O), without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("a local check waited")


@pytest.fixture
def app() -> Iterator[App]:
    loop = asyncio.new_event_loop()
    app = make_app(Settings(port=0, **OBSERVABILITY["off"]))  # the stages alone, not the record
    loop.run_until_complete(app.startup())
    yield app
    loop.run_until_complete(app.cleanup())
    loop.close()


def _arrived(app: App, headers: dict[str, str]) -> tuple[Exchange, Leaf]:
    request = Request(None, "POST", "/v1/chat/completions", "", headers, BODY, True)  # type: ignore[arg-type]
    ex = Exchange(request=request, endpoint=Endpoint.CHAT, headers=headers, body=BODY, view=None)  # type: ignore[arg-type]
    app.gateway.pipeline.arrive(ex)
    ex.opts = app.gateway.reader.read(headers)
    plan = ex.opts.plan
    assert plan is not None and isinstance(plan.root, Leaf)
    return ex, plan.root


def without_hooks(app: App) -> tuple[int, bytes]:
    ex, leaf = _arrived(app, PLAIN)
    ex.view = view_decoder.decode(BODY)
    assert not app.gateway.pipeline.for_leaf(leaf)  # no stage: the answer goes out as it came
    return 200, ANSWER


def with_hooks(app: App) -> tuple[int, bytes]:
    ex, leaf = _arrived(app, GUARDED)
    pipeline = app.gateway.pipeline
    ex.params = params = object_decoder.decode(BODY)
    ex.view = view = msgspec.convert(params, RequestView)
    call = Call(endpoint=Endpoint.CHAT, target=leaf.target, body=BODY, view=view)
    at = pipeline.engage(ex, leaf, call, pipeline.for_leaf(leaf))
    assert at is not None
    at.provider = PROVIDER
    if _resolved(Pipeline.before(ex, at)) is not None:
        raise AssertionError("the bench request must pass")
    answer = Outcome(status=200, provider=PROVIDER, call=at.call, body=ANSWER)
    ex.outcome = outcome = _resolved(Pipeline.after(ex, at, answer))
    pipeline.end(ex)
    return outcome.status, outcome.body or b""


@pytest.mark.benchmark(group="guardrails")
def test_request_without_hooks(measure: Any, app: App) -> None:
    assert measure(without_hooks, app) == (200, ANSWER)


@pytest.mark.benchmark(group="guardrails")
def test_request_with_three_checks(measure: Any, app: App) -> None:
    status, body = measure(with_hooks, app)
    assert status == 200 and b'"hook_results"' in body


@pytest.mark.timeout(600)  # four runs under valgrind: about a minute here
def test_budget_three_checks_add_at_most_15_us(app: App, valgrind: None) -> None:
    assert 900 <= len(BODY) <= 1200
    status, body = with_hooks(app)
    hook_results = msgspec.json.decode(body)["hook_results"]
    assert status == 200 and [c["verdict"] for c in hook_results["before_request_hooks"][0]["checks"]] == [
        True,
        True,
        True,
    ]
    # CPU time (the measure), printed: rounds of batches timed alternately, the best
    # round the estimate least disturbed by other tenants (bench/conftest.py), the median beside it.
    added, ratios = [], []
    for _ in range(25):
        guarded, plain = interleaved_times(
            lambda: with_hooks(app), lambda: without_hooks(app), rounds=8, number=100, timer=time.thread_time
        )
        added.append((guarded - plain) * 1e6)
        ratios.append((guarded - plain) / plain)
    median_added, median_ratio = statistics.median(added), statistics.median(ratios)
    print(
        f"\nper request: without hooks {plain * 1e6:.2f} µs, with three checks +{min(added):.2f} µs, "
        f"{min(ratios):.2f}x the request (best of {len(added)} rounds; medians +{median_added:.2f} µs, "
        f"{median_ratio:.2f}x)"
    )
    # Compiled once: every request gets the same compiled hooks from the config cache.
    assert _arrived(app, GUARDED)[1].hooks is _arrived(app, GUARDED)[1].hooks is not None
    # The budget, by count: the whole request in process, with the checks and with an empty config.
    checked, _ = per_request("openai", config=json.dumps({"input_guardrails": [CHECKS]}), observability="off")
    unchecked, _ = per_request("openai", config="{}", observability="off")
    print(
        f"instructions per request: without hooks {unchecked:,.0f}, "
        f"with three checks +{checked - unchecked:,.0f}"
    )
    assert checked - unchecked <= 210_000
