"""Replicas sharing one Redis Cluster stay exact: three ``fastgate serve`` processes on three
ports (one of them ``--workers 2``), driven in parallel by a bounded load loop."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from fastgate.store.base import WINDOW_SECONDS
from fastgate.store.client import RedisClient
from fastgate.store.redis import RedisStore
from tests.limits.test_processes import cli
from tests.redis_server import RedisCluster
from tests.test_cli import free_port, running, wait_ready

CHAT = {"model": "m", "messages": [{"role": "user", "content": "count me once"}]}
CONCURRENCY = 24


async def drive(ports: list[int], headers: dict[str, str], count: int) -> list[dict[str, Any]]:
    """``count`` requests spread over the gateways, ``CONCURRENCY`` at a time; each answer's
    status and usage."""
    queue = list(range(count))
    answers: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def worker() -> None:
            while queue:
                i = queue.pop()
                url = f"http://127.0.0.1:{ports[i % len(ports)]}/v1/chat/completions"
                async with session.post(url, json=CHAT, headers=headers) as resp:
                    body = await resp.json()
                    answers.append({"status": resp.status, "usage": body.get("usage")})

        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(CONCURRENCY))), 60)
    return answers


async def spent_by(url: str, scope: str) -> tuple[int, float]:
    store = RedisStore(RedisClient.from_url(url))
    try:
        return await store.spent(scope)
    finally:
        await store.close()


def wait_for_a_fresh_window(needed: float = 20.0) -> None:
    """The rpm window is a fixed minute: start the load early enough in one to end in it."""
    left = WINDOW_SECONDS - time.time() % WINDOW_SECONDS
    if left < needed:
        time.sleep(left + 0.2)


@pytest.mark.timeout(120)
def test_three_replicas_share_one_limit_and_one_budget(
    cluster: RedisCluster, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = cluster.url
    mock_port, ports = free_port(), [free_port(), free_port(), free_port()]
    monkeypatch.setenv("FASTGATE_DEFAULT_PROVIDER", "openai")
    limited = cli(capsys, "keys", "add", "--redis-url", url, "--rpm", "600")
    budget = cli(capsys, "keys", "add", "--redis-url", url, "--budget-tokens", "2000")
    upstream = {"x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1", "Authorization": "Bearer sk"}
    with (
        running("mock", "--port", str(mock_port)),
        running("serve", "--port", str(ports[0]), "--redis-url", url),
        running("serve", "--port", str(ports[1]), "--redis-url", url),
        running("serve", "--port", str(ports[2]), "--redis-url", url, "--workers", "2"),
    ):
        wait_ready(f"http://127.0.0.1:{mock_port}/v1/models")
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}/ready")

        wait_for_a_fresh_window()
        answers = asyncio.run(drive(ports, {**upstream, "x-portkey-api-key": str(limited["key"])}, 700))
        statuses = [a["status"] for a in answers]
        # 600 a minute across every replica and worker: not 600 per process (1,800 or more).
        assert statuses.count(200) == 600, statuses.count(200)
        assert statuses.count(429) == 100

        answers = asyncio.run(drive(ports, {**upstream, "x-portkey-api-key": str(budget["key"])}, 300))
        time.sleep(0.5)  # the last charges, sent after their answers
    admitted = [a for a in answers if a["status"] == 200]
    per_request = admitted[0]["usage"]["total_tokens"]
    assert all(a["usage"]["total_tokens"] == per_request for a in admitted)
    spent, _ = asyncio.run(spent_by(url, f"key:{budget['id']}"))
    # Every admitted answer was charged; the budget ran out, and it was overspent by no more
    # than the requests that were already in flight when it did.
    assert spent == per_request * len(admitted)
    assert 2000 <= spent <= 2000 + CONCURRENCY * per_request, (spent, per_request)
    assert len(admitted) < 300
