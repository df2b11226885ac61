"""Stored Responses, for providers reached through the chat translation: what ``store`` keeps,
what ``previous_response_id`` continues, what ``GET`` / ``DELETE /v1/responses/{id}`` read.

A record (``StoredResponse``) is one JSON value under the response's id, kept for a TTL: in
process (bounded, least recently used first out), or in Redis when workers share state, with
nothing but GET, SET EX and DEL. (OpenAI keeps responses 30 days; a gateway keeps them as long
as its operator sets.)
"""

from __future__ import annotations

import time
from typing import Protocol

import msgspec
from redis.exceptions import ResponseError

from fastgate.schema.responses import StoredResponse
from fastgate.store.base import StoreUnavailable
from fastgate.store.client import RedisClient
from fastgate.store.memory import LRUCache
from fastgate.store.redis import PREFIX

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(StoredResponse).decode


class ResponseStore(Protocol):
    async def get(self, response_id: str) -> StoredResponse | None: ...

    async def put(self, response_id: str, record: StoredResponse) -> None: ...

    async def delete(self, response_id: str) -> bool:
        """Whether there was such a response."""
        ...


class MemoryResponseStore:
    def __init__(self, ttl: float, max_entries: int = 10_000, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.ttl = ttl
        self._records = LRUCache(max_entries, max_bytes)

    async def get(self, response_id: str) -> StoredResponse | None:
        value = self._records.get(response_id, time.time())
        return None if value is None else _decode(value)

    async def put(self, response_id: str, record: StoredResponse) -> None:
        self._records.put(response_id, _encode(record), self.ttl, time.time())

    async def delete(self, response_id: str) -> bool:
        return self._records.pop(response_id, time.time())


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
        return _decode(value) if isinstance(value, bytes) else None

    async def put(self, response_id: str, record: StoredResponse) -> None:
        await self._call("SET", _key(response_id), _encode(record), "EX", self.ttl)

    async def delete(self, response_id: str) -> bool:
        return await self._call("DEL", _key(response_id)) == 1


def _key(response_id: str) -> str:
    return f"{PREFIX}responses:{response_id}"
