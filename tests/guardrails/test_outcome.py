"""Verdicts → what the client gets: 446, 246, hook_results on JSON answers, and the extra
events of a stream (the hook_results first event, the after-request verdict at the end)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastgate.guardrails.context import CHAT, COMPLETE, MESSAGES, RESPONSES
from fastgate.guardrails.engine import HookRun, after_request, before_request
from fastgate.guardrails.outcome import (
    MESSAGE,
    json_answer,
    stream_epilogue,
    stream_prelude,
    stream_status,
    with_hook_results,
)
from fastgate.guardrails.runtime import Runtime
from fastgate.guardrails.stream import StreamAnswer
from tests.guardrails.conftest import chat, chat_answer, context, leaf_hooks

RUNTIME = Runtime(transport=None)  # type: ignore[arg-type]
ANSWER = msgspec.json.encode(chat_answer("hello world"))
HOOKS = leaf_hooks(
    {
        "input_guardrails": [{"id": "in", "contains": {"words": ["please"]}}],
        "output_guardrails": [
            {"id": "out", "deny": True, "contains": {"words": ["forbidden"], "operator": "none"}}
        ],
    }
)


async def runs(question: str, answer: str, status: int = 200) -> tuple[HookRun, HookRun]:
    ctx = context(chat(question))
    before = await before_request(HOOKS, ctx, RUNTIME)
    return before, await after_request(HOOKS, ctx, chat_answer(answer), status, RUNTIME)


async def test_all_pass_keeps_the_status_and_adds_hook_results() -> None:
    before, after = await runs("please", "hello world")
    status, body = json_answer(200, ANSWER, before, after)
    out = msgspec.json.decode(body)
    assert status == 200 and out["choices"][0]["message"]["content"] == "hello world"
    assert [h["id"] for h in out["hook_results"]["before_request_hooks"]] == ["in"]
    assert [h["id"] for h in out["hook_results"]["after_request_hooks"]] == ["out"]


async def test_a_failure_without_deny_is_246_with_the_answer() -> None:
    before, after = await runs("no magic word", "hello world")
    status, body = json_answer(200, ANSWER, before, after)
    out = msgspec.json.decode(body)
    assert status == 246 and out["choices"][0]["message"]["content"] == "hello world"
    assert out["hook_results"]["before_request_hooks"][0]["verdict"] is False
    assert json_answer(429, b'{"error":{}}', before, after)[0] == 429  # only a 200 becomes 246


async def test_a_denying_after_hook_is_446_and_drops_the_answer() -> None:
    before, after = await runs("please", "forbidden words")
    status, body = json_answer(200, msgspec.json.encode(chat_answer("forbidden words")), before, after)
    out = msgspec.json.decode(body)
    assert status == 446 and "choices" not in out
    assert out["error"] == {"message": MESSAGE, "type": "hooks_failed", "param": None, "code": None}
    assert [h["deny"] for h in out["hook_results"]["after_request_hooks"]] == [True]


async def test_a_transformed_answer_is_the_one_returned() -> None:
    hooks = leaf_hooks({"output_guardrails": [{"regexReplace": {"rule": "world"}}]})
    ctx = context(chat("q"))
    after = await after_request(hooks, ctx, chat_answer("hello world"), 200, RUNTIME)
    _, body = json_answer(200, ANSWER, None, after)
    assert msgspec.json.decode(body)["choices"][0]["message"]["content"] == "hello [REDACTED]"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}\n', b'{"a": 1,"hook_results":{"x":1}}'),
        (b"{ }", b'{"hook_results":{"x":1}}'),
        (b"[1, 2]", b"[1, 2]"),
        (b"not json", b"not json"),
    ],
)
def test_hook_results_are_spliced_into_object_answers(body: bytes, expected: bytes) -> None:
    assert with_hook_results(body, b'{"x":1}') == expected


def test_no_hooks_ran_no_hook_results() -> None:
    empty = HookRun([], context())
    assert json_answer(200, ANSWER, empty, None) == (200, ANSWER)


def events(raw: bytes) -> list[tuple[str | None, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name, data = None, None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = msgspec.json.decode(line[6:])
        out.append((name, data))
    return out


async def test_stream_status_and_first_event() -> None:
    before, _ = await runs("no magic word", "x")
    assert stream_status(before, 200) == 246 and stream_status(before, 500) == 500
    assert stream_prelude(before, True, CHAT) == b""  # strict mode: nothing but OpenAI chunks
    ((name, data),) = events(stream_prelude(before, False, CHAT))
    assert name is None and list(data["hook_results"]) == ["before_request_hooks"]
    ((name, _),) = events(stream_prelude(before, False, MESSAGES))
    assert name == "hook_results"


async def test_stream_last_events() -> None:
    before, passed = await runs("please", "fine")
    assert stream_epilogue(before, passed, True, CHAT) == b""
    ((_, data),) = events(stream_epilogue(before, passed, False, CHAT))
    assert [h["id"] for h in data["hook_results"]["after_request_hooks"]] == ["out"]
    before, denied = await runs("please", "forbidden")
    for strict in (True, False):
        ((_, data),) = events(stream_epilogue(before, denied, strict, CHAT))
        assert data["error"]["type"] == "hooks_failed" and data["hook_results"]["after_request_hooks"]
    ((name, data),) = events(stream_epilogue(before, denied, True, MESSAGES))
    assert name == "error" and data["type"] == "error" and data["error"]["type"] == "hooks_failed"
    ((name, data),) = events(stream_epilogue(before, denied, True, RESPONSES))
    assert name == "error" and data["code"] == "hooks_failed"


def chunk(text: str) -> bytes:
    return msgspec.json.encode(
        {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"content": text}}]}
    )


def test_a_chat_stream_is_assembled_for_the_after_hooks() -> None:
    answer = StreamAnswer(CHAT)
    for data in (
        chunk("Hel"),
        chunk("lo"),
        b'{"choices":[{"index":1,"delta":{"content":"X"}}]}',
        b"[DONE]",
        b"junk",
    ):
        answer.feed(data)
    assert answer.answer()["choices"][0]["message"]["content"] == "Hello"
    assert answer.answer()["id"] == "c1"


def test_completions_messages_and_responses_streams_are_assembled() -> None:
    completion = StreamAnswer(COMPLETE)
    completion.feed(b'{"choices":[{"index":0,"text":"a"}]}')
    completion.feed(b'{"choices":[{"index":0,"text":"b"}]}')
    assert completion.answer()["choices"][0]["text"] == "ab"
    messages = StreamAnswer(MESSAGES)
    for event in (
        {"type": "message_start", "message": {"id": "msg_1", "model": "claude"}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi "}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "there"}},
    ):
        messages.feed(msgspec.json.encode(event))
    assert messages.answer()["content"] == [{"type": "text", "text": "Hi there"}]
    responses = StreamAnswer(RESPONSES)
    responses.feed(b'{"type":"response.output_text.delta","delta":"x"}')
    assert responses.answer()["output"][0]["content"][0]["text"] == "x"
    final = {
        "object": "response",
        "output": [{"type": "message", "content": [{"type": "output_text", "text": "y"}]}],
    }
    responses.feed(msgspec.json.encode({"type": "response.completed", "response": final}))
    assert responses.answer() == final


async def test_output_hooks_judge_an_assembled_stream() -> None:
    answer = StreamAnswer(CHAT)
    answer.feed(chunk("forbid"))
    answer.feed(chunk("den"))
    ctx = context(chat("please"))
    after = await after_request(HOOKS, ctx, answer.answer(), 200, RUNTIME)
    assert after.denied
