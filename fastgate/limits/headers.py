"""The caller's rate limits in OpenAI's answer headers (API reference, "Rate limits": response
headers ``x-ratelimit-limit-requests``, ``-remaining-requests``, ``-reset-requests`` and the same
for ``-tokens``), here for the caller's gateway key and the current minute.

The reset is a duration in OpenAI's form (``1s``, ``6m0s``): the time left in the window.
"""

from __future__ import annotations

from fastgate.store.base import LimitRule


def duration(seconds: int) -> str:
    return f"{seconds // 60}m{seconds % 60}s" if seconds >= 60 else f"{seconds}s"


def ratelimit_headers(rule: LimitRule, requests: int, tokens: int, reset_s: int) -> dict[str, str]:
    """The key's limits per minute and what is left of them in this one (after this request)."""
    headers: dict[str, str] = {}
    reset = duration(reset_s)
    if rule.rpm and requests >= 0:
        headers["x-ratelimit-limit-requests"] = str(rule.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, rule.rpm - requests))
        headers["x-ratelimit-reset-requests"] = reset
    if rule.tpm and tokens >= 0:
        headers["x-ratelimit-limit-tokens"] = str(rule.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, rule.tpm - tokens))
        headers["x-ratelimit-reset-tokens"] = reset
    return headers


def exhausted_headers(rule: LimitRule, refused: str, reset_s: int) -> dict[str, str]:
    """A 429's headers for the per-minute limit that refused it: nothing left until the reset."""
    kind = "requests" if refused == "rpm" else "tokens"
    limit = rule.rpm if refused == "rpm" else rule.tpm
    return {
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": "0",
        f"x-ratelimit-reset-{kind}": duration(reset_s),
    }
