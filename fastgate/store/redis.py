"""The Redis backend: limits, cache and circuits shared by every worker and machine using one Redis.

Counting is atomic on the server (Lua scripts), so N gateways sharing a Redis allow a limit
once, not N times. Each scope's keys share a hash tag (``fastgate:limit:{key:abc}:...``), so its
script runs on one Cluster slot; a request's scripts (a gateway key's and a virtual key's) and
its cache lookup go out in one pipeline: one round trip, to each primary concerned at once in a
Cluster. A scope is never split across slots, so a scope shared by many keys (a virtual key)
counts exactly however the requests combine. Usage is charged after the response, off the
client's path.

A request over one scope's limit and under another's was counted by the second script already:
that count is given back (``_RELEASE``) before the refusal is answered, the one case that costs
a second round trip. Two scopes on different primaries may see the requests of several gateways
in different orders, so a request at both limits at once can be refused while one of them had a
place left for it (until the give-back); no limit is ever exceeded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.exceptions import ResponseError

from fastgate.routing.breaker import CircuitRule
from fastgate.store.base import (
    ADMITTED,
    WINDOW_SECONDS,
    LimitRule,
    StoreUnavailable,
    Verdict,
    window,
)
from fastgate.store.client import RedisClient, Script, ScriptCall
from fastgate.store.memory import verdict_for
from fastgate.store.multiplexed import Arg, Command

PREFIX = "fastgate:"
REASONS = ("", "rpm", "tpm", "budget_tokens", "budget_cost")
#: Successes of a circuit that has seen no failure are forgotten after this long.
CIRCUIT_IDLE_MS = 24 * 3600 * 1000

# KEYS: requests window, tokens window, spent hash (one scope).
# ARGV: rpm, tpm, token budget, cost budget, window TTL. Returns {reason (0: admitted, counted),
# the window's requests (this one counted; -1 without an rpm), the window's tokens}.
_ADMIT = Script(
    """
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local bt, bc = tonumber(ARGV[3]), tonumber(ARGV[4])
local requests = -1
if rpm > 0 then requests = tonumber(redis.call('GET', KEYS[1]) or '0') end
local tokens = tonumber(redis.call('GET', KEYS[2]) or '0')
local reason = 0
if rpm > 0 and requests >= rpm then reason = 1
elseif tpm > 0 and tokens >= tpm then reason = 2
elseif bt > 0 and tonumber(redis.call('HGET', KEYS[3], 'tokens') or '0') >= bt then reason = 3
elseif bc > 0 and tonumber(redis.call('HGET', KEYS[3], 'cost') or '0') >= bc then reason = 4
end
if reason > 0 then return {reason, requests, tokens} end
if rpm > 0 then
  requests = redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return {0, requests, tokens}
"""
)

# KEYS: requests window. Gives back a request counted by a scope whose sibling refused it.
_RELEASE = Script(
    """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then redis.call('DECR', KEYS[1]) end
return 1
"""
)

# KEYS: tokens window, spent hash (one scope). ARGV: tokens, cost, window TTL.
_CHARGE = Script(
    """
redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[2], 'tokens', ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('HINCRBYFLOAT', KEYS[2], 'cost', ARGV[2]) end
return 1
"""
)

# KEYS: a circuit's counts (hash: failures, successes, first failure), its open marker.
# ARGV: failed (1/0), failure threshold, failure percentage, minimum requests, cool-down ms, idle
# ms. Returns the ms it stays open. The semantics of fastgate/routing/breaker.py (Portkey's): the
# window runs from the first failure for the cool-down, then the counts start afresh (the hash
# expires with it); Redis's clock, so every replica sees the same window.
_CIRCUIT = Script(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cooldown = tonumber(ARGV[5])
local first = tonumber(redis.call('HGET', KEYS[1], 'first') or '-1')
if first >= 0 and now - first >= cooldown then
  redis.call('DEL', KEYS[1])
  first = -1
end
local failures, successes
if ARGV[1] == '1' then
  failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  successes = tonumber(redis.call('HGET', KEYS[1], 'successes') or '0')
  if first < 0 then
    first = now
    redis.call('HSET', KEYS[1], 'first', now)
  end
else
  successes = redis.call('HINCRBY', KEYS[1], 'successes', 1)
  failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
end
if first < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return 0
end
local left = math.max(1, cooldown - (now - first))
redis.call('PEXPIRE', KEYS[1], left)
local threshold, percentage, minimum = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local total = failures + successes
local by_count = threshold > 0 and failures >= threshold
local by_rate = percentage > 0 and total >= minimum and failures * 100 >= percentage * total
if by_count or by_rate then
  redis.call('SET', KEYS[2], '1', 'PX', left)
  return left
end
return 0
"""
)


def _scope_key(scope: str) -> str:
    """A scope's keys share this prefix, and with it a hash tag: one Cluster slot per scope."""
    return f"{PREFIX}limit:{{{scope}}}"


def _circuit_key(circuit: str) -> str:
    return f"{PREFIX}circuit:{{{circuit}}}"


def _cache_key(key: str) -> str:
    return PREFIX + "cache:" + key


