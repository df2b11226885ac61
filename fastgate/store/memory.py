"""The in-process backend: a bounded LRU for cached answers and plain counters for limits.

Everything holds per process: with ``--workers N`` and no Redis, each worker enforces the
limits on its own (the server says so at start-up).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence

from fastgate.store.base import ADMITTED, LimitRule, Verdict, seconds_left, window


class LRUCache:
    """Entries expire after their ``max_age``; beyond ``max_entries`` or ``max_bytes`` the least
    recently used go first."""

    def __init__(self, max_entries: int = 4096, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str, now: float) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= now:
            self._remove(key)
            return None
        self._items.move_to_end(key)
        return value

    def put(self, key: str, value: bytes, max_age: float, now: float) -> None:
        if len(value) > self.max_bytes:
            return
        if key in self._items:
            self._remove(key)
        self._items[key] = (now + max_age, value)
        self.size += len(value)
        while len(self._items) > self.max_entries or self.size > self.max_bytes:
            self._remove(next(iter(self._items)))

    def pop(self, key: str, now: float) -> bool:
        """Remove an entry; whether a live one was there."""
        item = self._items.get(key)
        if item is None:
            return False
        self._remove(key)
        return item[0] > now

    def _remove(self, key: str) -> None:
        _, value = self._items.pop(key)
        self.size -= len(value)


class _Counters:
    __slots__ = ("cost", "requests", "tokens", "window", "window_tokens")

    def __init__(self) -> None:
        self.window = -1
        self.requests = 0
        self.window_tokens = 0
        self.tokens = 0
        self.cost = 0.0

    def roll(self, current: int) -> None:
        if current != self.window:
            self.window = current
            self.requests = 0
            self.window_tokens = 0


def refusal(rule: LimitRule, requests: int, window_tokens: int, tokens: int, cost: float) -> str | None:
    """Which of ``rule``'s limits the counts have reached, if any (shared with the Redis script)."""
    if rule.rpm and requests >= rule.rpm:
        return "rpm"
    if rule.tpm and window_tokens >= rule.tpm:
        return "tpm"
    if rule.budget_tokens and tokens >= rule.budget_tokens:
        return "budget_tokens"
    if rule.budget_cost and cost >= rule.budget_cost:
        return "budget_cost"
    return None


def verdict_for(reason: str, scope: str, now: float) -> Verdict:
    retry_after = seconds_left(now) if reason in ("rpm", "tpm") else None
    return Verdict(refused=reason, scope=scope, retry_after=retry_after)


class MemoryStore:
    def __init__(self, max_entries: int = 4096, max_bytes: int = 64 * 1024 * 1024) -> None:
        self.cache = LRUCache(max_entries, max_bytes)
        self._counters: dict[str, _Counters] = {}
        #: Partition → cache key → (expiry, embedding); partitions bounded by the LRU's count.
        self._semantic: OrderedDict[str, OrderedDict[str, tuple[float, bytes]]] = OrderedDict()

    def _counts(self, scope: str, now: float) -> _Counters:
        counts = self._counters.get(scope)
        if counts is None:
            counts = self._counters[scope] = _Counters()
        counts.roll(window(now))
        return counts

    async def admit(self, rules: Sequence[LimitRule], cache_key: str | None, now: float) -> Verdict:
        all_counts = [self._counts(rule.scope, now) for rule in rules]
        for rule, c in zip(rules, all_counts, strict=True):
            reason = refusal(rule, c.requests, c.window_tokens, c.tokens, c.cost)
            if reason:
                return verdict_for(reason, rule.scope, now)
        for c in all_counts:
            c.requests += 1
        if cache_key is None and not rules:
            return ADMITTED
        verdict = Verdict(cached=self.cache.get(cache_key, time.time()) if cache_key is not None else None)
        if rules:
            first = all_counts[0]
            verdict.requests = first.requests if rules[0].rpm else -1
            verdict.tokens = first.window_tokens
        return verdict

    async def charge(self, rules: Sequence[LimitRule], tokens: int, cost: float, now: float) -> None:
        for rule in rules:
            c = self._counts(rule.scope, now)
            c.window_tokens += tokens
            c.tokens += tokens
            c.cost += cost

    async def cache_get(self, key: str) -> bytes | None:
        return self.cache.get(key, time.time())

    async def cache_put(self, key: str, value: bytes, max_age: float) -> None:
        self.cache.put(key, value, max_age, time.time())

    async def semantic_add(
        self, partition: str, key: str, vector: bytes, max_entries: int, max_age: float
    ) -> None:
        entries = self._semantic.get(partition)
        if entries is None:
            entries = self._semantic[partition] = OrderedDict()
            if len(self._semantic) > self.cache.max_entries:
                self._semantic.popitem(last=False)
        self._semantic.move_to_end(partition)
        entries.pop(key, None)
        entries[key] = (time.time() + max_age, vector)
        while len(entries) > max_entries:
            entries.popitem(last=False)

    async def semantic_candidates(self, partition: str) -> list[tuple[str, bytes]]:
        entries = self._semantic.get(partition)
        if not entries:
            return []
        now = time.time()
        for key in [k for k, (expires, _) in entries.items() if expires <= now]:
            del entries[key]
        return [(k, v) for k, (_, v) in reversed(entries.items())]

    async def spent(self, scope: str) -> tuple[int, float]:
        c = self._counters.get(scope)
        return (c.tokens, c.cost) if c else (0, 0.0)

    async def close(self) -> None:
        self._counters.clear()
