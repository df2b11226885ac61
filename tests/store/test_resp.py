"""The RESP2 client against a real redis-server: pipelining, errors, scripts, reconnects."""

from __future__ import annotations

import asyncio
import time

import pytest

from fastgate.store.resp import Redis, RedisError, RedisUnavailable, Script, encode_command
from tests.redis_server import RedisProcess, free_port


def test_command_encoding() -> None:
    assert (
        encode_command(("SET", "k", b"v\r\n", 5))
        == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\nv\r\n\r\n$1\r\n5\r\n"
    )


async def test_replies_of_every_type(redis_server: RedisProcess) -> None:
    redis = Redis(redis_server.url)
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
    assert replies[:6] == ["OK", b"1", 2, None, 2, [b"x", b"y"]]
    assert isinstance(replies[6], RedisError)
    with pytest.raises(RedisError, match="WRONGTYPE"):
        await redis.execute("INCR", "l")
    await redis.close()


async def test_concurrent_commands_share_one_connection_in_order(redis_server: RedisProcess) -> None:
    redis = Redis(redis_server.url)
    values = await asyncio.gather(*(redis.execute("INCR", "n") for _ in range(200)))
    assert sorted(values) == list(range(1, 201))
    clients = (await redis.execute("CLIENT", "LIST")).count(b"\n")
    assert clients == 1
    await redis.close()


async def test_scripts_load_themselves(redis_server: RedisProcess) -> None:
    redis = Redis(redis_server.url)
    script = Script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
    assert await redis.run_scripts([(script, ["s"], [5])]) == [5]
    await redis.execute("SCRIPT", "FLUSH")
    assert await redis.run_scripts([(script, ["s"], [1]), (script, ["s"], [1])]) == [6, 7]
    await redis.close()


async def test_preloaded_scripts_survive_a_restart(redis_server: RedisProcess) -> None:
    redis = Redis(redis_server.url, retry_interval=0)
    script = Script("return 'loaded'")
    redis.preload(script)
    assert await redis.execute("SCRIPT", "EXISTS", script.sha) == [1]
    redis_server.stop()
    redis_server.start()
    await asyncio.sleep(0.05)  # the reader sees the old connection close
    # A fresh server knows no scripts; the new connection loaded it before any command.
    assert await redis.execute("EVALSHA", script.sha, 0) == b"loaded"
    await redis.close()


async def test_password_and_database(redis_server: RedisProcess) -> None:
    admin = Redis(redis_server.url)
    await admin.execute("CONFIG", "SET", "requirepass", "s3cret")
    anonymous = Redis(redis_server.url)
    with pytest.raises(RedisError, match="NOAUTH"):
        await anonymous.execute("GET", "x")
    await anonymous.close()
    redis = Redis(f"redis://:s3cret@127.0.0.1:{redis_server.port}/2")
    await redis.execute("SET", "x", "in-db-2")
    assert await redis.execute("GET", "x") == b"in-db-2"
    wrong = Redis(f"redis://:nope@127.0.0.1:{redis_server.port}")
    with pytest.raises(RedisUnavailable, match="refused"):
        await wrong.execute("PING")
    await redis.close()
    await admin.close()


async def test_nothing_listening_fails_fast_then_retries_after_the_interval() -> None:
    port = free_port()
    redis = Redis(f"redis://127.0.0.1:{port}", retry_interval=0.2)
    with pytest.raises(RedisUnavailable):
        await redis.execute("PING")
    server = RedisProcess(port)
    server.start()
    try:
        # Within the retry interval no connection is attempted: the caller does not wait.
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match="retrying"):
            await redis.execute("PING")
        assert time.monotonic() - started < 0.05
        await asyncio.sleep(0.2)
        assert await redis.execute("PING") == "PONG"
    finally:
        await redis.close()
        server.stop()


async def test_waiting_commands_fail_when_the_connection_drops(redis_server: RedisProcess) -> None:
    redis = Redis(redis_server.url, timeout=5, retry_interval=0)
    blocked = asyncio.ensure_future(redis.execute("BLPOP", "never", 0))
    await asyncio.sleep(0.05)
    redis_server.stop()
    with pytest.raises(RedisUnavailable, match="lost"):
        await blocked
    redis_server.start()
    assert await redis.execute("PING") == "PONG"
    await redis.close()


async def test_a_slow_reply_times_out(redis_server: RedisProcess) -> None:
    redis = Redis(redis_server.url, timeout=0.1, retry_interval=0)
    with pytest.raises(RedisUnavailable, match="in time"):
        await redis.execute("BLPOP", "never", 0)
    assert await redis.execute("PING") == "PONG"
    await redis.close()


def test_only_redis_urls() -> None:
    with pytest.raises(ValueError, match="scheme"):
        Redis("http://127.0.0.1:6379")


async def test_concurrent_first_commands_open_one_connection(redis_server: RedisProcess) -> None:
    redis = Redis(redis_server.url)
    assert await asyncio.gather(*(redis.execute("PING") for _ in range(20))) == ["PONG"] * 20
    assert (await redis.execute("CLIENT", "LIST")).count(b"\n") == 1
    await redis.close()


async def test_a_cancelled_connect_leaves_the_client_usable(redis_server: RedisProcess) -> None:
    redis = Redis(redis_server.url)
    task = asyncio.ensure_future(redis.execute("PING"))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await redis.execute("PING") == "PONG"
    await redis.close()
