"""The Redis store on a three-primary Cluster and behind a Sentinel, real servers on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import time

from redis.crc import key_slot

from fastgate.store.base import LimitRule
from fastgate.store.client import RedisClient
from fastgate.store.redis import RedisStore
from fastgate.store.redis_records import RedisRecords
from tests.redis_server import REDIS_CLI, RedisCluster, SentinelSetup

NOW = 1_800_000_000.0 + 5


def owners(cluster: RedisCluster) -> dict[int, int]:
    """Slot → port of the primary that serves it."""
    table: dict[int, int] = {}
    for line in cluster.nodes[0].cli("CLUSTER", "NODES").splitlines():
        fields = line.split()
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
        for part in fields[8:]:
            if "[" in part:
                continue
            start, _, end = part.partition("-")
            for slot in range(int(start), int(end or start) + 1):
                table[slot] = port
    return table


def scopes_on_every_primary(cluster: RedisCluster) -> list[str]:
    """One scope whose hash tag lands on each primary."""
    table, found = owners(cluster), {}
    for i in range(1000):
        scope = f"key:s{i}"
        found.setdefault(table[key_slot(scope.encode())], scope)
        if len(found) == len(cluster.nodes):
            return list(found.values())
    raise AssertionError("no scope for some primary")


async def test_a_cluster_is_detected_and_limits_hold_on_every_primary(cluster: RedisCluster) -> None:
    redis = RedisClient.from_url(cluster.url)
    store = RedisStore(redis)
    scopes = scopes_on_every_primary(cluster)
    rules = [LimitRule(scope=s, rpm=40) for s in scopes]
    # A request under three scopes, each counted on its own primary, from many tasks at once.
    verdicts = await asyncio.gather(*(store.admit(rules, None, NOW) for _ in range(60)))
    assert redis.cluster is True
    assert sum(v.refused is None for v in verdicts) == 40
    assert {v.refused for v in verdicts} == {None, "rpm"}
    for scope in scopes:  # every key of a scope sits in one slot: no CROSSSLOT anywhere
        assert (await store.admit([LimitRule(scope=scope, rpm=40)], None, NOW)).refused == "rpm"
    # A scope over its limit gives back what a sibling on another primary counted.
    fresh = LimitRule(scope="key:fresh", rpm=5)
    assert (await store.admit([fresh, rules[0]], None, NOW)).refused == "rpm"
    assert [(await store.admit([fresh], None, NOW)).refused for _ in range(6)] == [None] * 5 + ["rpm"]
    # Budgets, the cache and the key records, wherever their keys fall.
    budget = LimitRule(scope="virtual_key:b", budget_tokens=100)
    await store.charge([budget, rules[1]], 120, 0.5, NOW)
    assert (await store.admit([budget], None, NOW)).refused == "budget_tokens"
    assert await store.spent("virtual_key:b") == (120, 0.5)
    await store.cache_put("answer", b"J{}", 60)
    assert (await store.admit([LimitRule(scope="key:other", rpm=9)], "answer", NOW)).cached == b"J{}"
    records = RedisRecords(redis)
    await records.put("keys", "h", b'{"id":"a"}')
    assert (await records.load())["keys"] == {"h": b'{"id":"a"}'}
    assert await redis.ping()
    await store.close()


async def test_a_slot_moved_to_another_primary_is_followed(cluster: RedisCluster) -> None:
    redis = RedisClient.from_url(cluster.url + "?cluster=yes")
    store = RedisStore(redis)
    table = owners(cluster)
    first = cluster.nodes[0]
    slot = min(s for s, port in table.items() if port == first.port)
    scope = next(f"key:m{i}" for i in range(100_000) if key_slot(f"key:m{i}".encode()) == slot)
    rule = LimitRule(scope=scope, rpm=3)
    assert (await store.admit([rule], None, NOW)).refused is None
    ids = {int(line.split()[1].split("@")[0].rsplit(":", 1)[1]): line.split()[0] for line in
           first.cli("CLUSTER", "NODES").splitlines()}  # fmt: skip
    target = cluster.nodes[1].port
    assert REDIS_CLI is not None
    subprocess.run(
        [
            REDIS_CLI,
            "--cluster",
            "reshard",
            f"127.0.0.1:{first.port}",
            "--cluster-from",
            ids[first.port],
            "--cluster-to",
            ids[target],
            "--cluster-slots",
            "1",
            "--cluster-yes",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert owners(cluster)[slot] == target
    # The client still maps the slot to the first primary: MOVED, a new map, the same count.
    assert [(await store.admit([rule], None, NOW)).refused for _ in range(3)] == [None, None, "rpm"]
    await store.close()


async def test_the_store_follows_a_sentinel_failover(sentinel_setup: SentinelSetup) -> None:
    redis = RedisClient.from_url(sentinel_setup.url, retry_interval=0.1)
    store = RedisStore(redis)
    rule = LimitRule(scope="key:failover", rpm=1000)
    assert (await store.admit([rule], None, NOW)).refused is None
    old, replica = sentinel_setup.primary.port, sentinel_setup.replica.port
    assert sentinel_setup.primary_port() == old
    sentinel_setup.primary.stop()
    # Sentinel notices within its 0.4 s down-after and promotes the replica; the store errs
    # (the gateway applies its fail-open or fail-closed policy) until then, and no longer.
    deadline, failures = time.monotonic() + 30, 0
    while True:
        try:
            verdict = await store.admit([rule], None, NOW)
            break
        except ConnectionError:
            failures += 1
            assert time.monotonic() < deadline, "the store did not follow the failover"
            await asyncio.sleep(0.1)
    assert verdict.refused is None
    assert failures > 0
    assert sentinel_setup.primary_port() == replica
    assert (await redis.execute("ROLE"))[0] == b"master"
    await store.close()
