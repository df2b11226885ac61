"""``x-portkey-cache-namespace`` and ``x-portkey-cache-force-refresh`` (issue 21 item 7), and the
cache on ``/v1/messages``.

A namespace partitions the cache: the same request in two namespaces is two misses, in the same
one a hit. Force-refresh skips the look-up, asks the upstream again, answers ``REFRESH`` and
stores the fresh answer, which the next plain request gets. Messages are cached too: through the
chat pivot (the chat answer is stored, and translated again on a hit) and from a native target
(Anthropic's answer stored as it was relayed).
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from tests.cache.test_cache_gateway import CHAT, ask, cached_config, settle
from tests.conftest import Gateway, Upstream
from tests.support.messages import anthropic_client, check_event_order
from tests.support.sdk import portkey
from tests.support.sse import named_events, openai_chunks

NAMESPACE = "x-portkey-cache-namespace"
REFRESH = "x-portkey-cache-force-refresh"
MESSAGES = {"model": "claude-mock-1", "max_tokens": 64, "messages": [{"role": "user", "content": "cache me"}]}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_a_namespace_partitions_the_cache(gateway: Gateway, upstream: Upstream, stream: bool) -> None:
    config = cached_config(upstream)
    body = {**CHAT, "stream": stream}
    assert (await ask(gateway, config, body, **{NAMESPACE: "team-a"}))[0] == "MISS"
    assert (await ask(gateway, config, body, **{NAMESPACE: "team-b"}))[0] == "MISS"
    assert (await ask(gateway, config, body))[0] == "MISS"  # no namespace is a partition of its own
    assert len(upstream.requests) == 3
    status, hit = await ask(gateway, config, body, **{NAMESPACE: "team-a"})
    assert status == "HIT" and len(upstream.requests) == 3
    if stream:
        assert openai_chunks(hit)[-1] == "[DONE]"
    assert (await ask(gateway, config, body, **{NAMESPACE: "team-b"}))[0] == "HIT"


async def test_the_portkey_sdks_namespace_and_force_refresh(gateway: Gateway, upstream: Upstream) -> None:
    """``cache_namespace`` and ``cache_force_refresh`` as the Portkey SDK sends them."""
    config = json.loads(cached_config(upstream))
    kwargs: dict[str, Any] = {"base_url": gateway.url + "/v1", "api_key": "", "config": config}
    messages: Any = CHAT["messages"]
    asked: list[int] = []
    for namespace, refresh in (
        ("ns-1", False),
        ("ns-1", False),
        ("ns-2", False),
        ("ns-1", True),
        ("ns-1", False),
    ):
        # The SDK sends a boolean option even when false, and Portkey reads the header's
        # presence: only a refresh passes it.
        extra = {"cache_force_refresh": True} if refresh else {}
        async with portkey(**kwargs, cache_namespace=namespace, **extra) as client:
            answer = await client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert answer.choices[0].message.content == "Mock reply to: what is the capital of France"
        await settle(gateway)
        asked.append(len(upstream.requests))
    # A miss, a hit, a miss in the other namespace, a refresh, then a hit of the refreshed answer.
    assert asked == [1, 1, 2, 3, 3]


async def test_force_refresh_of_a_stream_is_fetched_and_stored(gateway: Gateway, upstream: Upstream) -> None:
    config = cached_config(upstream)
    body = {**CHAT, "stream": True}
    _, first = await ask(gateway, config, body)
    status, refreshed = await ask(gateway, config, body, **{REFRESH: "true"})
    assert status == "REFRESH" and len(upstream.requests) == 2
    assert refreshed != first  # a new answer (the mock numbers its ids), not the stored one
    status, again = await ask(gateway, config, body)
    assert status == "HIT" and again == refreshed
    assert len(upstream.requests) == 2
    # Portkey reads the header's presence: even "false" refreshes.
    assert (await ask(gateway, config, body, **{REFRESH: "false"}))[0] == "REFRESH"


# ---- Messages -----------------------------------------------------------------------------------


def messages_config(upstream: Upstream, provider: str) -> dict[str, str]:
    """The cache on; the API version the SDK is told to send too (a native answer is keyed by it)."""
    return {
        "x-portkey-config": cached_config(upstream, key="sk-ant-test", provider=provider),
        "anthropic-version": "2023-06-01",
    }


async def ask_messages(gateway: Gateway, headers: dict[str, str], stream: bool = False) -> tuple[str, bytes]:
    resp = await gateway.post("/v1/messages", {**MESSAGES, "stream": True} if stream else MESSAGES, headers)
    assert resp.status == 200, await resp.text()
    data = await resp.read()
    await settle(gateway)
    return resp.headers["x-portkey-cache-status"], data


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", ["anthropic", "openai"], ids=["native", "translated"])
async def test_messages_are_cached_and_a_hit_is_anthropics_shape(
    gateway: Gateway, upstream: Upstream, provider: str, stream: bool
) -> None:
    headers = messages_config(upstream, provider)
    status, first = await ask_messages(gateway, headers, stream)
    assert status == "MISS"
    status, hit = await ask_messages(gateway, headers, stream)
    assert status == "HIT" and len(upstream.requests) == 1
    if stream:
        check_event_order(named_events(hit))
        assert named_events(hit) == named_events(first)
    else:
        assert json.loads(hit) == json.loads(first) and json.loads(hit)["type"] == "message"
    # A namespace, and force-refresh, work here as everywhere.
    assert (await ask_messages(gateway, {**headers, NAMESPACE: "other"}, stream))[0] == "MISS"
    assert (await ask_messages(gateway, {**headers, REFRESH: "1"}, stream))[0] == "REFRESH"
    assert len(upstream.requests) == 3
    # The SDK reads a cached answer as any other.
    async with anthropic_client(gateway.url, headers) as client:
        if stream:
            async with client.messages.stream(**MESSAGES) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(**MESSAGES)
    assert message.content[0].type == "text" and message.content[0].text == "Mock reply to: cache me"
    assert len(upstream.requests) == 3


async def test_a_native_answer_is_not_shared_across_api_versions_or_betas(
    gateway: Gateway, upstream: Upstream
) -> None:
    headers = messages_config(upstream, "anthropic")
    assert (await ask_messages(gateway, headers))[0] == "MISS"
    assert (await ask_messages(gateway, headers))[0] == "HIT"
    assert (await ask_messages(gateway, {**headers, "anthropic-version": "2026-10-21"}))[0] == "MISS"
    assert (await ask_messages(gateway, {**headers, "anthropic-beta": "context-1m-2025-08-07"}))[0] == "MISS"
    assert len(upstream.requests) == 3


async def test_a_native_stream_that_failed_is_not_stored(gateway: Gateway, upstream: Upstream) -> None:
    headers = messages_config(upstream, "anthropic")
    body = {**MESSAGES, "messages": [{"role": "user", "content": "x [mock fail=error_mid_stream chunks=6]"}]}
    async with anthropic_client(gateway.url, headers) as client:
        for _ in range(2):
            with pytest.raises(anthropic.APIStatusError):
                async with client.messages.stream(**body) as events:
                    await events.get_final_message()
    assert len(upstream.requests) == 2
