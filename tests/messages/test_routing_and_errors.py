"""Everything a chat request gets, on ``/v1/messages``: configs that fall back across providers
of different wire formats, retries, timeouts; and every error, the gateway's own included, in
Anthropic's shape (https://docs.anthropic.com/en/api/errors) with the status the SDK turns into
its own error class.

Every target reaches the same mock over HTTP in its own format; ``[mock fail_first=N ...]`` in
the text fails the first N attempts whichever format they reach (the mock counts attempts per
``key`` across formats), so a config's targets fail in turn as they are tried.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import pytest

from fastgate.mock.bedrock_format import MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY
from tests.conftest import Gateway, Upstream
from tests.limits.test_limits_gateway import add
from tests.server.test_routing import FAST, fallback
from tests.support.messages import anthropic_client, check_event_order
from tests.support.sse import named_events

MODEL = "claude-sonnet-4-5"


def anthropic_target(upstream: Upstream, **extra: Any) -> dict[str, Any]:
    return {"provider": "anthropic", "api_key": "sk-ant-test", "custom_host": upstream.url, **extra}


def bedrock_target(upstream: Upstream, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "bedrock",
        "custom_host": str(upstream.server.make_url("")),
        "aws_access_key_id": MOCK_AWS_ACCESS_KEY_ID,
        "aws_secret_access_key": MOCK_AWS_SECRET_ACCESS_KEY,
        "aws_region": "us-west-2",
        "override_params": {"model": "anthropic.claude-3-haiku-20240307-v1:0"},
        **extra,
    }


def openai_target(upstream: Upstream, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "openai",
        "api_key": "sk-openai",
        "custom_host": upstream.url,
        "override_params": {"model": "gpt-4o-mini"},
        **extra,
    }


def config_headers(config: dict[str, Any]) -> dict[str, str]:
    return {"x-portkey-config": json.dumps(config)}


def request(text: str, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 100, "messages": [{"role": "user", "content": text}], **fields}


def paths(upstream: Upstream) -> list[str]:
    return [r["path"] for r in upstream.requests]


ANTHROPIC_PATH = "/v1/messages"
BEDROCK_PATH = "/model/anthropic.claude-3-haiku-20240307-v1:0/converse"
OPENAI_PATH = "/v1/chat/completions"


# ---- fallback across formats --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failing", "tried", "answered"),
    [
        (0, [ANTHROPIC_PATH], "anthropic"),
        (1, [ANTHROPIC_PATH, BEDROCK_PATH], "bedrock"),
        (2, [ANTHROPIC_PATH, BEDROCK_PATH, OPENAI_PATH], "openai"),
    ],
)
async def test_fallback_from_anthropic_to_bedrock_to_openai_answers_in_anthropics_shape(
    make_gateway: Any, upstream: Upstream, failing: int, tried: list[str], answered: str
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = fallback(anthropic_target(upstream), bedrock_target(upstream), openai_target(upstream))
    async with anthropic_client(gateway.url, config_headers(config)) as client:
        # ``status`` alone would fail every attempt: with no failure, no directive.
        marker = f" [mock fail_first={failing} status=503 key=%s]" if failing else ""
        text = "hello there" + marker.replace("%s", "whole")
        raw = await client.messages.with_raw_response.create(**request(text))
        message = await raw.parse()
        assert paths(upstream) == tried
        assert raw.headers["x-portkey-provider"] == answered
        assert raw.headers["x-portkey-last-used-option-index"] == f"config.targets[{failing}]"
        assert message.type == "message" and message.role == "assistant"
        assert message.content[0].type == "text" and message.content[0].text == "Mock reply to: hello there"
        assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
        # The same, streamed: Anthropic's events whichever target answered.
        upstream.requests.clear()
        text = "hello there" + marker.replace("%s", "streamed")
        async with client.messages.stream(**request(text)) as stream:
            final = await stream.get_final_message()
        assert paths(upstream) == [p.replace("/converse", "/converse-stream") for p in tried]
        assert final.content[0].type == "text" and final.content[0].text == "Mock reply to: hello there"
        assert final.stop_reason == "end_turn"


async def test_when_every_target_fails_the_last_error_is_in_anthropics_shape(
    make_gateway: Any, upstream: Upstream
) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    # The last target translated: its OpenAI-shaped error mapped.
    config = fallback(anthropic_target(upstream), bedrock_target(upstream), openai_target(upstream))
    async with anthropic_client(gateway.url, config_headers(config)) as client:
        with pytest.raises(anthropic.ServiceUnavailableError) as caught:
            await client.messages.create(**request("hi [mock fail_first=3 status=503 key=all]"))
    assert caught.value.status_code == 503
    assert caught.value.body == {
        "type": "error",
        "error": {"type": "api_error", "message": "openai error: mock failure 503"},
    }
    assert paths(upstream) == [ANTHROPIC_PATH, BEDROCK_PATH, OPENAI_PATH]
    # The last target native: Anthropic's own error, relayed.
    upstream.requests.clear()
    config = fallback(openai_target(upstream), anthropic_target(upstream))
    async with anthropic_client(gateway.url, config_headers(config)) as client:
        with pytest.raises(anthropic.RateLimitError) as limited:
            await client.messages.create(**request("hi [mock fail_first=2 status=429 key=native]"))
    body = limited.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"] == {"type": "rate_limit_error", "message": "mock failure 429"}
    assert paths(upstream) == [OPENAI_PATH, ANTHROPIC_PATH]


@pytest.mark.parametrize("target", [anthropic_target, openai_target, bedrock_target])
async def test_retries_until_the_target_answers(make_gateway: Any, upstream: Upstream, target: Any) -> None:
    gateway: Gateway = await make_gateway(**FAST)
    config = target(upstream, retry={"attempts": 3, "on_status_codes": [503]})
    async with anthropic_client(gateway.url, config_headers(config)) as client:
        raw = await client.messages.with_raw_response.create(
            **request("again please [mock fail_first=2 status=503 key=retried]")
        )
        message = await raw.parse()
    assert raw.headers["x-portkey-retry-attempt-count"] == "2"
    assert len(upstream.requests) == 3
    assert message.content[0].type == "text" and message.content[0].text == "Mock reply to: again please"


@pytest.mark.parametrize("target", [anthropic_target, openai_target])
async def test_request_timeout_is_an_anthropic_shaped_408(
    gateway: Gateway, upstream: Upstream, target: Any
) -> None:
    config = target(upstream, request_timeout=150)
    async with anthropic_client(gateway.url, config_headers(config)) as client:
        for stream in (False, True):
            with pytest.raises(anthropic.RequestTimeoutError) as caught:
                await client.messages.create(**request("slow [mock delay_ms=3000]", stream=stream))
            assert caught.value.status_code == 408
            assert caught.value.body == {
                "type": "error",
                "error": {
                    "type": "timeout_error",
                    "message": "Request exceeded the timeout sent in the request: 150ms",
                },
            }


# ---- the gateway's own errors -------------------------------------------------------------------


async def error_of(resp: Any) -> dict[str, Any]:
    """An Anthropic error body, checked for its shape: ``type``, and ``error`` with two strings."""
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    assert set(body) == {"type", "error"} and body["type"] == "error", body
    assert set(body["error"]) == {"type", "message"} and body["error"]["message"], body
    return body["error"]


@pytest.mark.parametrize("stream", [False, True])
async def test_bad_bodies_are_anthropic_shaped_400s(
    gateway: Gateway, upstream: Upstream, stream: bool
) -> None:
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url, "x-api-key": "sk"}
    flag = b', "stream": true' if stream else b""
    for body in (
        b"{not json",
        b"[1, 2]",
        b'{"model": "m", "max_tokens": 5, "messages": "nope"' + flag + b"}",
        b'{"model": "m", "max_tokens": 5, "messages": [{"role": "robot", "content": "x"}]' + flag + b"}",
        b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "nope"}]}]'
        + flag
        + b"}",
    ):
        resp = await gateway.post("/v1/messages", headers=headers, data=body)
        assert resp.status == 400, body
        assert (await error_of(resp))["type"] == "invalid_request_error"
    assert upstream.requests == []
    # The SDK raises its own class for it.
    async with anthropic_client(gateway.url, headers) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client.messages.create(
                model="m",
                max_tokens=5,
                messages=[{"role": "user", "content": [{"type": "nope"}]}],  # type: ignore[list-item]
            )
    assert (
        isinstance(caught.value.body, dict) and caught.value.body["error"]["type"] == "invalid_request_error"
    )


async def test_gateway_keys_limits_and_permissions_answer_in_anthropics_shape(
    make_gateway: Any, tmp_path: Path, upstream: Upstream
) -> None:
    gateway: Gateway = await make_gateway(data_dir=str(tmp_path), admin_token="admin-secret")
    limited = await add(gateway, "/admin/keys", limits={"rpm": 1})
    only_bedrock = await add(gateway, "/admin/keys", allowed_providers=["bedrock"])
    target = {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url}
    body = request("hi")
    for stream in (False, True):
        # No gateway key, then a wrong one: 401.
        resp = await gateway.post("/v1/messages", {**body, "stream": stream}, target)
        assert resp.status == 401
        assert (await error_of(resp))["type"] == "authentication_error"
        resp = await gateway.post("/v1/messages", body, {**target, "x-portkey-api-key": "fg-nope"})
        assert resp.status == 401
        # A key that may not use this provider: 403.
        resp = await gateway.post(
            "/v1/messages", {**body, "stream": stream}, {**target, "x-portkey-api-key": only_bedrock["key"]}
        )
        assert resp.status == 403
        assert (await error_of(resp))["type"] == "permission_error"
    # Over the key's requests per minute: 429, with Retry-After.
    headers = {**target, "x-portkey-api-key": limited["key"]}
    assert (await gateway.post("/v1/messages", body, headers)).status == 200
    resp = await gateway.post("/v1/messages", {**body, "stream": True}, headers)
    assert resp.status == 429 and 1 <= int(resp.headers["Retry-After"]) <= 60
    assert (await error_of(resp))["type"] == "rate_limit_error"
    # The SDK sees each as its own class.
    async with anthropic_client(gateway.url, target) as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(**body)
    async with anthropic_client(gateway.url, {**target, "x-portkey-api-key": only_bedrock["key"]}) as client:
        with pytest.raises(anthropic.PermissionDeniedError):
            await client.messages.create(**body)
    async with anthropic_client(gateway.url, headers) as client:
        with pytest.raises(anthropic.RateLimitError):
            await client.messages.create(**body)


@pytest.mark.parametrize("provider", ["anthropic", "openai"])
async def test_unreachable_and_slow_upstreams_are_502_and_504(
    make_gateway: Any, upstream: Upstream, provider: str
) -> None:
    gateway: Gateway = await make_gateway(read_timeout=0.3)
    dead = {"x-portkey-provider": provider, "x-portkey-custom-host": "http://127.0.0.1:9/v1"}
    async with anthropic_client(gateway.url, dead) as client:
        with pytest.raises(anthropic.InternalServerError) as caught:
            await client.messages.create(**request("hi"))
    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict) and caught.value.body["error"]["type"] == "api_error"
    assert caught.value.body["error"]["message"].startswith(f"{provider} error: upstream connection failed")
    slow = {"x-portkey-provider": provider, "x-portkey-custom-host": upstream.url}
    async with anthropic_client(gateway.url, slow) as client:
        with pytest.raises(anthropic.GatewayTimeoutError) as timed_out:
            await client.messages.create(**request("hi [mock delay_ms=3000]"))
    assert timed_out.value.status_code == 504
    assert isinstance(timed_out.value.body, dict) and timed_out.value.body["error"]["type"] == "timeout_error"


async def test_a_stream_cut_by_the_upstream_ends_with_one_error_event(
    gateway: Gateway, upstream: Upstream
) -> None:
    """Native or translated, a stream whose upstream drops the connection after its first events
    ends with Anthropic's ``error`` event, never with a cut connection or a silent end."""
    for provider in ("anthropic", "openai", "mock"):
        headers = {"x-portkey-provider": provider, "x-api-key": "sk", "anthropic-version": "2023-06-01"}
        if provider != "mock":
            headers["x-portkey-custom-host"] = upstream.url
        body = request("split this answer into very many small pieces [mock fail=drop_mid_stream chunks=8]")
        resp = await gateway.post("/v1/messages", {**body, "stream": True}, headers)
        assert resp.status == 200
        events = named_events(await resp.read())
        check_event_order(events)
        assert events[-1][0] == "error", (provider, events[-1])
        assert events[-1][1]["error"]["type"] == "api_error"
        assert f"{provider} error: stream interrupted" in events[-1][1]["error"]["message"]
