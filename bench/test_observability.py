"""Observability's cost per request on the whole in-process request path (bench/inproc.py),
read from instruction counts under callgrind (``bench/instructions.py``), as the mapped-provider
budget is: on this shared 2-core machine CPU-time ratios move by several percent from run to run,
too much to hold 1.15x; the count of the instructions a request costs is the same in every run.

- the defaults (Prometheus metrics, the access log to /dev/null, the timing and cost headers)
  against everything off: issue 25's 1.15x;
- the defaults with tracing at 100% sampling to an in-process exporter: 1.35x. Only the event
  loop's thread is counted (callgrind ``--separate-threads``): the SDK's span objects are built
  and exported by the tracer's own thread, off the request path;
- the console idle (no console connected) costs nothing: no feed entry is even built.

    pytest bench/test_observability.py -s     (prints the counts)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from bench.inproc import new_bench
from bench.instructions import per_request
from fastgate._transforms import RequestRecord

TARGET_DEFAULTS, TARGET_TRACED = 1.15, 1.35


@pytest.mark.timeout(900)  # six runs under valgrind: about three minutes here
def test_budget_observability(valgrind: None) -> None:
    off, _ = per_request("openai", inclusive=False, observability="off")
    defaults, _ = per_request("openai", inclusive=False, observability="defaults")
    traced, _ = per_request("openai", inclusive=False, observability="traced")
    print(
        f"\ninstructions per request: everything off {off:,.0f}; metrics + access log + headers "
        f"{defaults:,.0f} ({defaults / off:.3f}x, budget {TARGET_DEFAULTS}x); with tracing at 100% "
        f"{traced:,.0f} ({traced / off:.3f}x, budget {TARGET_TRACED}x)"
    )
    assert defaults <= TARGET_DEFAULTS * off
    assert traced <= TARGET_TRACED * off


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.mark.timeout(120)
def test_the_idle_console_costs_nothing(loop: asyncio.AbstractEventLoop) -> None:
    bench = new_bench("openai")
    observability = bench.app.observability
    assert observability is not None
    published = observability.publish
    made = 0

    def counting(rec: RequestRecord, trace_id: str, given: bool, client: str, key: str) -> None:
        nonlocal made
        made += 1
        published(rec, trace_id, given, client, key)

    observability.publish = counting  # type: ignore[method-assign]

    async def run() -> None:
        await bench.start()
        try:
            await bench.run(500)
            assert made == 0, "no console connected: no entry built, nothing queued"
            sub = observability.feed.subscribe()
            await bench.run(10)
            assert made == 10 and len(await sub.next_batch(0)) == 10
            observability.feed.unsubscribe(sub)
            await bench.run(10)
            assert made == 10
        finally:
            await bench.stop()

    loop.run_until_complete(run())
