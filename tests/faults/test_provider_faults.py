"""The upstream fault matrix for the providers whose answers are mapped (Anthropic, Cohere,
Bedrock, Gemini): a broken or wrong answer in their own wire format still ends in an OpenAI-shaped
error, or an error event and [DONE], in bounded time. The failure is scripted with a
``[mock ...]`` marker in the message text, which every mapping carries over."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from fastgate.providers.registry import PROVIDERS
from tests.conftest import Gateway, Upstream
from tests.faults.test_upstream_faults import BOUND, LIMITS, assert_openai_error


def _anthropic(upstream: Upstream) -> dict[str, str]:
    return {"x-portkey-provider": "anthropic", "x-portkey-custom-host": upstream.url, "x-api-key": "sk-ant-k"}


def _cohere(upstream: Upstream) -> dict[str, str]:
    root = str(upstream.server.make_url(""))
    return {"x-portkey-provider": "cohere", "x-portkey-custom-host": root, "Authorization": "Bearer co-k"}


def _bedrock(upstream: Upstream) -> dict[str, str]:
    from fastgate.mock.bedrock_format import MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY

    return {
        "x-portkey-provider": "bedrock",
        "x-portkey-custom-host": str(upstream.server.make_url("")),
        "x-portkey-aws-access-key-id": MOCK_AWS_ACCESS_KEY_ID,
        "x-portkey-aws-secret-access-key": MOCK_AWS_SECRET_ACCESS_KEY,
        "x-portkey-aws-region": "us-west-2",
    }


def _google(upstream: Upstream) -> dict[str, str]:
    root = str(upstream.server.make_url("")).rstrip("/") + "/v1beta"
    return {"x-portkey-provider": "google", "x-portkey-custom-host": root, "Authorization": "Bearer g-k"}


HEADERS: dict[str, Callable[[Upstream], dict[str, str]]] = {
    name: build
    for name, build in (
        ("anthropic", _anthropic),
        ("cohere", _cohere),
        ("bedrock", _bedrock),
        ("google", _google),
    )
    if name in PROVIDERS
}
# (marker, streamed)
CASES = [
    ("fail=invalid_json", False),
    ("fail=html status=503", False),
    ("fail=wrong_content_type", False),
    ("fail=error_200", False),
    ("fail=truncate", False),
    ("fail=endless", False),
    ("fail=drop_mid_stream chunks=6", True),
    ("fail=stall_mid_stream chunks=6", True),
    ("fail=endless chunks=6", True),
    ("fail=wrong_content_type", True),
]


def chat(text: str, stream: bool) -> dict[str, Any]:
    return {
        "model": "mock-model",
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    }


@pytest.fixture
async def gw(make_gateway: Any) -> Gateway:
    return await make_gateway(**LIMITS)


@pytest.mark.parametrize("provider", HEADERS)
@pytest.mark.parametrize(("marker", "stream"), CASES)
async def test_mapped_provider_fault_ends_in_an_error(
    gw: Gateway, upstream: Upstream, provider: str, marker: str, stream: bool
) -> None:
    headers = HEADERS[provider](upstream)
    started = time.monotonic()
    resp = await gw.post(
        "/v1/chat/completions",
        chat(f"one two three four five six seven eight [mock {marker}]", stream),
        headers,
    )
    if resp.status != 200:
        assert resp.status >= 500, await resp.text()
        assert resp.content_type == "application/json"
        assert_openai_error(await resp.json())
    else:
        assert stream, await resp.text()
        events = [e for e in (await resp.read()).split(b"\n\n") if e]
        assert events[-1] == b"data: [DONE]", events[-3:]
        assert_openai_error(msgspec.json.decode(events[-2][6:]))
    assert time.monotonic() - started < BOUND
    ok = await gw.post("/v1/chat/completions", chat("hi", stream), headers)
    assert ok.status == 200, await ok.text()
    await ok.read()
