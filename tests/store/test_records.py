"""Key records in a file under the data directory and in Redis."""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fastgate.store.client import RedisClient
from fastgate.store.records import FileRecords, Records
from fastgate.store.redis_records import RedisRecords
from tests.redis_server import RedisProcess


@pytest.fixture(params=["file", "redis"])
async def records(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Records]:
    if request.param == "file":
        yield FileRecords(tmp_path / "data")
        return
    server: RedisProcess = request.getfixturevalue("redis_server")
    redis = RedisClient.from_url(server.url)
    yield RedisRecords(redis)
    await redis.close()


async def test_put_load_delete_and_version(records: Records) -> None:
    empty = await records.load()
    assert empty == {"keys": {}, "virtual_keys": {}}
    before = await records.version()
    await records.put("keys", "h1", b'{"id":"a"}')
    await records.put("virtual_keys", "openai-1", b'{"slug":"openai-1"}')
    after = await records.version()
    assert after != before
    loaded = await records.load()
    assert loaded == {"keys": {"h1": b'{"id":"a"}'}, "virtual_keys": {"openai-1": b'{"slug":"openai-1"}'}}
    assert await records.delete("keys", "h1") is True
    assert await records.delete("keys", "h1") is False
    assert await records.version() != after
    assert (await records.load())["keys"] == {}


async def test_the_file_is_private(tmp_path: Path) -> None:
    records = FileRecords(tmp_path / "data")
    await records.put("virtual_keys", "v", b'{"slug":"v","secret":"sk-x"}')
    mode = stat.S_IMODE((tmp_path / "data" / "keys.json").stat().st_mode)
    assert mode == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
