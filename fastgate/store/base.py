"""The store interface: what the cache and the limits need, nothing more.

A request's limit check and its cache lookup go together (:meth:`Store.admit`) so a Redis
backend answers both in one round trip; the usage a response reports is charged afterwards
(:meth:`Store.charge`), off the client's path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import msgspec

WINDOW_SECONDS = 60


class LimitRule(msgspec.Struct, frozen=True, kw_only=True):
    """The limits of one scope (a gateway key or a virtual key); 0 means no limit."""

    scope: str
    rpm: int = 0
    tpm: int = 0
    budget_tokens: int = 0
    budget_cost: float = 0.0

    @property
    def counts_tokens(self) -> bool:
        return bool(self.tpm or self.budget_tokens or self.budget_cost)


class Verdict(msgspec.Struct, kw_only=True):
    """``refused`` names the limit that was hit (``rpm``, ``tpm``, ``budget_tokens``, ``budget_cost``)."""

    refused: str | None = None
    scope: str = ""
    #: Seconds until the limit resets; None for a budget (spent is spent).
    retry_after: int | None = None
    #: The cached answer, when a cache key was asked for and the request was admitted.
    cached: bytes | None = None
    #: The first rule's requests in the current window (this one counted; -1 without an ``rpm``)
    #: and its tokens charged in the window, once admitted: the ``x-ratelimit-*`` answer headers.
    requests: int = -1
    tokens: int = -1


ADMITTED = Verdict()


def window(now: float) -> int:
    """The fixed one-minute window ``now`` falls in."""
    return int(now // WINDOW_SECONDS)


def seconds_left(now: float) -> int:
    return max(1, math.ceil(WINDOW_SECONDS - now % WINDOW_SECONDS))


class StoreUnavailable(ConnectionError):
    """The shared backend cannot be reached."""


class Store(Protocol):
    async def admit(self, rules: Sequence[LimitRule], cache_key: str | None, now: float) -> Verdict:
        """Check every rule; when all pass, count the request and return the cached answer."""
        ...

    async def charge(self, rules: Sequence[LimitRule], tokens: int, cost: float, now: float) -> None:
        """Add a response's tokens to the minute window and the spent totals of each rule."""
        ...

    async def cache_get(self, key: str) -> bytes | None: ...

    async def cache_put(self, key: str, value: bytes, max_age: float) -> None: ...

    async def semantic_add(
        self, partition: str, key: str, vector: bytes, max_entries: int, max_age: float
    ) -> None:
        """Index an answer (its exact cache key) under its prompt's embedding; the newest
        ``max_entries`` of a partition are kept."""
        ...

    async def semantic_candidates(self, partition: str) -> list[tuple[str, bytes]]:
        """``(cache key, embedding)`` of the partition's indexed answers, newest first."""
        ...

    async def spent(self, scope: str) -> tuple[int, float]:
        """Tokens and cost a scope has spent so far."""
        ...

    async def close(self) -> None: ...
