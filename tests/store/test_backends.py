"""The two store backends hold the same contract: limits, budgets, cached answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from fastgate.store.base import LimitRule, Store, StoreUnavailable
from fastgate.store.client import RedisClient
from fastgate.store.memory import LRUCache, MemoryStore
from fastgate.store.redis import RedisStore
from tests.redis_server import RedisProcess


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    server: RedisProcess = request.getfixturevalue("redis_server")
    redis_store = RedisStore(RedisClient.from_url(server.url))
    yield redis_store
    await redis_store.close()


# A fixed instant early in a minute window, so a test never straddles two windows.
NOW = 1_800_000_000.0 + 5


async def test_requests_per_minute(store: Store) -> None:
    rule = LimitRule(scope="key:a", rpm=3)
    for _ in range(3):
        assert (await store.admit([rule], None, NOW)).refused is None
    verdict = await store.admit([rule], None, NOW + 1)
    assert verdict.refused == "rpm"
    assert verdict.scope == "key:a"
    assert verdict.retry_after == 54
    # The next window starts afresh.
    assert (await store.admit([rule], None, NOW + 60)).refused is None


async def test_a_refused_request_is_not_counted_anywhere(store: Store) -> None:
    tight = LimitRule(scope="vk:tight", rpm=1)
    loose = LimitRule(scope="key:loose", rpm=2)
    assert (await store.admit([loose, tight], None, NOW)).refused is None
    assert (await store.admit([loose, tight], None, NOW)).scope == "vk:tight"
    # The loose scope counted only the admitted request: one more fits.
    assert (await store.admit([loose], None, NOW)).refused is None
    assert (await store.admit([loose], None, NOW)).refused == "rpm"


async def test_tokens_per_minute(store: Store) -> None:
    rule = LimitRule(scope="key:t", tpm=100)
    assert (await store.admit([rule], None, NOW)).refused is None
    await store.charge([rule], 60, 0.0, NOW)
    assert (await store.admit([rule], None, NOW)).refused is None
    await store.charge([rule], 60, 0.0, NOW)
    verdict = await store.admit([rule], None, NOW)
    assert (verdict.refused, verdict.retry_after) == ("tpm", 55)
    assert (await store.admit([rule], None, NOW + 60)).refused is None


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        (LimitRule(scope="key:b", budget_tokens=50), "budget_tokens"),
        (LimitRule(scope="key:b", budget_cost=0.01), "budget_cost"),
    ],
)
async def test_budgets_do_not_reset(store: Store, rule: LimitRule, reason: str) -> None:
    await store.charge([rule], 30, 0.006, NOW)
    assert (await store.admit([rule], None, NOW)).refused is None
    await store.charge([rule], 30, 0.006, NOW)
    for later in (NOW, NOW + 3600):
        verdict = await store.admit([rule], None, later)
        assert (verdict.refused, verdict.retry_after) == (reason, None)
    assert await store.spent("key:b") == (60, pytest.approx(0.012))


async def test_cache_answers_until_max_age(store: Store) -> None:
    assert (await store.admit([], "k1", time.time())).cached is None
    await store.cache_put("k1", b"Janswer", 0.2)
    assert await store.cache_get("k1") == b"Janswer"
    assert (await store.admit([], "k1", time.time())).cached == b"Janswer"
    await asyncio.sleep(0.25)
    assert await store.cache_get("k1") is None


async def test_a_refused_request_gets_no_cached_answer(store: Store) -> None:
    await store.cache_put("k2", b"Jx", 60)
    rule = LimitRule(scope="key:c", rpm=1)
    assert (await store.admit([rule], "k2", NOW)).cached == b"Jx"
    verdict = await store.admit([rule], "k2", NOW)
    assert verdict.refused == "rpm"
    assert verdict.cached is None


def test_lru_evicts_least_recently_used_and_respects_bytes() -> None:
    cache = LRUCache(max_entries=2, max_bytes=10)
    cache.put("a", b"1111", 60, 0)
    cache.put("b", b"2222", 60, 0)
    assert cache.get("a", 1) == b"1111"  # a is now the most recent
    cache.put("c", b"3333", 60, 0)
    assert cache.get("b", 1) is None
    assert cache.get("a", 1) == b"1111"
    cache.put("d", b"444444", 60, 0)  # 4 + 4 + 6 bytes > 10: the oldest goes
    assert len(cache) == 2
    assert cache.size <= 10
    cache.put("huge", b"x" * 11, 60, 0)
    assert cache.get("huge", 1) is None


async def test_redis_store_reports_a_dead_redis(redis_server: RedisProcess) -> None:
    store = RedisStore(RedisClient.from_url(redis_server.url, retry_interval=0.05))
    rule = LimitRule(scope="key:d", rpm=5)
    assert (await store.admit([rule], None, NOW)).refused is None
    redis_server.stop()
    with pytest.raises(StoreUnavailable):
        await store.admit([rule], None, NOW)
    with pytest.raises(StoreUnavailable):
        await store.cache_get("x")
    redis_server.start()
    await asyncio.sleep(0.06)
    # Back, empty (nothing persisted): the client reconnected by itself.
    assert (await store.admit([rule], "x", NOW)).refused is None
    await store.close()
