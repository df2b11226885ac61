"""The Redis backend: limits and cache shared by every worker and machine using one Redis.

Counting is atomic on the server (Lua scripts), so N gateways sharing a Redis allow the limit
once, not N times. A request's limit check and its cache lookup are one script call: one round
trip. Usage is charged by a second script after the response, off the client's path.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastgate.store.base import ADMITTED, WINDOW_SECONDS, LimitRule, StoreUnavailable, Verdict, window
from fastgate.store.memory import verdict_for
from fastgate.store.resp import Arg, Redis, RedisError, RedisUnavailable, Script

PREFIX = "fastgate:"
REASONS = ("", "rpm", "tpm", "budget_tokens", "budget_cost")

# KEYS: per rule (requests window, tokens window, spent hash), then the cache key if any.
# ARGV: rule count, window TTL, then per rule rpm, tpm, token budget, cost budget.
# Returns {reason, rule index, cached answer or false}; reason 0 means admitted.
_ADMIT = Script(
    """
local n = tonumber(ARGV[1])
for i = 0, n - 1 do
  local rpm, tpm = tonumber(ARGV[3 + i * 4]), tonumber(ARGV[4 + i * 4])
  local bt, bc = tonumber(ARGV[5 + i * 4]), tonumber(ARGV[6 + i * 4])
  local spent = KEYS[3 + i * 3]
  if rpm > 0 and tonumber(redis.call('GET', KEYS[1 + i * 3]) or '0') >= rpm then return {1, i, false} end
  if tpm > 0 and tonumber(redis.call('GET', KEYS[2 + i * 3]) or '0') >= tpm then return {2, i, false} end
  if bt > 0 and tonumber(redis.call('HGET', spent, 'tokens') or '0') >= bt then return {3, i, false} end
  if bc > 0 and tonumber(redis.call('HGET', spent, 'cost') or '0') >= bc then return {4, i, false} end
end
for i = 0, n - 1 do
  if tonumber(ARGV[3 + i * 4]) > 0 then
    redis.call('INCR', KEYS[1 + i * 3])
    redis.call('EXPIRE', KEYS[1 + i * 3], ARGV[2])
  end
end
if #KEYS > n * 3 then return {0, 0, redis.call('GET', KEYS[#KEYS])} end
return {0, 0, false}
"""
)

# KEYS: per rule (tokens window, spent hash). ARGV: tokens, cost, window TTL.
_CHARGE = Script(
    """
for i = 1, #KEYS, 2 do
  redis.call('INCRBY', KEYS[i], ARGV[1])
  redis.call('EXPIRE', KEYS[i], ARGV[3])
  redis.call('HINCRBY', KEYS[i + 1], 'tokens', ARGV[1])
  if tonumber(ARGV[2]) > 0 then redis.call('HINCRBYFLOAT', KEYS[i + 1], 'cost', ARGV[2]) end
end
return 1
"""
)


def _scope_key(scope: str) -> str:
    return f"{PREFIX}limit:{scope}"


class RedisStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        redis.preload(_ADMIT, _CHARGE)

    async def _run(self, script: Script, keys: list[str], args: list[Arg]) -> object:
        try:
            (reply,) = await self.redis.run_scripts([(script, keys, args)])
        except (RedisUnavailable, RedisError) as exc:
            raise StoreUnavailable(str(exc)) from None
        if isinstance(reply, RedisError):
            raise StoreUnavailable(str(reply))
        return reply

    async def admit(self, rules: Sequence[LimitRule], cache_key: str | None, now: float) -> Verdict:
        current = window(now)
        keys: list[str] = []
        args: list[Arg] = [len(rules), 2 * WINDOW_SECONDS]
        for rule in rules:
            base = _scope_key(rule.scope)
            keys += [f"{base}:r:{current}", f"{base}:t:{current}", f"{base}:spent"]
            args += [rule.rpm, rule.tpm, rule.budget_tokens, rule.budget_cost]
        if cache_key is not None:
            keys.append(PREFIX + "cache:" + cache_key)
        reply = await self._run(_ADMIT, keys, args)
        assert isinstance(reply, list)
        reason, index, cached = reply
        if reason:
            return verdict_for(REASONS[reason], rules[index].scope, now)
        if cache_key is None:
            return ADMITTED
        return Verdict(cached=cached if isinstance(cached, bytes) else None)

    async def charge(self, rules: Sequence[LimitRule], tokens: int, cost: float, now: float) -> None:
        current = window(now)
        keys: list[str] = []
        for rule in rules:
            base = _scope_key(rule.scope)
            keys += [f"{base}:t:{current}", f"{base}:spent"]
        if keys:
            await self._run(_CHARGE, keys, [tokens, repr(float(cost)), 2 * WINDOW_SECONDS])

    async def cache_get(self, key: str) -> bytes | None:
        try:
            value = await self.redis.execute("GET", PREFIX + "cache:" + key)
        except (RedisUnavailable, RedisError) as exc:
            raise StoreUnavailable(str(exc)) from None
        return value if isinstance(value, bytes) else None

    async def cache_put(self, key: str, value: bytes, max_age: float) -> None:
        try:
            await self.redis.execute("SET", PREFIX + "cache:" + key, value, "PX", max(1, int(max_age * 1000)))
        except (RedisUnavailable, RedisError) as exc:
            raise StoreUnavailable(str(exc)) from None

    async def semantic_add(
        self, partition: str, key: str, vector: bytes, max_entries: int, max_age: float
    ) -> None:
        # A list per partition, newest first: ``<64-hex cache key><float32 embedding>`` entries.
        name = f"{PREFIX}semantic:{partition}"
        commands: list[tuple[Arg, ...]] = [
            ("LPUSH", name, key.encode() + vector),
            ("LTRIM", name, 0, max_entries - 1),
            ("PEXPIRE", name, max(1, int(max_age * 1000))),
        ]
        try:
            replies = await self.redis.pipeline(commands)
        except RedisUnavailable as exc:
            raise StoreUnavailable(str(exc)) from None
        for reply in replies:
            if isinstance(reply, RedisError):
                raise StoreUnavailable(str(reply))

    async def semantic_candidates(self, partition: str) -> list[tuple[str, bytes]]:
        try:
            items = await self.redis.execute("LRANGE", f"{PREFIX}semantic:{partition}", 0, -1)
        except (RedisUnavailable, RedisError) as exc:
            raise StoreUnavailable(str(exc)) from None
        return [(item[:64].decode(), item[64:]) for item in items if len(item) > 64]

    async def spent(self, scope: str) -> tuple[int, float]:
        try:
            tokens, cost = await self.redis.execute("HMGET", _scope_key(scope) + ":spent", "tokens", "cost")
        except (RedisUnavailable, RedisError) as exc:
            raise StoreUnavailable(str(exc)) from None
        return int(tokens or 0), float(cost or 0)

    async def close(self) -> None:
        await self.redis.close()
