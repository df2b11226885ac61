"""SDK clients for tests, with every socket accounted for."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from portkey_ai import AsyncPortkey


@contextlib.asynccontextmanager
async def portkey(**kwargs: Any) -> AsyncIterator[AsyncPortkey]:
    # AsyncPortkey wraps an inner OpenAI client that its own close() leaves open; sharing one
    # httpx client that the test closes keeps every socket accounted for.
    async with httpx.AsyncClient() as http, AsyncPortkey(http_client=http, **kwargs) as client:
        yield client
