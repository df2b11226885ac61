"""Which Redis client carries the shared-state check, decided by measuring at concurrency 64.

The check a request with limits and a cache costs (``RedisStore.admit`` on a cache miss: a
gateway key's script, a virtual key's, the cached answer's ``GET``, one round trip), sent by 64
tasks at once against a loopback ``redis-server`` through:

- ``old``: fastgate's first client (``bench/resp_baseline.py``): one plain connection, automatic
  pipelining, replies parsed in Python;
- ``new``: ``fastgate/store/client.py``: the same pipelining on one redis-py connection (TLS,
  ACL, Sentinel, Cluster; hiredis parses);
- ``redis-py``: redis-py's own asyncio client, a pooled connection per command in flight
  (``pipeline(transaction=False)``, 64 connections at 64 in flight).

The same commands go through each; ``new+store`` is the whole check through the new client
(``RedisStore.admit``: keys built, replies read into a verdict). Budgets on this process's CPU
per check (the cost the check adds to a gateway; the wall time is mostly Redis's own work, on
the other core), the rows timed in alternating batches: ``new`` under 0.75x redis-py's pooled
client (why the pipelining was kept), and under 1.5x ``old`` (what redis-py's connection costs
on top of it). ``python -m bench.test_redis_clients`` prints the four rows of one run: README's
figure, also written to ``bench/results/redis_clients.txt``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_py

from bench.resp_baseline import Redis as OldClient
from fastgate.store.base import LimitRule, window
from fastgate.store.client import RedisClient
from fastgate.store.redis import RedisStore, _scope_key
from tests.redis_server import RedisProcess, free_port, redis_server  # noqa: F401

CONCURRENCY = 64
#: The figures of the last ``python -m bench.test_redis_clients``, for a closing note to name.
RESULTS = Path(__file__).parent / "results" / "redis_clients.txt"
#: Checks per task in one timed batch (64 x 40 = 2,560 checks).
PER_TASK = 40
NOW = 1_800_000_000.0
RULES = [
    LimitRule(scope="key:bench", rpm=10**9, tpm=10**9, budget_tokens=10**12),
    LimitRule(scope="virtual_key:bench", rpm=10**9, budget_cost=10**9),
]
Check = Callable[[], Awaitable[Any]]


def check_commands() -> list[tuple[Any, ...]]:
    """The commands of one check, as ``RedisStore.admit`` sends them (a cache miss)."""
    from fastgate.store.redis import _ADMIT

    current, commands = window(NOW), []
    for rule in RULES:
        base = _scope_key(rule.scope)
        keys = (f"{base}:r:{current}", f"{base}:t:{current}", f"{base}:spent")
        args = (rule.rpm, rule.tpm, rule.budget_tokens, rule.budget_cost, 120)
        commands.append(_ADMIT.command(keys, args))
    return [*commands, ("GET", "fastgate:cache:miss")]


class Clients:
    """The three clients on one loop, each ready to run the check."""

    def __init__(self, loop: asyncio.AbstractEventLoop, url: str) -> None:
        self.loop = loop
        self.new = RedisClient.from_url(url)
        self.store = RedisStore(self.new)
        self.old = OldClient(url)
        self.pooled = redis_py.Redis.from_url(url, max_connections=CONCURRENCY, protocol=2)
        self.commands = check_commands()
        loop.run_until_complete(self.new.pipeline(self.commands))  # scripts loaded, connected

    async def with_new(self) -> Any:
        return await self.new.pipeline(self.commands)

    async def whole_check(self) -> Any:
        """The new client under the store: keys built, replies read into a verdict."""
        return await self.store.admit(RULES, "miss", NOW)

    async def with_old(self) -> Any:
        return await self.old.pipeline(self.commands)

    async def with_redis_py(self) -> Any:
        async with self.pooled.pipeline(transaction=False) as pipe:
            for command in self.commands:
                pipe.execute_command(*command)
            return await pipe.execute()

    def batch(self, check: Check) -> Callable[[], None]:
        """One timed batch: 64 tasks, each running the check ``PER_TASK`` times in a row."""

        async def task() -> None:
            for _ in range(PER_TASK):
                await check()

        async def all_tasks() -> None:
            await asyncio.gather(*(task() for _ in range(CONCURRENCY)))

        return lambda: self.loop.run_until_complete(all_tasks())

    def close(self) -> None:
        self.loop.run_until_complete(self.new.close())
        self.loop.run_until_complete(self.old.close())
        self.loop.run_until_complete(self.pooled.aclose())


@pytest.fixture
def clients(redis_server: RedisProcess) -> Iterator[Clients]:  # noqa: F811
    import uvloop

    loop = uvloop.new_event_loop()
    made = Clients(loop, redis_server.url)
    yield made
    made.close()
    loop.close()


def best_per_check(clients: Clients, slices: int) -> dict[str, tuple[float, float]]:
    """µs per check, wall and this process's CPU, the best of ``slices`` batches of each row
    taken in alternation (so every row sees the same machine). The CPU is the gateway's added
    cost; the wall time also holds Redis's own work, on the other core."""
    rows = {
        "old": clients.with_old,
        "new": clients.with_new,
        "redis-py": clients.with_redis_py,
        "new+store": clients.whole_check,
    }
    best = {name: (float("inf"), float("inf")) for name in rows}
    checks = CONCURRENCY * PER_TASK
    for _ in range(slices):
        for name, check in rows.items():
            batch = clients.batch(check)
            wall, cpu = time.perf_counter(), time.process_time()
            batch()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[name] = (min(best[name][0], wall / checks * 1e6), min(best[name][1], cpu / checks * 1e6))
    return best


def test_all_three_answer_the_same(clients: Clients) -> None:
    run = clients.loop.run_until_complete

    def reasons(replies: list[Any]) -> list[Any]:
        """The admit scripts' reasons (their replies also hold the window's counts, which grow)."""
        return [reply[0] if isinstance(reply, list) else reply for reply in replies]

    assert reasons(run(clients.with_new())) == [0, 0, None]
    assert reasons(run(clients.with_old())) == [0, 0, None]
    assert reasons(run(clients.with_redis_py())) == [0, 0, None]
    verdict = run(clients.whole_check())
    assert (verdict.refused, verdict.cached) == (None, None)


@pytest.mark.timeout(120)
def test_the_pipelined_client_beats_the_pool(clients: Clients) -> None:
    best = best_per_check(clients, slices=5)
    cpu = {name: per_check[1] for name, per_check in best.items()}
    print(f"\nc={CONCURRENCY} CPU µs/check: " + ", ".join(f"{n} {v:.1f}" for n, v in cpu.items()))
    assert cpu["new"] < 0.75 * cpu["redis-py"]
    assert cpu["new"] < 1.5 * cpu["old"]


def report(url: str, slices: int = 7) -> None:
    import uvloop

    loop = uvloop.new_event_loop()
    clients = Clients(loop, url)
    best = best_per_check(clients, slices)
    clients.close()
    loop.close()
    lines = [f"shared-state check (cache miss), c={CONCURRENCY}, loopback redis-server, best of {slices}:"]
    lines += [
        f"  {name:9s} {wall:6.1f} µs/check wall  {cpu:6.1f} µs/check CPU"
        for name, (wall, cpu) in best.items()
    ]
    print("\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    server = RedisProcess(free_port())
    server.start()
    try:
        report(server.url, int(sys.argv[1]) if len(sys.argv) > 1 else 7)
    finally:
        server.stop()
