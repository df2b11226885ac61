"""The Redis client against real servers: pipelining on one connection, errors, scripts,
reconnects, ACL users, TLS with a CA made here, URLs."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.exceptions import ResponseError

from fastgate.store.base import StoreUnavailable
from fastgate.store.client import RedisClient, Script
from fastgate.store.redis_config import settings_from_block, settings_from_url
from tests.redis_server import LocalCA, RedisProcess, free_port


async def test_replies_of_every_type(redis_server: RedisProcess) -> None:
    redis = RedisClient.from_url(redis_server.url)
    replies = await redis.pipeline(
        [
            ("SET", "a", "1"),
            ("GET", "a"),
            ("INCR", "a"),
            ("GET", "missing"),
            ("RPUSH", "l", "x", "y"),
            ("LRANGE", "l", 0, -1),
            ("INCR", "l"),
        ]
    )
    assert replies[:6] == [b"OK", b"1", 2, None, 2, [b"x", b"y"]]
    assert isinstance(replies[6], ResponseError)
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await redis.execute("INCR", "l")
    # An error reply leaves the connection in step: the next command gets its own reply.
    assert await redis.execute("GET", "a") == b"2"
    await redis.close()


async def test_concurrent_commands_share_one_connection_in_order(redis_server: RedisProcess) -> None:
    redis = RedisClient.from_url(redis_server.url)
    values = await asyncio.gather(*(redis.execute("INCR", "n") for _ in range(200)))
    assert sorted(values) == list(range(1, 201))
    assert (await redis.execute("CLIENT", "LIST")).count(b"\n") == 1
    await redis.close()


async def test_concurrent_first_commands_open_one_connection(redis_server: RedisProcess) -> None:
    redis = RedisClient.from_url(redis_server.url)
    assert await asyncio.gather(*(redis.execute("PING") for _ in range(20))) == [b"PONG"] * 20
    assert (await redis.execute("CLIENT", "LIST")).count(b"\n") == 1
    await redis.close()


async def test_scripts_are_loaded_on_each_connection_and_sent_whole_when_missing(
    redis_server: RedisProcess,
) -> None:
    redis = RedisClient.from_url(redis_server.url, retry_interval=0)
    script = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    redis.preload(script)
    assert await redis.execute("SCRIPT", "EXISTS", script.sha) == [1]
    assert await redis.run_scripts([(script, ["s"], [5])]) == [5]
    await redis.execute("SCRIPT", "FLUSH")
    # Unknown to the server now: each call falls back to EVAL and still answers in order.
    assert await redis.run_scripts([(script, ["s"], [1]), (script, ["s"], [1])], [("GET", "s")]) == [
        6,
        7,
        b"5",
    ]
    # A restarted server knows no scripts; the new connection loads them before any command.
    redis_server.stop()
    redis_server.start()
    with pytest.raises(StoreUnavailable):
        await redis.execute("PING")  # the old connection's end is found here
    assert await redis.execute("SCRIPT", "EXISTS", script.sha) == [1]
    await redis.close()


async def test_acl_user_password_and_database(redis_server: RedisProcess) -> None:
    redis_server.cli("ACL", "SETUSER", "gateway", "on", ">s3cret", "~*", "+@all")
    redis_server.cli("ACL", "SETUSER", "default", "off")
    port = redis_server.port
    redis = RedisClient.from_url(f"redis://gateway:s3cret@127.0.0.1:{port}/2")
    await redis.execute("SET", "x", "in-db-2")
    assert await redis.execute("GET", "x") == b"in-db-2"
    assert await redis.execute("ACL", "WHOAMI") == b"gateway"
    await redis.close()
    wrong = RedisClient.from_url(f"redis://gateway:nope@127.0.0.1:{port}")
    with pytest.raises(StoreUnavailable, match="cannot connect") as refused:
        await wrong.execute("PING")
    assert "nope" not in str(refused.value)
    await wrong.close()
    anonymous = RedisClient.from_url(f"redis://127.0.0.1:{port}")
    with pytest.raises(StoreUnavailable):
        await anonymous.execute("PING")
    await anonymous.close()


async def test_nothing_listening_fails_fast_then_retries_after_the_interval() -> None:
    port = free_port()
    redis = RedisClient.from_url(f"redis://127.0.0.1:{port}", retry_interval=0.3)
    with pytest.raises(StoreUnavailable):
        await redis.execute("PING")
    server = RedisProcess(port)
    server.start()
    try:
        # Within the retry interval no connection is attempted: the caller does not wait.
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="retrying"):
            await redis.execute("PING")
        assert time.monotonic() - started < 0.05
        await asyncio.sleep(0.3)
        assert await redis.execute("PING") == b"PONG"
    finally:
        await redis.close()
        server.stop()


async def test_waiting_commands_fail_when_the_connection_drops(redis_server: RedisProcess) -> None:
    redis = RedisClient.from_url(redis_server.url + "?timeout=5", retry_interval=0)
    blocked = asyncio.ensure_future(redis.execute("BLPOP", "never", 0))
    await asyncio.sleep(0.05)
    redis_server.stop()
    with pytest.raises(StoreUnavailable, match="lost"):
        await blocked
    redis_server.start()
    assert await redis.execute("PING") == b"PONG"
    await redis.close()


async def test_a_slow_reply_times_out_and_the_next_command_reconnects(redis_server: RedisProcess) -> None:
    redis = RedisClient.from_url(redis_server.url + "?timeout=0.1", retry_interval=0)
    with pytest.raises(StoreUnavailable, match="in time"):
        await redis.execute("BLPOP", "never", 0)
    assert await redis.execute("PING") == b"PONG"
    await redis.close()


async def test_a_cancelled_connect_leaves_the_client_usable(redis_server: RedisProcess) -> None:
    redis = RedisClient.from_url(redis_server.url)
    task = asyncio.ensure_future(redis.execute("PING"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await redis.execute("PING") == b"PONG"
    await redis.close()


async def test_tls_with_a_ca_and_a_client_certificate(tls_redis: tuple[RedisProcess, LocalCA]) -> None:
    server, ca = tls_redis
    base = f"rediss://localhost:{server.port}/0?ssl_ca_certs={ca.ca_file}"
    redis = RedisClient.from_url(f"{base}&ssl_certfile={ca.client_cert}&ssl_keyfile={ca.client_key}")
    await redis.execute("SET", "over", "tls")
    assert await redis.execute("GET", "over") == b"tls"
    await redis.close()
    # No client certificate: the server refuses the handshake.
    anonymous = RedisClient.from_url(base)
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        await anonymous.execute("PING")
    await anonymous.close()
    # A server certificate the client's CA did not sign: the client refuses it.
    stranger = RedisClient.from_url(f"rediss://localhost:{server.port}")
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        await stranger.execute("PING")
    await stranger.close()
    # Plain text to a TLS port is not an answer either.
    plain = RedisClient.from_url(f"redis://localhost:{server.port}?timeout=0.3")
    with pytest.raises(StoreUnavailable):
        await plain.execute("PING")
    await plain.close()


def test_urls() -> None:
    node = settings_from_url("rediss://gw:p%40ss@cache.internal:6380/3?ssl_ca_certs=/ca.pem&timeout=0.5")
    assert (node.mode, node.tls, node.username, node.password, node.db) == ("auto", True, "gw", "p@ss", 3)
    assert (node.addresses(), node.tls_ca_file, node.timeout) == ([("cache.internal", 6380)], "/ca.pem", 0.5)
    assert "p@ss" not in node.describe() and "p%40ss" not in node.describe()
    cluster = settings_from_url("redis://10.0.0.1:7000,10.0.0.2:7001/?cluster=yes")
    assert cluster.mode == "cluster"
    assert cluster.addresses() == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert settings_from_url("redis://h?cluster=no").mode == "node"
    sentinel = settings_from_url("redis+sentinel://:pw@s1,s2:26380/mymaster/1?sentinel_password=sp")
    assert (sentinel.mode, sentinel.service, sentinel.db, sentinel.password) == (
        "sentinel",
        "mymaster",
        1,
        "pw",
    )
    assert sentinel.addresses() == [("s1", 26379), ("s2", 26380)]
    assert sentinel.sentinel_password == "sp"
    for bad, reason in [
        ("http://h:1", "scheme"),
        ("redis+sentinel://h:26379", "primary's name"),
        ("redis://h:1/x", "database number"),
        ("redis://h:1?colour=red", "unknown parameter"),
        ("redis://h:1?cluster=maybe", "yes or no"),
        ("redis://h:port", "port"),
    ]:
        with pytest.raises(ValueError, match=reason):
            settings_from_url(bad)


def test_config_block() -> None:
    block = settings_from_block(
        {"sentinels_unused": 1} if False else {"hosts": ["s1:26379"], "service": "main", "tls": True}
    )
    assert (block.mode, block.tls, block.service) == ("sentinel", True, "main")
    merged = settings_from_block({"url": "redis://h:7000", "cluster": True, "password": "x"})
    assert (merged.mode, merged.password, merged.addresses()) == ("cluster", "x", [("h", 7000)])
    with pytest.raises(ValueError, match="colour"):
        settings_from_block({"colour": "red"})
    with pytest.raises(ValueError, match="not a Cluster"):
        settings_from_block({"service": "main", "cluster": True})
