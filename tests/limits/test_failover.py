"""A gateway behind Sentinel follows a failover: the primary is killed, the replica promoted, and
limited requests are answered again without a restart."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.conftest import Upstream, openai_headers
from tests.limits.test_limits_gateway import ADMIN, CHAT, add
from tests.redis_server import SentinelSetup


@pytest.mark.timeout(60)
async def test_the_gateway_follows_a_sentinel_failover(
    make_gateway: Any, upstream: Upstream, sentinel_setup: SentinelSetup
) -> None:
    gateway = await make_gateway(
        redis_url=sentinel_setup.url, admin_token=ADMIN["Authorization"][7:], limits_fail_open=False
    )
    key = await add(gateway, "/admin/keys", limits={"rpm": 1000})
    headers = {**openai_headers(upstream), "x-portkey-api-key": key["key"]}
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200
    # The key's record reached the replica before the primary goes.
    assert sentinel_setup.primary.cli("WAIT", "1", "2000").strip() == "1"
    sentinel_setup.primary.stop()
    # Limits fail closed while there is no primary: 503s until Sentinel promotes the replica;
    # then the same gateway answers again.
    statuses, deadline = [], time.monotonic() + 30
    while True:
        status = (await gateway.post("/v1/chat/completions", CHAT, headers)).status
        statuses.append(status)
        if status == 200:
            break
        assert status == 503
        assert time.monotonic() < deadline, "the gateway did not follow the failover"
        await asyncio.sleep(0.1)
    assert 503 in statuses
    assert sentinel_setup.primary_port() == sentinel_setup.replica.port
    assert (await gateway.get("/ready")).status == 200
