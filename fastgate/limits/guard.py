"""A request's way through the shared state: admit (limits + cache lookup), then charge and store.

Failure policy when the store (Redis) is unreachable: the cache always fails open (a lookup is
a miss, a store is skipped); the limits fail open or closed as ``fail_open`` says (closed: 503).
Charging usage and storing answers run as background tasks, off the client's path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Sequence
from typing import Any

from fastgate.errors import GatewayError
from fastgate.limits.headers import exhausted_headers
from fastgate.limits.prices import Pricing
from fastgate.schema.openai import Usage
from fastgate.store.base import ADMITTED, LimitRule, Store, StoreUnavailable, Verdict

log = logging.getLogger("fastgate.limits")
WARN_EVERY = 10.0

_MESSAGES = {
    "rpm": "requests per minute",
    "tpm": "tokens per minute",
    "budget_tokens": "token budget",
    "budget_cost": "cost budget",
}


class LimitReached(GatewayError):
    """A 429 naming the scope (``key:<id>`` or ``virtual_key:<slug>``) whose limit was hit."""

    def __init__(self, scope: str, message: str, **kwargs: Any) -> None:
        super().__init__(429, message, **kwargs)
        self.scope = scope


def refusal_error(verdict: Verdict, rule: LimitRule | None = None) -> LimitReached:
    """The 429 of a refused request; a per-minute limit's also says, in OpenAI's
    ``x-ratelimit-*`` headers, that nothing is left of ``rule``'s limit until the reset."""
    assert verdict.refused is not None
    what = _MESSAGES[verdict.refused]
    budget = verdict.refused.startswith("budget")
    message = f"{verdict.scope}: {what} exhausted" if budget else f"{verdict.scope}: {what} limit reached"
    headers: dict[str, str] | None = None
    if verdict.retry_after is not None:
        headers = {"Retry-After": str(verdict.retry_after)}
        if rule is not None:
            headers.update(exhausted_headers(rule, verdict.refused, verdict.retry_after))
    return LimitReached(
        verdict.scope,
        message,
        type="rate_limit_error",
        code="budget_exceeded" if budget else "rate_limit_exceeded",
        headers=headers,
    )


class Guard:
    def __init__(self, store: Store, pricing: Pricing | None = None, *, fail_open: bool = True) -> None:
        self.store = store
        self.pricing = pricing or Pricing(catalogue=False)
        self.fail_open = fail_open
        self._tasks: set[asyncio.Task[None]] = set()
        self._warned_at = -WARN_EVERY

    def _warn(self, message: str, *args: object) -> None:
        """While the store is down every request would say so: once per ``WARN_EVERY`` seconds."""
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(message, *args)

    async def admit(self, rules: Sequence[LimitRule], cache_key: str | None) -> Verdict:
        """Raises a 429 when a limit is reached; returns the cached answer, if any."""
        try:
            verdict = await self.store.admit(rules, cache_key, time.time())
        except StoreUnavailable as exc:
            if rules and not self.fail_open:
                raise GatewayError(
                    503,
                    "Rate limits cannot be checked right now",
                    type="api_error",
                    code="limits_unavailable",
                ) from None
            self._warn("store unavailable (%s): limits and cache skipped", exc)
            return ADMITTED
        if verdict.refused is not None:
            rule = next((r for r in rules if r.scope == verdict.scope), None)
            raise refusal_error(verdict, rule)
        return verdict

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def charge(
        self,
        rules: Sequence[LimitRule],
        provider: str,
        model: str,
        usage: Usage,
        asked: str = "",
        cost: float = 0.0,
    ) -> None:
        """Count an answer's tokens and cost (priced as ``Pricing.cost`` says) against ``rules``;
        ``cost`` adds what it cost besides its tokens (images)."""
        tokens = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
        if not tokens and not cost:
            return
        cost += self.pricing.cost(provider, model, usage, asked) or 0.0
        self._later(self._charge(rules, tokens, cost))

    def charge_audio(
        self,
        rules: Sequence[LimitRule],
        provider: str,
        model: str | None,
        seconds: float,
        characters: int,
        usage: Usage | None,
    ) -> None:
        """An audio answer: priced by its seconds or characters (``PriceTable.audio_cost``),
        plus the tokens it reports, if any (priced as ``Pricing.cost`` says)."""
        tokens = usage.total_tokens if usage is not None else 0
        cost = self.pricing.table.audio_cost(model, seconds, characters)
        if usage is not None:
            cost += self.pricing.cost(provider, model or "", usage) or 0.0
        if tokens or cost:
            self._later(self._charge(rules, tokens, cost))

    async def _charge(self, rules: Sequence[LimitRule], tokens: int, cost: float) -> None:
        try:
            await self.store.charge(rules, tokens, cost, time.time())
        except StoreUnavailable as exc:
            self._warn("usage of %d tokens not recorded: store unavailable (%s)", tokens, exc)

    def store_answer(self, key: str, entry: bytes, max_age: float) -> None:
        self._later(self._store(key, entry, max_age))

    async def _store(self, key: str, entry: bytes, max_age: float) -> None:
        try:
            await self.store.cache_put(key, entry, max_age)
        except StoreUnavailable as exc:
            self._warn("answer not cached: store unavailable (%s)", exc)

    async def cached(self, key: str) -> bytes | None:
        """A cached answer by its key (the semantic cache's second step); a miss if unreachable."""
        try:
            return await self.store.cache_get(key)
        except StoreUnavailable:
            return None

    async def similar(self, partition: str) -> list[tuple[str, bytes]]:
        try:
            return await self.store.semantic_candidates(partition)
        except StoreUnavailable:
            return []

    def index(self, partition: str, key: str, vector: bytes, max_entries: int, max_age: float) -> None:
        self._later(self._index(partition, key, vector, max_entries, max_age))

    async def _index(self, partition: str, key: str, vector: bytes, max_entries: int, max_age: float) -> None:
        try:
            await self.store.semantic_add(partition, key, vector, max_entries, max_age)
        except StoreUnavailable as exc:
            self._warn("prompt not indexed: store unavailable (%s)", exc)

    async def drain(self) -> None:
        """Wait for pending charges and stores (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*self._tasks)
