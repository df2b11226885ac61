"""Reading usage from an OpenAI stream on its way to the client, and hiding what the gateway added."""

from __future__ import annotations

import msgspec

from fastgate.limits.usage import UsageTap, body_usage

CONTENT = (
    b'data: {"id":"c","object":"chat.completion.chunk","model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
)
USAGE = (
    b'data: {"id":"c","object":"chat.completion.chunk","model":"gpt-x","choices":[],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}\n\n'
)
NULL_USAGE = b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[],"usage":null}\n\n'
DONE = b"data: [DONE]\n\n"


def run(tap: UsageTap, pieces: list[bytes]) -> bytes:
    out = b"".join(tap.feed(p) for p in pieces)
    return out + tap.flush()


def test_usage_read_and_kept_when_the_client_asked() -> None:
    tap = UsageTap(strip=False)
    assert run(tap, [CONTENT, USAGE + DONE]) == CONTENT + USAGE + DONE
    assert tap.usage is not None
    assert (tap.usage.total_tokens, tap.model) == (10, "gpt-x")


def test_usage_read_and_stripped_when_the_gateway_asked() -> None:
    tap = UsageTap(strip=True)
    assert run(tap, [CONTENT, NULL_USAGE, USAGE, DONE]) == CONTENT + NULL_USAGE + DONE
    assert tap.usage is not None
    assert tap.usage.prompt_tokens == 7


def test_events_split_anywhere_across_writes() -> None:
    data = CONTENT + USAGE + DONE
    for cut in range(1, len(data)):
        tap = UsageTap(strip=True)
        assert run(tap, [data[:cut], data[cut:]]) == CONTENT + DONE, cut
        assert tap.usage is not None


def test_content_chunks_pass_untouched() -> None:
    tap = UsageTap(strip=True)
    assert tap.feed(CONTENT) is CONTENT
    assert tap.usage is None


def test_body_usage() -> None:
    body = msgspec.json.encode(
        {"model": "m", "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}}
    )
    view = body_usage(body)
    assert view.usage is not None
    assert (view.model, view.usage.total_tokens) == ("m", 3)
    assert body_usage(b"not json").usage is None
