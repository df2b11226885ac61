"""Circuits shared through Redis (``shared_circuits``): the store counts them with the breaker's
own semantics, replicas agree on which targets are open, and an unreachable Redis fails open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fastgate.cli import main
from fastgate.routing.breaker import CircuitRule, CircuitStates, LocalCircuits
from fastgate.store.client import RedisClient
from fastgate.store.redis import RedisStore
from tests.conftest import Gateway, Upstream, config_target
from tests.redis_server import RedisCluster, RedisProcess
from tests.server.test_routing import FAST, fallback, headers, keys

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "break me"}]}
SKIPPED = "x-portkey-skipped-option-indexes"


@pytest.fixture(params=["local", "redis"])
async def states(request: pytest.FixtureRequest) -> AsyncIterator[CircuitStates]:
    """This process's circuits and Redis's hold one contract (real time, short cool-downs)."""
    if request.param == "local":
        yield LocalCircuits()
        return
    server: RedisProcess = request.getfixturevalue("redis_server")
    store = RedisStore(RedisClient.from_url(server.url))
    yield store
    await store.close()


async def test_a_circuit_opens_at_its_threshold_until_a_cooldown_after_its_first_failure(
    states: CircuitStates,
) -> None:
    rule = CircuitRule(failure_threshold=3, cooldown_ms=400)
    assert [await states.circuit_record("t/0", True, rule) for _ in range(2)] == [0, 0]
    assert await states.circuit_record("t/0", False, rule) == 0  # a success does not reset the count
    opened = await states.circuit_record("t/0", True, rule)
    assert 0 < opened <= 400
    open_ms, closed = await states.circuits_open(["t/0", "t/1"])
    assert 0 < open_ms <= opened and closed == 0
    await asyncio.sleep(0.45)
    # A cool-down after the first failure it closes, its counts cleared: one failure is not enough.
    assert await states.circuits_open(["t/0"]) == [0]
    assert await states.circuit_record("t/0", True, rule) == 0


async def test_the_window_starts_afresh_after_the_cooldown(states: CircuitStates) -> None:
    rule = CircuitRule(failure_threshold=2, cooldown_ms=200)
    assert await states.circuit_record("w", True, rule) == 0
    await asyncio.sleep(0.25)
    assert await states.circuit_record("w", True, rule) == 0  # the first failure has expired
    assert await states.circuit_record("w", True, rule) > 0


async def test_a_circuit_opens_on_its_failure_rate_once_it_has_enough_answers(states: CircuitStates) -> None:
    rule = CircuitRule(failure_threshold_percentage=50, minimum_requests=4, cooldown_ms=60_000)
    assert await states.circuit_record("r", True, rule) == 0  # 1 of 1 failed, but too few answers
    assert await states.circuit_record("r", False, rule) == 0
    assert await states.circuit_record("r", False, rule) == 0
    assert await states.circuit_record("r", True, rule) > 0  # 2 of 4: 50%
    assert (await states.circuits_open(["r"]))[0] > 0


async def test_circuits_are_shared_through_a_cluster(cluster: RedisCluster) -> None:
    one, other = RedisStore(RedisClient.from_url(cluster.url)), RedisStore(RedisClient.from_url(cluster.url))
    rule = CircuitRule(failure_threshold=2, cooldown_ms=300)
    names = [f"cfg targets[{i}]" for i in range(8)]  # spread over the primaries' slots
    for name in names:
        assert await one.circuit_record(name, True, rule) == 0
        assert 0 < await other.circuit_record(name, True, rule) <= 300
    assert all(ms > 0 for ms in await one.circuits_open([*names]))
    assert await other.circuits_open(["cfg targets[9]"]) == [0]
    await asyncio.sleep(0.35)
    assert await one.circuits_open(names) == [0] * len(names)
    await one.close()
    await other.close()


def cb_fallback(upstream: Upstream) -> dict[str, Any]:
    config = fallback(config_target(upstream, "flaky", status=503), config_target(upstream, "ok"))
    config["strategy"]["cb_config"] = {"failure_threshold": 2, "cooldown_interval": 30_000}
    return config


async def send(gateway: Gateway, config: dict[str, Any]) -> Any:
    resp = await gateway.post("/v1/chat/completions", CHAT, headers(config))
    await resp.read()
    assert resp.status == 200
    return resp


async def test_replicas_agree_on_an_open_circuit(
    make_gateway: Any, upstream: Upstream, redis_server: RedisProcess
) -> None:
    one: Gateway = await make_gateway(redis_url=redis_server.url, shared_circuits=True, **FAST)
    two: Gateway = await make_gateway(redis_url=redis_server.url, shared_circuits=True, **FAST)
    apart: Gateway = await make_gateway(redis_url=redis_server.url, **FAST)  # counts its own
    config = cb_fallback(upstream)
    for _ in range(2):
        assert SKIPPED not in (await send(one, config)).headers
    assert keys(upstream) == ["flaky", "ok"] * 2
    # The other replica never saw the target fail, and passes over it.
    skipped = await send(two, config)
    assert skipped.headers[SKIPPED] == "config.targets[0]"
    assert skipped.headers["x-portkey-circuit-breaker-triggered"] == "true"
    assert keys(upstream)[4:] == ["ok"]
    # A gateway without shared circuits keeps its own counts: it still tries the target.
    assert SKIPPED not in (await send(apart, config)).headers
    assert keys(upstream)[5:] == ["flaky", "ok"]


async def test_circuits_fail_open_while_redis_is_out_of_reach_and_recover(
    make_gateway: Any, upstream: Upstream, redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    gateway: Gateway = await make_gateway(redis_url=redis_server.url, shared_circuits=True, **FAST)
    config = cb_fallback(upstream)
    redis_server.stop()
    for _ in range(3):  # every target tried, every answer served by the fallback
        assert SKIPPED not in (await send(gateway, config)).headers
    assert keys(upstream) == ["flaky", "ok"] * 3
    assert sum("circuits read as closed" in r.getMessage() for r in caplog.records) == 1
    redis_server.start()
    for _ in range(20):  # the client reconnects by itself (bounded wait)
        if SKIPPED in (await send(gateway, config)).headers:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the circuit never opened once Redis was back")


def test_shared_circuits_without_redis_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--shared-circuits", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fastgate: shared circuits need Redis") and err.count("\n") == 1
