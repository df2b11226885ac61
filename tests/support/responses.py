"""Stored Responses for tests: records the real mapping makes, and the two store backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import pytest

from fastgate._transforms import responses_to_chat
from fastgate.schema.responses import StoredResponse, request_decoder
from fastgate.store.client import RedisClient
from fastgate.store.redis_responses import RedisResponseStore
from fastgate.store.responses import MemoryResponseStore, ResponseStore


def chat_answer(text: str) -> bytes:
    return msgspec.json.encode(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
        }
    )


def answered(items: Any, text: str = "kept") -> tuple[str, StoredResponse]:
    """A Responses request for ``items`` (its input), answered ``text``: its id and record."""
    turn = responses_to_chat(request_decoder.decode(msgspec.json.encode({"model": "m", "input": items})))
    turn.answer(chat_answer(text))
    record = turn.record()
    assert record is not None
    return turn.id, record


@asynccontextmanager
async def response_store(request: pytest.FixtureRequest) -> AsyncIterator[ResponseStore]:
    """The backend ``request.param`` names: ``memory``, or ``redis`` (on the redis_server fixture)."""
    if request.param == "memory":
        yield MemoryResponseStore(ttl=60)
        return
    redis = RedisClient.from_url(request.getfixturevalue("redis_server").url)
    try:
        yield RedisResponseStore(redis, ttl=60)
    finally:
        await redis.close()
