"""Key records in Redis: one hash per kind, and a version counter bumped with every write.

Apart from ``records.py`` so that a worker without Redis never imports the Redis client.
"""

from __future__ import annotations

from redis.exceptions import ResponseError

from fastgate.store.base import StoreUnavailable
from fastgate.store.client import RedisClient
from fastgate.store.records import KINDS, Snapshot


class RedisRecords:
    """One Redis hash per kind, and a version counter bumped with every write."""

    VERSION = "fastgate:records:version"

    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis

    @staticmethod
    def _hash(kind: str) -> str:
        return f"fastgate:records:{kind}"

    async def _pipeline(self, commands: list[tuple[str, ...]]) -> list[object]:
        replies = await self.redis.pipeline(commands)
        for reply in replies:
            if isinstance(reply, ResponseError):
                raise StoreUnavailable(str(reply))
        return replies

    async def version(self) -> object:
        (value,) = await self._pipeline([("GET", self.VERSION)])
        return value

    async def load(self) -> Snapshot:
        replies = await self._pipeline([("HGETALL", self._hash(kind)) for kind in KINDS])
        snapshot: Snapshot = {}
        for kind, flat in zip(KINDS, replies, strict=True):
            assert isinstance(flat, list)
            snapshot[kind] = {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}
        return snapshot

    async def put(self, kind: str, ident: str, record: bytes) -> None:
        await self._pipeline([("HSET", self._hash(kind), ident, record.decode()), ("INCR", self.VERSION)])

    async def delete(self, kind: str, ident: str) -> bool:
        removed, _ = await self._pipeline([("HDEL", self._hash(kind), ident), ("INCR", self.VERSION)])
        return bool(removed)
