"""``hook_results`` in Portkey's shape (``src/middlewares/hooks/types.ts``: ``GuardrailResult``,
``GuardrailCheckResult``, ``GuardrailFeedback``), encoded by msgspec.

Times are Portkey's: ``created_at`` an ISO-8601 UTC instant with milliseconds (a JavaScript
``Date`` in JSON), ``execution_time`` whole milliseconds.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from fastgate.guardrails.check import CheckError


class CheckResult(msgspec.Struct):
    """Built positionally, once per check run (``error`` UNSET: absent from the JSON)."""

    data: Any
    verdict: bool
    id: str
    error: CheckError | msgspec.UnsetType
    execution_time: int
    transformed: bool
    created_at: str
    log: Any
    fail_on_error: bool


class Feedback(msgspec.Struct, kw_only=True, omit_defaults=True):
    value: float | msgspec.UnsetType = msgspec.UNSET
    weight: float | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, Any]


class HookResult(msgspec.Struct, kw_only=True):
    verdict: bool
    id: str
    transformed: bool
    checks: list[CheckResult]
    feedback: Feedback | None
    execution_time: int
    async_: bool = msgspec.field(name="async")
    type: str
    created_at: str
    deny: bool


class HookResults(msgspec.Struct):
    """The ``hook_results`` object of an answer."""

    before_request_hooks: list[HookResult]
    after_request_hooks: list[HookResult]


class BeforeHookResults(msgspec.Struct):
    """The ``hook_results`` first event of a stream (Portkey sends the before hooks only)."""

    before_request_hooks: list[HookResult]


encode = msgspec.json.Encoder().encode

_last_second = -1
_second_iso = ""
_last_ms = -1
_last_iso = ""


def iso_now() -> str:
    """The current instant as JavaScript's ``Date.toISOString`` writes it; its date and time
    formatted once per second, its milliseconds once per millisecond, however many checks start
    within it."""
    global _last_second, _second_iso, _last_ms, _last_iso
    ms = time.time_ns() // 1_000_000
    if ms != _last_ms:
        second, milli = divmod(ms, 1000)
        if second != _last_second:
            _second_iso = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            _last_second = second
        _last_iso = f"{_second_iso}{milli:03d}Z"
        _last_ms = ms
    return _last_iso
