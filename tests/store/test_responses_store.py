"""The stored-responses store, both backends (memory, and a real redis-server): one record per
response id, kept for its TTL, deleted on demand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fastgate.store.base import StoreUnavailable
from fastgate.store.client import RedisClient
from fastgate.store.redis_responses import RedisResponseStore
from fastgate.store.responses import MemoryResponseStore, ResponseStore
from tests.redis_server import RedisProcess
from tests.support.responses import answered, response_store


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ResponseStore]:
    async with response_store(request) as backend:
        yield backend


async def test_a_record_round_trips(store: ResponseStore) -> None:
    response_id, record = answered("keep this")
    assert await store.get(response_id) is None
    await store.put(response_id, record)
    got = await store.get(response_id)
    assert got is not None
    assert bytes(got.response) == bytes(record.response)
    assert bytes(got.input_items) == bytes(record.input_items)
    assert bytes(got.conversation) == bytes(record.conversation)


async def test_delete_says_whether_there_was_one(store: ResponseStore) -> None:
    response_id, record = answered("delete this")
    await store.put(response_id, record)
    assert await store.delete(response_id) is True
    assert await store.get(response_id) is None
    assert await store.delete(response_id) is False


async def test_memory_records_expire_after_their_ttl() -> None:
    store = MemoryResponseStore(ttl=0.05)
    response_id, record = answered("brief")
    await store.put(response_id, record)
    await asyncio.sleep(0.1)
    assert await store.get(response_id) is None
    assert await store.delete(response_id) is False


async def test_memory_store_is_bounded() -> None:
    store = MemoryResponseStore(ttl=60, max_entries=2)
    ids = []
    for text in ("a", "b", "c"):
        response_id, record = answered(text)
        await store.put(response_id, record)
        ids.append(response_id)
    assert await store.get(ids[0]) is None  # the least recently used went first
    assert await store.get(ids[2]) is not None


async def test_redis_keys_carry_the_ttl(redis_server: RedisProcess) -> None:
    redis = RedisClient.from_url(redis_server.url)
    try:
        response_id, record = answered("ttl")
        await RedisResponseStore(redis, ttl=120).put(response_id, record)
        ttl = await redis.execute("TTL", f"fastgate:responses:{response_id}")
        assert 0 < ttl <= 120
    finally:
        await redis.close()


async def test_redis_down_is_store_unavailable(redis_server: RedisProcess) -> None:
    redis = RedisClient.from_url(redis_server.url)
    store = RedisResponseStore(redis, ttl=60)
    redis_server.stop()
    try:
        with pytest.raises(StoreUnavailable):
            await store.get("resp_x")
    finally:
        redis_server.start()
        await redis.close()
