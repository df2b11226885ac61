"""Refusals served from a cache must not grow with every request.

Re-raising a stored exception instance prepends the new frames to its old traceback, so a
client repeating one bad config or custom host would make that traceback (and every frame and
request it holds) grow without bound.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType

import pytest

from fastgate.errors import GatewayError, bad_request
from fastgate.routing.config import ConfigCache
from fastgate.ssrf import HostPolicy


def traceback_length(tb: TracebackType | None) -> int:
    n = 0
    while tb is not None:
        n, tb = n + 1, tb.tb_next
    return n


def lengths(refuse: Callable[[], object], times: int = 50) -> set[int]:
    seen = set()
    for _ in range(times):
        with pytest.raises(GatewayError) as info:
            refuse()
        seen.add(traceback_length(info.value.__traceback__))
    return seen


def test_cached_custom_host_refusal_does_not_grow() -> None:
    policy = HostPolicy()
    assert len(lengths(lambda: policy.check_url("http://169.254.169.254/v1"))) == 1


def test_cached_config_refusal_does_not_grow() -> None:
    def build(raw: str) -> object:
        raise bad_request(f"Invalid config: {raw}")

    cache: ConfigCache[str, object] = ConfigCache(build)
    assert len(lengths(lambda: cache.get('{"strategy": {"mode": "sideways"}}'))) == 1