def _failed(reply: object) -> None:
    if isinstance(reply, ResponseError):
        raise StoreUnavailable(f"Redis refused a command: {reply}")


class RedisStore:
    def __init__(self, redis: RedisClient) -> None:
        self.redis = redis
        redis.preload(_ADMIT, _RELEASE, _CHARGE, _CIRCUIT)

    async def _scripts(self, calls: Sequence[ScriptCall]) -> list[Any]:
        replies = await self.redis.run_scripts(calls)
        for reply in replies:
            _failed(reply)
        return replies

    async def admit(self, rules: Sequence[LimitRule], cache_key: str | None, now: float) -> Verdict:
        current = window(now)
        ttl = 2 * WINDOW_SECONDS
        calls: list[ScriptCall] = []
        for rule in rules:
            base = _scope_key(rule.scope)
            keys = (f"{base}:r:{current}", f"{base}:t:{current}", f"{base}:spent")
            calls.append((_ADMIT, keys, (rule.rpm, rule.tpm, rule.budget_tokens, rule.budget_cost, ttl)))
        lookup: tuple[Command, ...] = (("GET", _cache_key(cache_key)),) if cache_key is not None else ()
        replies = await self.redis.run_scripts(calls, lookup)
        for reply in replies:
            _failed(reply)
        reasons = [reply[0] for reply in replies[: len(rules)]]
        refused = next((i for i, reason in enumerate(reasons) if reason), None)
        if refused is not None:
            counted = [r for r, reason in zip(rules, reasons, strict=True) if not reason and r.rpm]
            if counted:
                windows = [(f"{_scope_key(r.scope)}:r:{current}",) for r in counted]
                await self._scripts([(_RELEASE, w, ()) for w in windows])
            return verdict_for(REASONS[reasons[refused]], rules[refused].scope, now)
        if cache_key is None and not rules:
            return ADMITTED
        cached = replies[-1] if cache_key is not None else None
        verdict = Verdict(cached=cached if isinstance(cached, bytes) else None)
        if rules:
            _, verdict.requests, verdict.tokens = replies[0]
        return verdict

    async def charge(self, rules: Sequence[LimitRule], tokens: int, cost: float, now: float) -> None:
        current = window(now)
        args: tuple[Arg, ...] = (tokens, repr(float(cost)), 2 * WINDOW_SECONDS)
        calls: list[ScriptCall] = []
        for rule in rules:
            base = _scope_key(rule.scope)
            calls.append((_CHARGE, (f"{base}:t:{current}", f"{base}:spent"), args))
        if calls:
            await self._scripts(calls)

    async def cache_get(self, key: str) -> bytes | None:
        (value,) = await self.redis.pipeline([("GET", _cache_key(key))])
        _failed(value)
        return value if isinstance(value, bytes) else None

    async def cache_put(self, key: str, value: bytes, max_age: float) -> None:
        (reply,) = await self.redis.pipeline(
            [("SET", _cache_key(key), value, "PX", max(1, int(max_age * 1000)))]
        )
        _failed(reply)

    async def semantic_add(
        self, partition: str, key: str, vector: bytes, max_entries: int, max_age: float
    ) -> None:
        # A list per partition, newest first: ``<64-hex cache key><float32 embedding>`` entries.
        name = f"{PREFIX}semantic:{partition}"
        replies = await self.redis.pipeline(
            [
                ("LPUSH", name, key.encode() + vector),
                ("LTRIM", name, 0, max_entries - 1),
                ("PEXPIRE", name, max(1, int(max_age * 1000))),
            ]
        )
        for reply in replies:
            _failed(reply)

    async def semantic_candidates(self, partition: str) -> list[tuple[str, bytes]]:
        (items,) = await self.redis.pipeline([("LRANGE", f"{PREFIX}semantic:{partition}", 0, -1)])
        _failed(items)
        return [(item[:64].decode(), item[64:]) for item in items if len(item) > 64]

    async def spent(self, scope: str) -> tuple[int, float]:
        (reply,) = await self.redis.pipeline([("HMGET", _scope_key(scope) + ":spent", "tokens", "cost")])
        _failed(reply)
        tokens, cost = reply
        return int(tokens or 0), float(cost or 0)

    async def circuit_record(self, circuit: str, failed: bool, rule: CircuitRule) -> int:
        base = _circuit_key(circuit)
        args = (
            int(failed),
            rule.failure_threshold,
            rule.failure_threshold_percentage,
            rule.minimum_requests,
            rule.cooldown_ms,
            max(CIRCUIT_IDLE_MS, rule.cooldown_ms),
        )
        (reply,) = await self._scripts([(_CIRCUIT, (f"{base}:counts", f"{base}:open"), args)])
        return int(reply)

    async def circuits_open(self, circuits: Sequence[str]) -> list[int]:
        replies = await self.redis.pipeline([("PTTL", f"{_circuit_key(c)}:open") for c in circuits])
        for reply in replies:
            _failed(reply)
        return [max(0, int(ttl)) for ttl in replies]

    async def close(self) -> None:
        await self.redis.close()
