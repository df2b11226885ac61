"""``/ready`` for a load balancer: it fails while the store the limits need is unreachable and
they fail closed; ``/health`` (liveness) does not look at the store."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import Gateway
from tests.redis_server import RedisProcess


async def statuses(gateway: Gateway) -> tuple[int, int]:
    ready, health = await gateway.get("/ready"), await gateway.get("/health")
    return ready.status, health.status


@pytest.mark.parametrize("fail_open", [True, False])
async def test_ready_while_the_store_is_down(
    make_gateway: Any, redis_server: RedisProcess, fail_open: bool
) -> None:
    gateway = await make_gateway(redis_url=redis_server.url, limits_fail_open=fail_open)
    assert await statuses(gateway) == (200, 200)
    assert await (await gateway.get("/ready")).json() == {"status": "ready"}
    redis_server.stop()
    if fail_open:
        # Requests are still answered (limits skipped): the replica stays in the pool.
        assert await statuses(gateway) == (200, 200)
    else:
        resp = await gateway.get("/ready")
        assert resp.status == 503
        error = (await resp.json())["error"]
        assert (error["type"], error["code"]) == ("api_error", "store_unavailable")
        assert (await gateway.get("/health")).status == 200
    redis_server.start()
    await asyncio.sleep(0.6)  # the client's reconnect interval
    assert await statuses(gateway) == (200, 200)


async def test_ready_without_a_shared_store(make_gateway: Any) -> None:
    gateway = await make_gateway(limits_fail_open=False)
    assert await statuses(gateway) == (200, 200)
