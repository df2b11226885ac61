"""What a request costs Redis: round trips counted at the gateway's Redis connection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fastgate.store.client import RedisClient
from fastgate.store.multiplexed import Command
from tests.conftest import Gateway, Upstream
from tests.redis_server import RedisProcess

CHAT = {"model": "m", "messages": [{"role": "user", "content": "count my round trips"}]}


class Trips:
    """Every write-then-read exchange (a pipeline) the gateway has with Redis, by command names."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.log: list[list[str]] = []
        real = RedisClient.pipeline

        async def counted(redis: RedisClient, commands: list[Command]) -> list[Any]:
            self.log.append([str(c[0]).lower() for c in commands])
            return await real(redis, commands)

        monkeypatch.setattr(RedisClient, "pipeline", counted)

    async def of(self, gateway: Gateway, headers: dict[str, str]) -> list[list[str]]:
        self.log.clear()
        resp = await gateway.post("/v1/chat/completions", CHAT, headers)
        assert resp.status == 200, await resp.text()
        await gateway.app.shared.guard.drain()
        return list(self.log)


async def test_one_round_trip_for_limits_and_cache(
    make_gateway: Any, upstream: Upstream, redis_server: RedisProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = await make_gateway(redis_url=redis_server.url, admin_token="t")
    admin = {"Authorization": "Bearer t"}
    limited = (await (await gateway.post("/admin/keys", {"limits": {"rpm": 100}}, admin)).json())["key"]
    unlimited = (await (await gateway.post("/admin/keys", {}, admin)).json())["key"]
    config = json.dumps(
        {"provider": "openai", "api_key": "sk", "custom_host": upstream.url, "cache": {"mode": "simple"}}
    )
    trips = Trips(monkeypatch)
    headers = {"x-portkey-api-key": limited, "x-portkey-config": config}
    # A miss: one round trip (the key's script and the lookup) before the upstream; the answer
    # stored after it.
    assert await trips.of(gateway, headers) == [["evalsha", "get"], ["set"]]
    # A hit: the one round trip, nothing else.
    assert await trips.of(gateway, headers) == [["evalsha", "get"]]
    # Tokens to count: the usage is charged after the answer, off the client's path.
    tpm = (await (await gateway.post("/admin/keys", {"limits": {"tpm": 10**6}}, admin)).json())["key"]
    plain = {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url}
    assert await trips.of(gateway, {**plain, "x-portkey-api-key": tpm}) == [["evalsha"], ["evalsha"]]
    # No limit and no cache: Redis is not asked at all.
    assert await trips.of(gateway, {**plain, "x-portkey-api-key": unlimited}) == []
