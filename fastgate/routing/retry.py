"""Retry policy as values: whether to try a target again, and after how long.

The server runs the loop (``asyncio.sleep``); this module only decides. Differences from
Portkey's ``retryHandler.ts`` (exponential 1 s, 2 s, 4 s ... with no cap and no jitter, and no
cap on ``attempts``): the delay is capped and jittered so clients retrying together spread out,
and ``attempts`` is capped by a server setting.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import NamedTuple

import msgspec

from fastgate.routing.config import RetrySettings

#: Headers naming the wait before a retry, in the order Portkey reads them: two in milliseconds
#: (OpenAI, Azure), then RFC 9110 §10.2.3 ``Retry-After`` (seconds or an HTTP date).
_MS_HEADERS = ("retry-after-ms", "x-ms-retry-after-ms")
_HINT_HEADERS = frozenset({*_MS_HEADERS, "retry-after"})
#: Statuses whose ``Retry-After`` is honoured: RFC 9110 defines it for 503 (and 3xx), RFC 6585 for 429.
HINTED_STATUSES = frozenset({429, 503})


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Server-wide retry limits (settings), applied to every config's ``retry``."""

    #: Upper bound on a config's ``retry.attempts`` (Portkey documents 5 but enforces none).
    max_attempts: int = 5
    #: Delay before the first retry, growing by ``factor`` per retry up to ``cap_ms``.
    base_ms: float = 1000.0
    factor: float = 2.0
    cap_ms: float = 16000.0
    #: Share of each delay drawn at random ("equal jitter": half fixed, half random by default).
    jitter: float = 0.5
    #: Total wait one target may spend honouring ``Retry-After`` before giving up.
    retry_after_budget_ms: float = 60000.0


class RetryDecision(NamedTuple):
    retry: bool
    delay_ms: float = 0.0
    #: Retrying stopped with a still-retryable answer: the count header says ``-1``.
    gave_up: bool = False


STOP = RetryDecision(False)
GIVE_UP = RetryDecision(False, gave_up=True)


def backoff_ms(policy: RetryPolicy, retry: int, rand: float) -> float:
    """Delay before retry number ``retry`` (1-based); ``rand`` is uniform in [0, 1)."""
    delay = min(policy.cap_ms, policy.base_ms * policy.factor ** (retry - 1))
    return delay * (1.0 - policy.jitter) + delay * policy.jitter * rand


def retry_after_ms(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """The wait an upstream asked for, in ms, or None (absent or unreadable)."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in _HINT_HEADERS:
            found[lower] = value
    if not found:
        return None
    for name in _MS_HEADERS:
        if name in found:
            try:
                ms = float(found[name])
            except ValueError:
                continue
            if ms >= 0:
                return ms
    raw = found.get("retry-after")
    if raw is None:
        return None
    value = raw.strip()
    if value.isdigit():
        return float(value) * 1000
    try:
        seconds = float(value)  # not RFC 9110, but sent by some upstreams (and by the mock)
    except ValueError:
        pass
    else:
        return seconds * 1000 if seconds >= 0 else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, (when.timestamp() - current) * 1000)


def attempts_allowed(policy: RetryPolicy, retry: RetrySettings | None) -> int:
    """Retries allowed after the first try."""
    return min(retry.attempts, policy.max_attempts) if retry is not None else 0


def decide(
    policy: RetryPolicy,
    retry: RetrySettings | None,
    retries_done: int,
    status: int,
    headers: Mapping[str, str],
    waited_ms: float,
    rand: float,
) -> RetryDecision:
    """After an attempt answered ``status``: retry (and after how long), or stop."""
    allowed = attempts_allowed(policy, retry)
    if retry is None or allowed == 0 or status not in retry.on_status_codes:
        return STOP
    if retries_done >= allowed:
        return GIVE_UP
    delay = backoff_ms(policy, retries_done + 1, rand)
    if retry.use_retry_after_header and status in HINTED_STATUSES:
        hinted = retry_after_ms(headers)
        if hinted is not None:
            # As Portkey: the upstream's wait replaces the backoff, and a wait beyond the budget
            # ends the retries at once rather than holding the client.
            if hinted > policy.retry_after_budget_ms - waited_ms:
                return GIVE_UP
            delay = hinted
    return RetryDecision(True, delay)
