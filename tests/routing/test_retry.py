"""Retry policy: backoff with cap and jitter, Retry-After parsing, the retry decision."""

from __future__ import annotations

import email.utils

import pytest

from fastgate.routing.config import RetrySettings
from fastgate.routing.retry import (
    GIVE_UP,
    STOP,
    RetryDecision,
    RetryPolicy,
    attempts_allowed,
    backoff_ms,
    decide,
    retry_after_ms,
)
from fastgate.settings import settings_from_env

POLICY = RetryPolicy(base_ms=100, factor=2, cap_ms=1000, jitter=0.5, retry_after_budget_ms=5000)


@pytest.mark.parametrize(
    ("retry", "rand", "expected"),
    [
        (1, 0.0, 50.0),
        (1, 1.0, 100.0),
        (2, 0.0, 100.0),
        (3, 0.5, 300.0),
        (4, 1.0, 800.0),
        (5, 1.0, 1000.0),  # capped
        (30, 0.0, 500.0),
    ],
)
def test_backoff_grows_capped_with_jitter(retry: int, rand: float, expected: float) -> None:
    assert backoff_ms(POLICY, retry, rand) == pytest.approx(expected)


def test_backoff_without_jitter_is_portkeys_exponential() -> None:
    plain = RetryPolicy(base_ms=1000, jitter=0.0, cap_ms=1e9)
    assert [backoff_ms(plain, n, 0.7) for n in (1, 2, 3, 4)] == [1000, 2000, 4000, 8000]


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "2"}, 2000.0),
        ({"Retry-After": "0.25"}, 250.0),
        ({"retry-after-ms": "150", "retry-after": "9"}, 150.0),
        ({"x-ms-retry-after-ms": "75"}, 75.0),
        ({"retry-after-ms": "soon", "retry-after": "1"}, 1000.0),
        ({"retry-after": email.utils.formatdate(NOW + 3, usegmt=True)}, 3000.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after": "whenever"}, None),
        ({"retry-after": "-1"}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_ms(headers, now=NOW) == expected


def test_attempts_are_capped_by_the_setting() -> None:
    assert attempts_allowed(RetryPolicy(max_attempts=5), RetrySettings(attempts=50)) == 5
    assert attempts_allowed(RetryPolicy(max_attempts=5), RetrySettings(attempts=2)) == 2
    assert attempts_allowed(RetryPolicy(), None) == 0


RETRY = RetrySettings(attempts=2)
HINTED = RetrySettings(attempts=3, use_retry_after_header=True)


@pytest.mark.parametrize(
    ("retry", "done", "status", "headers", "waited", "expected"),
    [
        (None, 0, 503, {}, 0, STOP),
        (RetrySettings(attempts=0), 0, 503, {}, 0, STOP),
        (RETRY, 0, 200, {}, 0, STOP),
        (RETRY, 0, 400, {}, 0, STOP),
        (RETRY, 0, 408, {}, 0, STOP),  # not in the default list (as Portkey)
        (RETRY, 0, 503, {}, 0, RetryDecision(True, 75.0)),
        (RETRY, 1, 502, {}, 0, RetryDecision(True, 150.0)),
        (RETRY, 2, 503, {}, 0, GIVE_UP),
        (RetrySettings(attempts=1, on_status_codes=(408,)), 0, 408, {}, 0, RetryDecision(True, 75.0)),
        (RETRY, 0, 429, {"retry-after": "3"}, 0, RetryDecision(True, 75.0)),  # header not asked for
        (HINTED, 0, 429, {"retry-after": "3"}, 0, RetryDecision(True, 3000.0)),
        (HINTED, 0, 503, {"retry-after-ms": "20"}, 0, RetryDecision(True, 20.0)),
        (HINTED, 0, 500, {"retry-after": "3"}, 0, RetryDecision(True, 75.0)),  # only 429/503 hint
        (HINTED, 0, 429, {"retry-after": "6"}, 0, GIVE_UP),  # beyond the 5 s budget
        (HINTED, 1, 429, {"retry-after": "3"}, 3000, GIVE_UP),  # budget already spent
        (HINTED, 0, 429, {}, 0, RetryDecision(True, 75.0)),
    ],
)
def test_decide(
    retry: RetrySettings | None,
    done: int,
    status: int,
    headers: dict[str, str],
    waited: float,
    expected: RetryDecision,
) -> None:
    assert decide(POLICY, retry, done, status, headers, waited, 0.5) == expected


def test_routing_limits_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTGATE_MAX_RETRY_ATTEMPTS", "3")
    monkeypatch.setenv("FASTGATE_RETRY_BASE_MS", "2.5")
    monkeypatch.setenv("FASTGATE_RETRY_AFTER_BUDGET_MS", "7")
    settings = settings_from_env(port=9)
    assert (settings.max_retry_attempts, settings.retry_base_ms, settings.retry_after_budget_ms) == (
        3,
        2.5,
        7.0,
    )
    assert settings.port == 9 and settings.retry_cap_ms == 16000.0
