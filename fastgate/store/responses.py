"""Stored Responses, for providers reached through the chat translation: what ``store`` keeps,
what ``previous_response_id`` continues, what ``GET`` / ``DELETE /v1/responses/{id}`` read.

A record (``StoredResponse``) is one JSON value under the response's id, kept for a TTL: in
process (bounded, least recently used first out), or in Redis when workers share state
(``redis_responses.py``), with nothing but GET, SET EX and DEL. (OpenAI keeps responses 30
days; a gateway keeps them as long as its operator sets.)
"""

from __future__ import annotations

import time
from typing import Protocol

import msgspec

from fastgate.schema.responses import StoredResponse
from fastgate.store.memory import LRUCache

encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(StoredResponse).decode


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
        return None if value is None else decode_record(value)

    async def put(self, response_id: str, record: StoredResponse) -> None:
        self._records.put(response_id, encode_record(record), self.ttl, time.time())

    async def delete(self, response_id: str) -> bool:
        return self._records.pop(response_id, time.time())
