"""Decides what the mock answers: one plan per request, carried out over HTTP or in-process."""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate.mock import openai_format as fmt
from fastgate.mock.directives import Directives, read_directives

_decode = msgspec.json.Decoder(dict[str, Any])


class MockPlan(msgspec.Struct, kw_only=True):
    status: int
    content_type: str = "application/json"
    body: bytes = b""
    #: SSE frames of a streamed answer (``body`` is then unused).
    frames: list[bytes] | None = None
    headers: dict[str, str] = {}
    directives: Directives


class MockEngine:
    """Holds the per-key attempt counters that ``fail_first`` scripts read."""

    def __init__(self, defaults: Directives | None = None) -> None:
        self.defaults = defaults or Directives()
        self.attempts: dict[str, int] = {}

    def plan(self, endpoint: str, body: bytes) -> MockPlan:
        try:
            request = _decode.decode(body) if body else {}
            d = read_directives(request, self.defaults)
        except (msgspec.DecodeError, ValueError) as exc:
            return MockPlan(status=400, body=fmt.error(400, f"mock: {exc}"), directives=self.defaults)
        headers = {"x-mock-attempt": str(self._count(d.key))}
        status = d.status
        if d.fail_first:
            status = (status if status >= 400 else 503) if self.attempts[d.key] <= d.fail_first else 200
        if status >= 400:
            if d.retry_after is not None:
                headers["retry-after"] = str(d.retry_after)
            return MockPlan(
                status=status, body=fmt.error(status, f"mock failure {status}"), headers=headers, directives=d
            )
        stream = bool(request.get("stream"))
        if endpoint == "chat/completions":
            if stream:
                return MockPlan(
                    status=200,
                    frames=fmt.chat_stream(request, d),
                    headers=headers,
                    directives=d,
                    content_type="text/event-stream",
                )
            return MockPlan(status=200, body=fmt.chat_completion(request, d), headers=headers, directives=d)
        if endpoint == "completions":
            if stream:
                return MockPlan(
                    status=200,
                    frames=fmt.completion_stream(request, d),
                    headers=headers,
                    directives=d,
                    content_type="text/event-stream",
                )
            return MockPlan(status=200, body=fmt.text_completion(request, d), headers=headers, directives=d)
        if endpoint == "embeddings":
            return MockPlan(status=200, body=fmt.embeddings(request), headers=headers, directives=d)
        if endpoint == "models":
            return MockPlan(status=200, body=fmt.models(), headers=headers, directives=d)
        return MockPlan(status=404, body=fmt.error(404, f"mock has no endpoint {endpoint}"), directives=d)

    def _count(self, key: str) -> int:
        n = self.attempts.get(key, 0) + 1
        self.attempts[key] = n
        return n
