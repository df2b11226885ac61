"""``/ready`` for a load balancer: it fails while the store the limits need is unreachable and
they fail closed; ``/health`` (liveness) does not look at the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fastgate.server_config import load_server_config
from fastgate.ssrf import HostPolicy
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


async def test_the_server_config_can_name_the_redis(
    make_gateway: Any, redis_server: RedisProcess, tmp_path: Path
) -> None:
    path = tmp_path / "server.toml"
    path.write_text(f'[redis]\nhosts = ["127.0.0.1:{redis_server.port}"]\ncluster = false\ntimeout = 0.5\n')
    gateway = await make_gateway(config_path=str(path), limits_fail_open=False)
    assert await statuses(gateway) == (200, 200)
    redis_server.stop()
    assert await statuses(gateway) == (503, 200)


def test_a_bad_redis_block_is_refused_at_start_up(tmp_path: Path) -> None:
    path = tmp_path / "server.toml"
    path.write_text('[redis]\nurl = "redis+sentinel://h:26379"\n')
    with pytest.raises(ValueError, match=r"redis: .*primary's name"):
        load_server_config(str(path), HostPolicy())
