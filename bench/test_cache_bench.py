"""What the cache and the limits add to a request.

- A cache hit: the work from the routed target to the cached answer (limit rules, cache key
  over the canonical body, in-process LRU lookup, the answer's Outcome). Budget: under 100 µs
  per call (best of 60 batches, which other tenants' bursts cannot push over), and the path
  with nothing configured stays under 5 µs.
- A limit check with Redis: one pipeline of an ``EVALSHA`` per scope (each checks its rules
  and counts the request) and the cached answer's ``GET``. Budget: under half the time of the
  same reads and writes sent one command at a time (11 round trips), and under 4x a bare
  ``PING`` (the scripts' own work on the server makes it more than 1). Each pair is timed alternately.
  ``tests/limits/test_round_trips.py`` counts the commands a request sends.
- The semantic cache's similarity search, compiled vs. the same loop in Python.
"""

from __future__ import annotations

import asyncio
import math
import operator
import time
from array import array
from collections.abc import Coroutine, Iterator
from functools import partial
from typing import Any

import pytest

from bench.conftest import best_time, interleaved_ratio, require_measured
from fastgate._transforms import best_match
from fastgate.gateway.options import RequestOptions
from fastgate.gateway.pipeline import Attempt, Exchange, Pipeline
from fastgate.gateway.stages.cache import CacheStage
from fastgate.gateway.stages.keys import KeysStage
from fastgate.gateway.stages.limits import LimitsStage
from fastgate.keys.models import GatewayKey, Limits
from fastgate.limits.guard import Guard
from fastgate.providers.base import Call, Endpoint, Target
from fastgate.providers.registry import get_provider
from fastgate.routing.config import CacheSettings
from fastgate.routing.plan import Leaf
from fastgate.schema.openai import RequestView
from fastgate.server.messages import Request
from fastgate.store.base import LimitRule
from fastgate.store.client import RedisClient
from fastgate.store.memory import MemoryStore
from fastgate.store.redis import RedisStore
from tests.redis_server import RedisProcess, redis_server  # noqa: F401

BODY = (
    b'{"model":"gpt-4o-mini","temperature":0.2,"messages":[{"role":"system","content":"You are terse."},'
    b'{"role":"user","content":"Name three prime numbers and say why each one is prime."}]}'
)
CACHE = CacheSettings(mode="simple", max_age=3600)


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Drive a coroutine that never suspends (the memory store) without an event loop's overhead."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the coroutine suspended")


def _call() -> Call:
    target = Target(provider="openai", api_key="sk-bench", custom_host="http://127.0.0.1:9/v1")
    return Call(endpoint=Endpoint.CHAT, target=target, body=BODY, view=RequestView(model="gpt-4o-mini"))


def _pipeline(guard: Guard) -> tuple[Pipeline, CacheStage]:
    keys = KeysStage(None)
    cache = CacheStage(guard, None, lambda target: keys.resolved(target)[0])
    return Pipeline([keys, LimitsStage(guard), cache]), cache


def _hit(pipeline: Pipeline, key: GatewayKey | None, cache: CacheSettings | None) -> Any:
    """From the routed target to the cached answer (or None): the stages' work before a call."""
    call = _call()
    ex = Exchange(
        request=REQUEST, endpoint=Endpoint.CHAT, headers={}, body=BODY, opts=OPTIONS, view=call.view
    )
    ex.key = key
    pipeline.arrive(ex)
    leaf = Leaf(call.target, None, cache)
    leaf_stages = pipeline.for_leaf(leaf)
    at = pipeline.engage(ex, leaf, call, leaf_stages) if ex.stages or leaf_stages else None
    if at is None:
        return None
    at.provider = get_provider(call.target.provider)
    return run_now(pipeline.before(ex, at))


REQUEST = Request(None, "POST", "/v1/chat/completions", "", {}, BODY, True)  # type: ignore[arg-type]
OPTIONS = RequestOptions(trace_id="bench", plan=None)


def test_cache_hit_added_work(measure: Any) -> None:
    guard = Guard(MemoryStore())
    pipeline, stage = _pipeline(guard)
    key = GatewayKey(id="bench", limits=Limits(rpm=10**9, tpm=10**9))
    assert _hit(pipeline, key, CACHE) is None
    ex = Exchange(request=REQUEST, endpoint=Endpoint.CHAT, headers={}, body=BODY, opts=OPTIONS, key=key)
    at = Attempt(Leaf(_call().target, None, CACHE), _call(), notes={})
    assert stage.engage(ex, at) and at.lookup is not None
    guard.store.cache.put(at.lookup, b'J{"id":"x"}', 3600, time.time())  # type: ignore[attr-defined]
    outcome = measure(_hit, pipeline, key, CACHE)
    assert outcome is not None
    assert outcome.body == b'{"id":"x"}'
    assert best_time(lambda: _hit(pipeline, key, CACHE)) < 100e-6


