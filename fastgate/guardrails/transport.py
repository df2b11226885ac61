"""How checks that call out reach the network: one ``request`` method, bounded by a timeout.

The gateway's transport is its own upstream pool (:class:`PoolTransport`): its resolver judges
every address a name resolves to by the SSRF policy before a socket opens, and it never follows
a redirect (a 3xx is an error to the check, like any status but 2xx). Tests and embedders may
give any object with the same ``request`` method.
"""

from __future__ import annotations

import asyncio
from typing import NamedTuple, Protocol

from fastgate.upstream.pool import UpstreamPool

#: The most a webhook, log URL or JWKS endpoint may answer: enough for a JWKS or a verdict.
MAX_ANSWER = 1 << 20


class HttpAnswer(NamedTuple):
    status: int
    content_type: str
    body: bytes


class HttpTransport(Protocol):
    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> HttpAnswer: ...


class AnswerTooLarge(ValueError):
    pass


class PoolTransport:
    """Requests through the gateway's upstream pool, each bounded by its own timeout."""

    def __init__(self, pool: UpstreamPool, max_answer: int = MAX_ANSWER) -> None:
        self.pool = pool
        self.max_answer = max_answer

    async def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> HttpAnswer:
        async with asyncio.timeout(timeout):
            answer = await self.pool.request(method, url, headers, body)
            parts = []
            size = 0
            try:
                async for chunk in answer.chunks():
                    size += len(chunk)
                    if size > self.max_answer:
                        raise AnswerTooLarge(f"the answer is larger than {self.max_answer} bytes")
                    parts.append(chunk)
            except BaseException:
                answer.close()
                raise
        return HttpAnswer(answer.status, answer.content_type, b"".join(parts))
