"""The in-process ``mock`` provider through a real gateway: its request is prepared as every other
provider's (``override_params`` included), and its answers are as deterministic as documented."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.conftest import Gateway

CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "hello there"}]}


def config(**target: Any) -> dict[str, str]:
    return {"x-portkey-config": msgspec.json.encode({"provider": "mock", **target}).decode()}


def stream_events(raw: bytes) -> list[Any]:
    frames = [f.removeprefix(b"data: ") for f in raw.split(b"\n\n") if f]
    assert frames[-1] == b"[DONE]"
    return [msgspec.json.decode(f) for f in frames[:-1]]


@pytest.mark.parametrize("stream", [False, True])
async def test_override_params_reach_the_mock(gateway: Gateway, stream: bool) -> None:
    headers = config(override_params={"model": "mock-large", "mock": {"content": "as configured"}})
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "stream": stream}, headers)
    assert resp.status == 200
    if stream:
        events = stream_events(await resp.read())
        assert {e["model"] for e in events} == {"mock-large"}
        assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events) == "as configured"
    else:
        answer = await resp.json()
        assert answer["model"] == "mock-large"
        assert answer["choices"][0]["message"]["content"] == "as configured"


async def test_override_params_of_a_fallback_target_reach_the_mock(gateway: Gateway) -> None:
    fallback = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "mock", "override_params": {"mock": {"status": 503}}},
            {"provider": "mock", "override_params": {"model": "mock-large"}},
        ],
    }
    resp = await gateway.post(
        "/v1/chat/completions", CHAT, {"x-portkey-config": msgspec.json.encode(fallback).decode()}
    )
    assert resp.status == 200
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert (await resp.json())["model"] == "mock-large"


async def test_answers_depend_on_the_request_alone_but_id_and_created(gateway: Gateway) -> None:
    """As the README says: text, usage and tool calls come from the request; ``id`` is unique per
    answer and ``created`` is the clock's, so two answers can be told apart."""
    headers = {"x-portkey-provider": "mock"}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    body = {**CHAT, "tools": tools, "mock": {"tool_call": True}}
    first, second = [
        await (await gateway.post("/v1/chat/completions", body, headers)).json() for _ in range(2)
    ]
    assert first["id"] != second["id"]
    for answer in (first, second):
        del answer["id"], answer["created"]
        for call in answer["choices"][0]["message"]["tool_calls"]:
            del call["id"]
    assert first == second
    call = first["choices"][0]["message"]["tool_calls"][0]["function"]
    # Arguments valid for the tool's schema (an object with no properties named: an empty one).
    assert (call["name"], msgspec.json.decode(call["arguments"])) == ("lookup", {})
