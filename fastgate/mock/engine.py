"""Decides what the mock answers: one plan per request, carried out over HTTP or in-process.

The scripting (status, failures, ``fail_first`` counters) is shared by every wire format; a
:class:`WireFormat` only says how a success and an error look in its provider's format.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from fastgate.mock.directives import Directives, read_directives

_decode = msgspec.json.Decoder(dict[str, Any])


class MockPlan(msgspec.Struct, kw_only=True):
    status: int
    content_type: str = "application/json"
    body: bytes = b""
    #: The frames of a streamed answer, each written as one network write (``body`` unused).
    frames: list[bytes] | None = None
    headers: dict[str, str] = {}
    directives: Directives


class WireFormat(Protocol):
    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        """A successful answer to ``endpoint`` (an OpenAI path like ``chat/completions``, or the
        provider's own operation name)."""
        ...

    def error(self, status: int, message: str) -> bytes:
        """An error body as the provider writes it."""
        ...


class MockEngine:
    """Holds the per-key attempt counters that ``fail_first`` scripts read."""

    def __init__(self, defaults: Directives | None = None) -> None:
        self.defaults = defaults or Directives()
        self.attempts: dict[str, int] = {}

    def plan(self, endpoint: str, body: bytes, fmt: WireFormat, *, stream: bool | None = None) -> MockPlan:
        """Plan an answer; ``stream`` overrides the body's ``stream`` flag (providers that stream by URL)."""
        try:
            request = _decode.decode(body) if body else {}
            d = read_directives(request, self.defaults)
        except (msgspec.DecodeError, ValueError) as exc:
            return MockPlan(status=400, body=fmt.error(400, f"mock: {exc}"), directives=self.defaults)
        if stream is not None:
            request["stream"] = stream
        return self.planned(endpoint, request, d, fmt)

    def planned(self, endpoint: str, request: dict[str, Any], d: Directives, fmt: WireFormat) -> MockPlan:
        """Plan the answer to a request already read (its directives too)."""
        attempt = self.attempts.get(d.key, 0) + 1
        self.attempts[d.key] = attempt
        headers = {"x-mock-attempt": str(attempt)}
        status = d.status
        if d.fail_first:
            status = (status if status >= 400 else 503) if attempt <= d.fail_first else 200
        if status >= 400:
            if d.retry_after is not None:
                headers["retry-after"] = str(d.retry_after)
            return MockPlan(
                status=status, body=fmt.error(status, f"mock failure {status}"), headers=headers, directives=d
            )
        plan = fmt.answer(endpoint, request, d)
        plan.headers = {**headers, **plan.headers}
        if d.fail == "empty_stream" and plan.frames is not None:
            plan.frames = []  # a 200 whose stream ends before its first byte
        return plan
