"""regexReplace and addPrefix: what they change, on which request types, and what stays."""

from __future__ import annotations

from typing import Any

import pytest

from fastgate.guardrails.context import AFTER, BEFORE, COMPLETE, EMBED, MESSAGES, RESPONSES
from tests.guardrails.conftest import chat, chat_answer, context, run

EMAIL = r"[\w.]+@[\w.]+"


def test_regex_replace_redacts_the_last_message_and_leaves_the_original_alone() -> None:
    request = chat("mail me at a@b.co or c@d.io")
    out = run("default.regexReplace", {"rule": f"/{EMAIL}/g"}, context(request))
    assert out.verdict is True and out.request is not None
    assert out.request["messages"][-1]["content"] == "mail me at [REDACTED] or [REDACTED]"
    assert request["messages"][-1]["content"] == "mail me at a@b.co or c@d.io"
    assert out.data["explanation"] == f"Pattern '/{EMAIL}/g' matched and was replaced with '[REDACTED]'"


def test_regex_replace_without_g_replaces_the_first_match_and_i_ignores_case() -> None:
    out = run(
        "default.regexReplace", {"rule": "/SECRET/i", "redactText": "***"}, context(chat("secret and Secret"))
    )
    assert out.request is not None and out.request["messages"][-1]["content"] == "*** and Secret"


def test_regex_replace_changes_only_text_parts() -> None:
    parts = [{"type": "text", "text": "x 4111"}, {"type": "image_url", "image_url": {"url": "u"}}]
    out = run("default.regexReplace", {"rule": r"\d+"}, context(chat(parts)))
    assert out.request is not None
    assert out.request["messages"][-1]["content"] == [{"type": "text", "text": "x [REDACTED]"}, parts[1]]


def test_regex_replace_no_match_changes_nothing_and_fail_on_detection_fails() -> None:
    out = run("default.regexReplace", {"rule": "zebra"}, context(chat("fox")))
    assert out.request is None and out.verdict is True
    out = run("default.regexReplace", {"rule": "fox", "failOnDetection": True}, context(chat("fox")))
    assert out.verdict is False and out.request is not None


def test_regex_replace_after_the_request_changes_the_answer() -> None:
    ctx = context(answer=chat_answer("call 555-1234"))
    out = run("default.regexReplace", {"rule": r"\d{3}-\d{4}"}, ctx, AFTER)
    assert out.response is not None and out.request is None
    assert out.response["choices"][0]["message"]["content"] == "call [REDACTED]"


@pytest.mark.parametrize(
    ("kind", "request_json", "path"),
    [
        (COMPLETE, {"model": "m", "prompt": "key sk-1"}, ("prompt",)),
        (EMBED, {"model": "m", "input": ["ok", "key sk-1"]}, ("input", 1)),
        (RESPONSES, {"model": "m", "input": "key sk-1"}, ("input",)),
        (
            MESSAGES,
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text", "text": "key sk-1"}]}]},
            ("messages", -1, "content", 0, "text"),
        ),
    ],
)
def test_regex_replace_on_every_request_type(
    kind: str, request_json: dict[str, Any], path: tuple[Any, ...]
) -> None:
    out = run("default.regexReplace", {"rule": r"sk-\d"}, context(request_json, kind=kind))
    assert out.request is not None
    value: Any = out.request
    for step in path:
        value = value[step]
    assert value == "key [REDACTED]"


def test_add_prefix_to_the_last_user_message() -> None:
    out = run("default.addPrefix", {"prefix": "Be brief. "}, context(chat("hi")))
    assert out.verdict is True and out.request is not None
    assert out.request["messages"] == [{"role": "user", "content": "Be brief. hi"}]
    assert out.data == {
        "prefix": "Be brief. ",
        "requestType": "chatComplete",
        "applyToRole": "user",
        "addToExisting": True,
        "onlyIfEmpty": False,
    }


def test_add_prefix_to_a_system_message_new_or_existing() -> None:
    request = chat("hi")
    out = run("default.addPrefix", {"prefix": "SYS", "applyToRole": "system"}, context(request))
    assert out.request is not None and out.request["messages"][0] == {"role": "system", "content": "SYS"}
    request["messages"].insert(0, {"role": "system", "content": " rules"})
    out = run(
        "default.addPrefix",
        {"prefix": "SYS", "applyToRole": "system", "addToExisting": False},
        context(request),
    )
    assert out.request is not None
    assert [m["content"] for m in out.request["messages"]] == ["SYS", " rules", "hi"]


def test_add_prefix_only_if_empty_and_before_image_parts() -> None:
    out = run("default.addPrefix", {"prefix": "P", "onlyIfEmpty": True}, context(chat("full")))
    assert out.request is not None and out.request["messages"][-1]["content"] == "full"
    parts = [{"type": "image_url", "image_url": {"url": "u"}}]
    out = run("default.addPrefix", {"prefix": "P"}, context(chat(parts)))
    assert out.request is not None
    assert out.request["messages"][-1]["content"] == [{"type": "text", "text": "P"}, *parts]


def test_add_prefix_on_completions_and_messages() -> None:
    out = run("default.addPrefix", {"prefix": "Q: "}, context({"model": "m", "prompt": "why"}, kind=COMPLETE))
    assert out.request is not None and out.request["prompt"] == "Q: why"
    messages = {"model": "m", "system": "be kind", "messages": [{"role": "user", "content": "x"}]}
    out = run(
        "default.addPrefix", {"prefix": "S: ", "applyToRole": "system"}, context(messages, kind=MESSAGES)
    )
    assert out.request is not None and out.request["system"] == "S: be kind"


def test_add_prefix_does_nothing_after_the_request_or_without_a_prefix() -> None:
    out = run("default.addPrefix", {"prefix": "P"}, context(answer=chat_answer("a")), AFTER)
    assert out.verdict is True and out.request is None and out.data is None
    out = run("default.addPrefix", {}, context(), BEFORE)
    assert out.verdict is True and out.error is not None
