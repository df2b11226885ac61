"""SDK clients for tests, with every socket accounted for."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from openai import AsyncOpenAI
from portkey_ai import AsyncPortkey


def openai_client(base_url: str, headers: dict[str, str], key: str = "sk-test") -> AsyncOpenAI:
    """The openai SDK pointed at a gateway (``base_url`` ends in ``/v1``), no retries of its own:
    a test sees the gateway's answer. Use it in ``async with``, which closes its sockets."""
    return AsyncOpenAI(base_url=base_url, api_key=key, default_headers=headers, max_retries=0)


@contextlib.asynccontextmanager
async def openai_clients(base_url: str, key: str) -> AsyncIterator[Callable[..., AsyncOpenAI]]:
    """``make(headers, key=key)`` makes ``openai_client``s, all closed when the block ends."""
    made: list[AsyncOpenAI] = []

    def make(headers: dict[str, str], key: str = key) -> AsyncOpenAI:
        made.append(openai_client(base_url, headers, key))
        return made[-1]

    try:
        yield make
    finally:
        for client in made:
            await client.close()


@contextlib.asynccontextmanager
async def portkey(**kwargs: Any) -> AsyncIterator[AsyncPortkey]:
    # AsyncPortkey wraps an inner OpenAI client that its own close() leaves open; sharing one
    # httpx client that the test closes keeps every socket accounted for.
    async with httpx.AsyncClient() as http, AsyncPortkey(http_client=http, **kwargs) as client:
        yield client
