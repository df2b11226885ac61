"""Messages to a provider that speaks them natively: sent as the client wrote them, relayed as
the provider answered.

``anthropic`` gets the client's body and ``anthropic-version`` / ``anthropic-beta`` byte for byte,
with the target's credential (a virtual key's secret is never replaced by the key the client
holds); its answers, JSON and SSE, reach the client byte for byte. Claude on ``vertex-ai`` gets
the same body as Vertex takes it (https://docs.anthropic.com/en/api/claude-on-vertex-ai): the
model in the URL, ``anthropic_version: vertex-2023-10-16`` in the body, ``:rawPredict`` /
``:streamRawPredict``, and token counts at ``count-tokens:rawPredict``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from aiohttp.test_utils import TestServer

from tests.conftest import Gateway, Upstream
from tests.limits.test_limits_gateway import add
from tests.providers.conformance import CLAUDE_ON_VERTEX, VERTEX_ROOT
from tests.support.messages import anthropic_client, check_event_order
from tests.support.payloads import recorded
from tests.support.replay import Replay, start_replay
from tests.support.sse import named_events

BETA = "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
VERTEX_HEADERS = {
    "x-portkey-provider": "vertex-ai",
    "x-portkey-vertex-project-id": "proj-1",
    "x-portkey-vertex-region": "europe-west4",
}


def anthropic_at(upstream: Upstream) -> dict[str, str]:
    return {"x-portkey-provider": "anthropic", "x-portkey-custom-host": upstream.url}


@pytest.fixture
async def replay(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Replay:
    return await start_replay(aiohttp_server)


async def test_the_sdks_request_reaches_anthropic_byte_for_byte(gateway: Gateway, upstream: Upstream) -> None:
    sent: list[httpx2.Request] = []

    async def keep(request: httpx2.Request) -> None:
        sent.append(request)

    http = anthropic.DefaultAsyncHttpxClient(event_hooks={"request": [keep]})
    async with anthropic_client(
        gateway.url, anthropic_at(upstream), "sk-ant-test", http_client=http
    ) as client:
        message = await client.beta.messages.create(
            model="claude-mock-1",
            max_tokens=64,
            betas=BETA.split(","),
            system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            metadata={"user_id": "user-1"},
            messages=[{"role": "user", "content": "native please"}],
        )
    assert message.content[0].type == "text" and message.content[0].text == "Mock reply to: native please"
    [request] = sent
    [record] = upstream.requests
    assert record["path"] == "/v1/messages"
    assert record["body"].encode() == request.content
    headers = record["headers"]
    assert headers["anthropic-version"] == request.headers["anthropic-version"]
    assert headers["anthropic-beta"] == request.headers["anthropic-beta"] == BETA
    # The client's key, as Anthropic takes it, and no second copy in another header.
    assert headers["x-api-key"] == "sk-ant-test"
    assert "Authorization" not in headers
    assert not [name for name in headers if name.lower().startswith("x-portkey-")]


async def test_a_body_the_gateway_does_not_know_goes_as_it_came(gateway: Gateway, upstream: Upstream) -> None:
    """Whitespace, key order, a field no mapping knows, escapes: the bytes are the client's."""
    body = (
        b'{ "messages" : [ {"content": "caf\\u00e9 \\ud83d\\ude00", "role": "user"} ],\n'
        b'  "max_tokens": 16, "model": "claude-mock-1", "some_future_field": {"x": [1, 2.50]} }'
    )
    headers = {**anthropic_at(upstream), "x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
    resp = await gateway.post("/v1/messages", headers=headers, data=body)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["type"] == "message"
    assert upstream.requests[0]["body"].encode() == body


@pytest.mark.parametrize("name", ["message_text.json", "stream_text.sse", "stream_thinking.sse"])
async def test_anthropics_answer_reaches_the_client_byte_for_byte(
    gateway: Gateway, replay: Replay, name: str
) -> None:
    payload = recorded("anthropic", name)
    replay.serve(payload)
    stream = name.endswith(".sse")
    resp = await gateway.post(
        "/v1/messages",
        {
            "model": "claude-sonnet-4-20250514",
            "max_tokens": 64,
            "stream": stream,
            "messages": [{"role": "user", "content": "hi"}],
        },
        {
            "x-portkey-provider": "anthropic",
            "x-portkey-custom-host": replay.url + "/v1",
            "x-api-key": "sk-ant-test",
        },
    )
    assert resp.status == 200
    assert resp.headers["x-portkey-provider"] == "anthropic"
    assert resp.content_type == ("text/event-stream" if stream else "application/json")
    assert await resp.read() == payload
    if stream:
        check_event_order(named_events(payload))


async def test_anthropics_error_is_relayed_with_its_status(gateway: Gateway, replay: Replay) -> None:
    payload = recorded("anthropic", "error_overloaded.json")
    replay.serve(payload, status=529)
    async with anthropic_client(
        gateway.url, {"x-portkey-provider": "anthropic", "x-portkey-custom-host": replay.url + "/v1"}
    ) as client:
        with pytest.raises(anthropic.OverloadedError) as caught:
            await client.messages.create(
                model="claude-sonnet-4-20250514", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.status_code == 529
    assert caught.value.body == json.loads(payload)


async def test_a_virtual_keys_secret_is_what_anthropic_gets(
    make_gateway: Any, tmp_path: Path, upstream: Upstream
) -> None:
    """Claude Code always sends a key of its own (``ANTHROPIC_API_KEY``, or a bearer token): with
    a virtual key the server's secret goes upstream, and the client's key nowhere."""
    gateway = await make_gateway(data_dir=str(tmp_path), admin_token="admin-secret")
    vk = await add(
        gateway,
        "/admin/virtual-keys",
        provider="anthropic",
        secret="sk-ant-server-secret",
        custom_host=upstream.url,
    )
    for credential in ({"x-api-key": "sk-ant-dummy"}, {"Authorization": "Bearer sk-ant-dummy"}):
        headers = {"x-portkey-virtual-key": vk["slug"], "anthropic-version": "2023-06-01", **credential}
        body = {"model": "claude-mock-1", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
        for stream in (False, True):
            resp = await gateway.post("/v1/messages", {**body, "stream": stream}, headers)
            assert resp.status == 200, await resp.text()
            await resp.read()
            sent = upstream.requests[-1]["headers"]
            assert sent["x-api-key"] == "sk-ant-server-secret"
            assert "sk-ant-dummy" not in json.dumps(sent)


# ---- Claude on Vertex AI ------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_claude_on_vertex_gets_the_body_as_vertex_takes_it(
    gateway: Gateway, upstream: Upstream, stream: bool
) -> None:
    headers = {**VERTEX_HEADERS, "x-portkey-custom-host": str(upstream.server.make_url("/v1"))}
    body = {
        "model": "anthropic." + CLAUDE_ON_VERTEX,
        "max_tokens": 64,
        "system": "Be brief.",
        "stop_sequences": ["zzz"],
        "messages": [{"role": "user", "content": "on vertex"}],
        "stream": stream,
    }
    async with anthropic_client(
        gateway.url, {**headers, "anthropic-beta": BETA}, "ya29.client-token"
    ) as client:
        if stream:
            async with client.messages.stream(**{k: v for k, v in body.items() if k != "stream"}) as events:
                message = await events.get_final_message()
        else:
            message = await client.messages.create(**body)
    assert message.content[0].type == "text" and message.content[0].text == "Mock reply to: on vertex"
    [record] = upstream.requests
    method = "streamRawPredict" if stream else "rawPredict"
    assert record["path"] == f"{VERTEX_ROOT}/anthropic/models/{CLAUDE_ON_VERTEX}:{method}"
    assert record["headers"]["Authorization"] == "Bearer ya29.client-token"
    assert record["headers"]["anthropic-beta"] == BETA
    expected = {k: v for k, v in body.items() if k != "model"}
    assert json.loads(record["body"]) == {**expected, "anthropic_version": "vertex-2023-10-16"}


async def test_claude_on_vertex_keeps_a_configured_api_version(gateway: Gateway, upstream: Upstream) -> None:
    headers = {
        **VERTEX_HEADERS,
        "x-portkey-custom-host": str(upstream.server.make_url("/v1")),
        "x-portkey-anthropic-version": "vertex-2023-10-16",
        "Authorization": "Bearer ya29.client-token",
    }
    body = {"model": CLAUDE_ON_VERTEX, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    resp = await gateway.post("/v1/messages", body, headers)
    assert resp.status == 200, await resp.text()
    counted = await gateway.post(
        "/v1/messages/count_tokens", {k: v for k, v in body.items() if k != "max_tokens"}, headers
    )
    assert counted.status == 200 and (await counted.json())["input_tokens"] > 0
    count_record = upstream.requests[-1]
    assert count_record["path"] == f"{VERTEX_ROOT}/anthropic/models/count-tokens:rawPredict"
    assert json.loads(count_record["body"])["model"] == CLAUDE_ON_VERTEX
