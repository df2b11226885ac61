"""Anthropic's Messages API as the tests speak it: the official SDK pointed at a gateway, and the
stream's event grammar.

The grammar is Anthropic's (https://docs.anthropic.com/en/docs/build-with-claude/streaming#event-types):
``message_start``; then each content block in turn as ``content_block_start``, its
``content_block_delta`` events and ``content_block_stop``, indexes counting up from 0; then
``message_delta`` and ``message_stop``. ``ping`` may come anywhere after ``message_start``. A stream
that fails after its head ends with one ``error`` event instead of whatever was still to come.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anthropic

#: Each content block type and the delta types it streams.
DELTAS = {
    "text": {"text_delta", "citations_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "redacted_thinking": set(),
    "tool_use": {"input_json_delta"},
}


@contextlib.asynccontextmanager
async def anthropic_client(
    base_url: str, headers: dict[str, str], api_key: str = "sk-ant-test", **kwargs: Any
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """The official SDK with the given default headers and no retries (a test sees every
    answer), closed with its sockets when the test is done; ``kwargs`` go to the client."""
    async with anthropic.AsyncAnthropic(
        base_url=base_url, api_key=api_key, default_headers=headers, max_retries=0, **kwargs
    ) as client:
        yield client


def check_event_order(events: list[tuple[str, Any]]) -> None:
    """Assert that ``(event name, data)`` pairs follow the grammar above, each event's ``type``
    its name; a stream may end with one ``error`` event in place of the rest."""
    assert events, "an empty stream"
    for name, data in events:
        assert data["type"] == name, (name, data)
    names = [name for name, _ in events]
    assert names[0] == "message_start", names
    assert names.count("error") <= 1 and ("error" not in names or names[-1] == "error"), names
    rest = [(n, d) for n, d in events[1:] if n not in ("ping", "error")]
    index, kind, at = 0, None, 0
    for name, data in rest:
        if not name.startswith("content_block"):
            break
        at += 1
        assert data["index"] == index, (names, data)
        if name == "content_block_start":
            assert kind is None, names
            kind = data["content_block"]["type"]
        elif name == "content_block_delta":
            assert kind is not None and data["delta"]["type"] in DELTAS.get(kind, ()), (kind, data)
        else:
            assert name == "content_block_stop" and kind is not None, names
            kind, index = None, index + 1
    tail = [name for name, _ in rest[at:]]
    if names[-1] == "error":
        assert tail in ([], ["message_delta"]), names
    else:
        assert kind is None and tail == ["message_delta", "message_stop"], names
