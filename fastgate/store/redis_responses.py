"""Stored Responses in Redis, shared by every worker: GET, SET EX and DEL under the response's id.

Apart from ``responses.py`` so that a worker without Redis never imports the Redis client.
"""

from __future__ import annotations

from redis.exceptions import ResponseError

from fastgate.schema.responses import StoredResponse
from fastgate.store.base import StoreUnavailable
from fastgate.store.client import RedisClient
from fastgate.store.redis import PREFIX
from fastgate.store.responses import decode_record, encode_record


class RedisResponseStore:
    def __init__(self, redis: RedisClient, ttl: float) -> None:
        self.redis = redis
        self.ttl = max(1, int(ttl))

    async def _call(self, *command: str | bytes | int) -> object:
        """One command; unreachable (the client raises ``StoreUnavailable``) or refused, the
        store is unavailable."""
        try:
            return await self.redis.execute(*command)
        except ResponseError as exc:
            raise StoreUnavailable(str(exc)) from None

    async def get(self, response_id: str) -> StoredResponse | None:
        value = await self._call("GET", _key(response_id))
        return decode_record(value) if isinstance(value, bytes) else None

    async def put(self, response_id: str, record: StoredResponse) -> None:
        await self._call("SET", _key(response_id), encode_record(record), "EX", self.ttl)

    async def delete(self, response_id: str) -> bool:
        return await self._call("DEL", _key(response_id)) == 1


def _key(response_id: str) -> str:
    return f"{PREFIX}responses:{response_id}"
