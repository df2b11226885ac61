"""Two ``fastgate serve`` processes sharing one real Redis: one limit, one cache, keys from the CLI."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from fastgate.cli import main
from tests.redis_server import RedisProcess
from tests.test_cli import free_port, running, wait_ready

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    """Run a ``fastgate`` command in this process (as the console script would) and read its JSON."""
    capsys.readouterr()
    assert main(list(args)) == 0
    return dict(json.loads(capsys.readouterr().out))


@pytest.mark.timeout(60)
def test_limits_and_cache_hold_across_two_gateways(
    redis_server: RedisProcess, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = redis_server.url
    key = cli(capsys, "keys", "add", "--redis-url", url, "--name", "shared", "--rpm", "6")
    other = cli(capsys, "keys", "add", "--redis-url", url)
    mock_port, ports = free_port(), [free_port(), free_port()]
    monkeypatch.setenv("UPSTREAM_KEY", "sk-from-env")
    vk = cli(
        capsys, "virtual-keys", "add", "--redis-url", url, "--provider", "openai",
        "--secret-env", "UPSTREAM_KEY", "--custom-host", f"http://127.0.0.1:{mock_port}/v1",
    )  # fmt: skip
    assert "secret" not in vk
    env_flags = ("--redis-url", url)
    with (
        running("mock", "--port", str(mock_port)),
        running("serve", "--port", str(ports[0]), *env_flags),
        running("serve", "--port", str(ports[1]), *env_flags),
    ):
        wait_ready(f"http://127.0.0.1:{mock_port}/v1/models")
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}/health")
        headers = {"x-portkey-api-key": str(key["key"]), "x-portkey-virtual-key": str(vk["slug"])}
        statuses = []
        with httpx.Client() as client:
            for i in range(10):
                resp = client.post(
                    f"http://127.0.0.1:{ports[i % 2]}/v1/chat/completions", json=CHAT, headers=headers
                )
                statuses.append(resp.status_code)
        # Six requests a minute for the key, across both processes: not six per process.
        assert statuses.count(200) == 6, statuses
        assert statuses.count(429) == 4
        assert statuses[:6] == [200] * 6

        # The cache, shared through the same Redis (another key: the first one is spent).
        config = json.dumps({"virtual_key": vk["slug"], "cache": {"mode": "simple", "max_age": 60}})
        headers = {"x-portkey-api-key": str(other["key"]), "x-portkey-config": config}
        with httpx.Client() as client:
            first = client.post(
                f"http://127.0.0.1:{ports[0]}/v1/chat/completions", json=CHAT, headers=headers
            )
            assert first.headers.get("x-portkey-cache-status") == "MISS", first.text
            time.sleep(0.1)
            second = client.post(
                f"http://127.0.0.1:{ports[1]}/v1/chat/completions", json=CHAT, headers=headers
            )
            assert second.headers["x-portkey-cache-status"] == "HIT"
            assert second.json() == first.json()


@pytest.mark.timeout(30)
def test_workers_without_redis_say_limits_are_per_process(tmp_path: object) -> None:
    port = free_port()
    with running("serve", "--port", str(port), "--workers", "2") as proc:
        wait_ready(f"http://127.0.0.1:{port}/health")
        proc.terminate()
        proc.wait(timeout=15)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
    assert "2 workers without Redis" in err


def test_cli_list_and_revoke(redis_server: RedisProcess, capsys: pytest.CaptureFixture[str]) -> None:
    url = redis_server.url
    key = cli(capsys, "keys", "add", "--redis-url", url, "--name", "gone")
    listed = cli(capsys, "keys", "list", "--redis-url", url)
    assert listed["id"] == key["id"]
    assert "key" not in listed
    assert main(["keys", "revoke", "--redis-url", url, "gone"]) == 0
    assert main(["keys", "revoke", "--redis-url", url, "gone"]) == 1
    assert "no gateway key 'gone'" in capsys.readouterr().err
    assert main(["keys", "list", "--redis-url", url]) == 0
    assert capsys.readouterr().out == ""
