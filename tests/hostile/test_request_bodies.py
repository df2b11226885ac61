"""Hostile request bodies: each is a 400 (or 413) that names the problem, never a 500 or a hang,
and the gateway keeps serving afterwards."""

from __future__ import annotations

import io
import typing
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from fastgate.schema.openai import ChatRequest
from tests.conftest import Gateway, Upstream, openai_headers
from tests.faults.test_provider_faults import HEADERS

HI = [{"role": "user", "content": "hi"}]
#: Providers reached through the mock: how to address each.
PROVIDERS: dict[str, Callable[[Upstream], dict[str, str]]] = {"openai": openai_headers, **HEADERS}
#: Providers whose requests are mapped, hence decoded whole by the gateway.
MAPPED = [p for p in PROVIDERS if p != "openai"]


def headers(upstream: Upstream, provider: str) -> dict[str, str]:
    return PROVIDERS[provider](upstream)


async def expect_400(gw: Gateway, upstream: Upstream, provider: str, data: bytes, *names: str) -> str:
    resp = await gw.post("/v1/chat/completions", data=data, headers=headers(upstream, provider))
    assert resp.status == 400, (resp.status, await resp.text())
    message = (await resp.json())["error"]["message"]
    for name in names:
        assert name in message, message
    return message


def nested(depth: int) -> bytes:
    return b'{"model": "m", "messages": [{"role": "user", "content": "hi"}], "x": ' + (
        b"[" * depth + b"]" * depth + b"}"
    )


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (nested(100_000), "nested too deeply"),
        (nested(2_000), "nested too deeply"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe"}]}', "UTF-8"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}', "UTF-8"),  # surrogate
        (b'{"model": "m", "messages": [{"role": "user", "content": "\xc0\xaf"}]}', "UTF-8"),  # overlong "/"
        (b'{"model": "a", "messages": [], "model": "b"}', "'model' more than once"),
        (b'{"stream": false, "model": "m", "messages": [], "stream": true}', "'stream' more than once"),
        (b'{"model": 5, "messages": []}', "$.model"),
        (b'{"model": "m", "stream": "yes", "messages": []}', "$.stream"),
        (b'{"model": "m", "stream_options": 7, "messages": []}', "$.stream_options"),
        (b'{"model": "m", "stream_options": {"include_usage": "x"}}', "$.stream_options.include_usage"),
        (b'{"model": "m", "messages": [', "not valid JSON"),
        (b'"just a string"', "Invalid request body"),
        (b"\x00\x01\x02", "not valid JSON"),
    ],
)
async def test_hostile_body_is_a_400_naming_the_problem(
    gateway: Gateway, upstream: Upstream, provider: str, data: bytes, fragment: str
) -> None:
    await expect_400(gateway, upstream, provider, data, fragment)
    assert upstream.requests == []


async def test_a_key_named_in_text_is_not_a_duplicate(gateway: Gateway, upstream: Upstream) -> None:
    text = 'say "model" and "stream" twice: "model" "stream"'
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "x"}],
    }
    resp = await gateway.post("/v1/chat/completions", body, headers(upstream, "openai"))
    assert resp.status == 200


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_huge_strings(make_gateway: Any, upstream: Upstream, provider: str) -> None:
    gw = await make_gateway(max_body_bytes=8 * 1024 * 1024)
    big = "é" * (3 * 1024 * 1024)  # 6 MiB of two-byte UTF-8, under the limit: relayed
    body = msgspec.json.encode({"model": "m", "messages": [{"role": "user", "content": big}]})
    url = gw.url + "/v1/chat/completions"
    hdrs = {"Content-Type": "application/json", **headers(upstream, provider)}
    resp = await gw.session.post(url, data=io.BytesIO(body), headers=hdrs)
    assert resp.status == 200
    assert len(upstream.requests[-1]["body"]) > len(big)
    too_big = msgspec.json.encode({"model": "m", "messages": [{"role": "user", "content": big * 2}]})
    resp = await gw.session.post(url, data=io.BytesIO(too_big), headers=hdrs)
    assert resp.status == 413
    assert "too large" in (await resp.json())["error"]["message"]


def _wrong_value(kind: Any) -> Any:
    """A JSON value that the field's type refuses."""
    for candidate in ("not a valid value", 12345, {"wrong": True}, [1, 2], 1.5, True):
        try:
            msgspec.convert(candidate, kind)
        except msgspec.ValidationError:
            return candidate
    raise AssertionError(f"no wrong value for {kind}")


CHAT_FIELDS = typing.get_type_hints(ChatRequest)
WRONG_TYPES = [(name, _wrong_value(kind)) for name, kind in CHAT_FIELDS.items()]
#: (path named in the error, raw JSON members added to a valid body)
NESTED_WRONG = [
    ("messages[0].role", b'"messages": [{"role": 5, "content": "hi"}]'),
    ("messages[0].content", b'"messages": [{"role": "user", "content": 5}]'),
    ("messages[0].content[0]", b'"messages": [{"role": "user", "content": [{"type": "nope"}]}]'),
    ("messages[0].tool_calls", b'"messages": [{"role": "assistant", "tool_calls": "x"}]'),
    ("tools[0].function.name", b'"tools": [{"type": "function", "function": {"name": 5}}]'),
    ("max_tokens", b'"max_tokens": 1e400'),  # numbers out of range
    ("temperature", b'"temperature": -1e400'),
    ("n", b'"n": 1.5'),
]


@pytest.mark.parametrize("provider", MAPPED)
@pytest.mark.parametrize(("field", "value"), WRONG_TYPES, ids=[f for f, _ in WRONG_TYPES])
async def test_wrong_type_in_any_field_is_named(
    gateway: Gateway, upstream: Upstream, provider: str, field: str, value: Any
) -> None:
    body = {"model": "m", "messages": HI, field: value}
    await expect_400(gateway, upstream, provider, msgspec.json.encode(body), f"$.{field}")
    assert upstream.requests == []


@pytest.mark.parametrize("provider", MAPPED)
@pytest.mark.parametrize(("path", "members"), NESTED_WRONG, ids=[p for p, _ in NESTED_WRONG])
async def test_wrong_nested_value_is_named(
    gateway: Gateway, upstream: Upstream, provider: str, path: str, members: bytes
) -> None:
    body = b'{"model": "m", ' + members + (b"}" if b'"messages"' in members else b', "messages": []}')
    await expect_400(gateway, upstream, provider, body, f"$.{path}")
    ok = await gateway.post(
        "/v1/chat/completions", {"model": "m", "messages": HI}, headers(upstream, provider)
    )
    assert ok.status == 200
