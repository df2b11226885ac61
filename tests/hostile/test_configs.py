"""Hostile ``x-portkey-config`` and ``x-portkey-metadata`` headers: a 400 naming the problem."""

from __future__ import annotations

import asyncio
import typing
from typing import Any

import msgspec
import pytest

from fastgate.routing.config import ConfigNode
from tests.conftest import Gateway

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


async def expect_400(gw: Gateway, headers: dict[str, str], *fragments: str) -> str:
    resp = await gw.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 400, (resp.status, await resp.text())
    message = (await resp.json())["error"]["message"]
    for fragment in fragments:
        assert fragment in message, message
    return message


def _wrong_value(kind: Any) -> Any:
    for candidate in ("not a valid value", 12345, {"wrong": True}, [1, 2], 1.5, True):
        try:
            msgspec.convert(candidate, kind)
        except msgspec.ValidationError:
            return candidate
    raise AssertionError(f"no wrong value for {kind}")


FIELDS = {k: v for k, v in typing.get_type_hints(ConfigNode).items() if k != "options"}
WRONG = [(name, _wrong_value(kind)) for name, kind in FIELDS.items()]


@pytest.mark.parametrize(("field", "value"), WRONG, ids=[f for f, _ in WRONG])
async def test_wrong_type_in_any_config_field_is_named(gateway: Gateway, field: str, value: Any) -> None:
    config = {"provider": "mock", field: value}
    await expect_400(gateway, {"x-portkey-config": msgspec.json.encode(config).decode()}, field)


NESTED = [
    ("strategy.mode", '{"strategy": {"mode": 5}, "targets": [{"provider": "mock"}]}'),
    ("retry.attempts", '{"provider": "mock", "retry": {"attempts": "x"}}'),
    ("retry.on_status_codes", '{"provider": "mock", "retry": {"attempts": 1, "on_status_codes": "x"}}'),
    ("cache.mode", '{"provider": "mock", "cache": {"mode": 5}}'),
    (
        "targets[1].weight",
        '{"strategy": {"mode": "loadbalance"}, "targets": [{"provider": "mock"}, '
        '{"provider": "mock", "weight": "heavy"}]}',
    ),
    (
        "targets[0].targets[0].request_timeout",
        '{"strategy": {"mode": "fallback"}, "targets": [{"strategy": '
        '{"mode": "fallback"}, "targets": [{"provider": "mock", "request_timeout": "soon"}]}]}',
    ),
    # Numbers out of range: the JSON decoder refuses them before any field is known.
    ("Number out of range", '{"provider": "mock", "request_timeout": 1e400}'),
    ("Number out of range", '{"strategy": {"mode": "loadbalance"}, "targets": [{"weight": -1e999}]}'),
]


@pytest.mark.parametrize(("path", "config"), NESTED)
async def test_wrong_nested_config_value_is_named(gateway: Gateway, path: str, config: str) -> None:
    await expect_400(gateway, {"x-portkey-config": config}, path)


@pytest.mark.parametrize(
    ("header", "value", "fragment"),
    [
        (
            "x-portkey-config",
            '{"provider": "mock", "x": ' + "[" * 3000 + "]" * 3000 + "}",
            "nested too deeply",
        ),
        ("x-portkey-metadata", '{"x": ' + "[" * 3000 + "]" * 3000 + "}", "nested too deeply"),
        (
            "x-portkey-config",
            '{"provider": "openai", "provider": "mock"}',
            "'provider' appears more than once",
        ),
        (
            "x-portkey-config",
            '{"targets": [{"provider": "mock", "weight": 1, "weight": 2}], '
            '"strategy": {"mode": "loadbalance"}}',
            "'weight' appears more than once",
        ),
        ("x-portkey-config", '["provider", "mock"]', "saved config"),
        ("x-portkey-config", '{"provider": "mock"', "not valid JSON"),
        ("x-portkey-metadata", '["not", "an", "object"]', "x-portkey-metadata"),
    ],
)
async def test_hostile_config_text(gateway: Gateway, header: str, value: str, fragment: str) -> None:
    await expect_400(gateway, {"x-portkey-provider": "mock", header: value}, fragment)


async def test_invalid_utf8_in_a_config_header(gateway: Gateway) -> None:
    # aiohttp would refuse to send it, so the request is written by hand.
    body = msgspec.json.encode(CHAT)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'x-portkey-config: {"provider": "mock", "api_key": "\xff\xfe"}\r\n'
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    reader, writer = await asyncio.open_connection(gateway.host, gateway.port)
    writer.write(head + body)
    answer = await reader.read()
    writer.close()
    status = answer.split(b" ", 2)[1]
    assert status == b"400", answer[:300]
    assert b"UTF-8" in answer or b"utf-8" in answer, answer[-300:]