def test_nothing_configured_added_work(measure: Any) -> None:
    pipeline, _ = _pipeline(Guard(MemoryStore()))
    assert measure(_hit, pipeline, None, None) is None
    assert best_time(lambda: _hit(pipeline, None, None)) < 5e-6


RULES = [
    LimitRule(scope="key:bench", rpm=10**9, tpm=10**9, budget_tokens=10**12),
    LimitRule(scope="virtual_key:bench", rpm=10**9, budget_cost=10**9),
]


class RedisChecks:
    """The three timed Redis calls, each one blocking call from outside the loop (as the
    benchmark drives them)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, redis: RedisClient) -> None:
        self.loop, self.redis, self.store = loop, redis, RedisStore(redis)
        loop.run_until_complete(self.store.cache_put("bench", b"J{}", 3600))

    def ping(self) -> Any:
        return self.loop.run_until_complete(self.redis.execute("PING"))

    def admit(self) -> Any:
        return self.loop.run_until_complete(self.store.admit(RULES, "bench", 1_800_000_000.0))

    def one_command_at_a_time(self) -> Any:
        """The baseline: the same reads and writes as separate round trips, as a client without
        scripts or pipelining would send them."""
        return self.loop.run_until_complete(self._naive())

    async def _naive(self) -> Any:
        redis = self.redis
        for scope in ("key:bench", "virtual_key:bench"):
            await redis.execute("GET", f"fastgate:limit:{scope}:r:1")
            await redis.execute("GET", f"fastgate:limit:{scope}:t:1")
            await redis.execute("HGET", f"fastgate:limit:{scope}:spent", "tokens")
            await redis.execute("INCR", f"fastgate:limit:{scope}:r:1")
            await redis.execute("EXPIRE", f"fastgate:limit:{scope}:r:1", 120)
        return await redis.execute("GET", "fastgate:cache:bench")


@pytest.fixture
def redis_checks(redis_server: RedisProcess) -> Iterator[RedisChecks]:  # noqa: F811
    loop = asyncio.new_event_loop()
    redis = RedisClient.from_url(redis_server.url)
    yield RedisChecks(loop, redis)
    loop.run_until_complete(redis.close())
    loop.close()


def test_redis_ping(measure: Any, redis_checks: RedisChecks) -> None:
    assert measure(redis_checks.ping) == b"PONG"


def test_redis_limits_and_cache_lookup(measure: Any, redis_checks: RedisChecks) -> None:
    verdict = measure(redis_checks.admit)
    assert verdict.refused is None
    assert verdict.cached == b"J{}"


def test_redis_same_checks_one_command_at_a_time(measure: Any, redis_checks: RedisChecks) -> None:
    measure(redis_checks.one_command_at_a_time)


def test_redis_check_is_one_round_trip(redis_checks: RedisChecks) -> None:
    # One round trip plus the script's work: a fraction of the same work one command at a time
    # (11 round trips), and within a few round trips' time of a bare PING even on a busy machine.
    require_measured("test_redis_limits_and_cache_lookup", "test_redis_ping")
    naive = redis_checks.one_command_at_a_time
    to_naive = interleaved_ratio(redis_checks.admit, naive, rounds=20, number=5)
    to_ping = interleaved_ratio(redis_checks.admit, redis_checks.ping, rounds=30, number=20)
    print(f"\nredis check / one command at a time {to_naive:.2f}, / PING {to_ping:.2f}")
    assert to_naive < 0.5
    assert to_ping < 4.0


def _vectors() -> tuple[bytes, list[bytes]]:
    rows = [[math.sin(i * 0.37 + j) for j in range(1536)] for i in range(257)]
    return array("f", rows[0]).tobytes(), [array("f", r).tobytes() for r in rows[1:]]


def _python_best_match(query: bytes, candidates: list[bytes]) -> tuple[int, float]:
    q = array("f", query)
    qn = math.sqrt(sum(x * x for x in q))
    best, best_index = -1.0, -1
    for i, raw in enumerate(candidates):
        c = array("f", raw)
        sim = sum(map(operator.mul, q, c)) / (qn * math.sqrt(sum(x * x for x in c)))
        if sim > best:
            best, best_index = sim, i
    return best_index, best


def test_semantic_match_compiled(measure: Any) -> None:
    query, candidates = _vectors()
    assert measure(best_match, query, candidates)[0] == _python_best_match(query, candidates)[0]


def test_semantic_match_python(measure: Any) -> None:
    measure(_python_best_match, *_vectors())


def test_semantic_match_budget() -> None:
    # 256 prompts of 1536 dimensions: the compiled loop is what keeps a lookup under a millisecond.
    require_measured("test_semantic_match_compiled", "test_semantic_match_python")
    query, candidates = _vectors()
    compiled = partial(best_match, query, candidates)
    assert (
        interleaved_ratio(compiled, partial(_python_best_match, query, candidates), rounds=5, number=1) < 0.1
    )
