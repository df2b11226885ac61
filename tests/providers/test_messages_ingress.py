"""The Messages ingress mapping: Anthropic Messages requests to the chat pivot, chat answers and
errors back to Anthropic's shapes, and the count_tokens estimate, on payloads written from
Anthropic's and OpenAI's API references (a Claude Code request, an OpenAI tool-call answer)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import anthropic
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import (
    anthropic_to_openai_chat,
    chat_error_to_messages,
    chat_to_messages_answer,
    estimate_messages_tokens,
    messages_to_chat_request,
    openai_chat_to_anthropic,
)
from fastgate.errors import GatewayError
from fastgate.schema.openai import RawContentChatRequest
from tests.support.payloads import recorded, recorded_json

CLAUDE_CODE = recorded("messages", "claude_code_request.json")
TOOL_ANSWER = recorded("messages", "chat_answer_tool_calls.json")
_encode = msgspec.json.encode


def to_chat(request: dict[str, Any]) -> tuple[dict[str, Any], RawContentChatRequest]:
    body, req = messages_to_chat_request(_encode(request))
    return json.loads(body), req


def messages(*turns: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 100, "messages": list(turns), **fields}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def refused(request: dict[str, Any] | bytes) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        messages_to_chat_request(request if isinstance(request, bytes) else _encode(request))
    return info.value


# ---- request -----------------------------------------------------------------------------------


def test_claude_code_request_is_plain_openai_chat() -> None:
    body, _ = messages_to_chat_request(CLAUDE_CODE)
    chat = json.loads(body)
    assert chat["messages"] == [
        {
            "role": "system",
            "content": "You are Claude Code, Anthropic's official CLI for Claude.\n"
            "You are an interactive CLI tool that helps users with software engineering tasks.",
        },
        {
            "role": "user",
            "content": "<system-reminder>\nAs you answer the user's questions, you can use the following "
            "context.\n</system-reminder>\nList the files here",
        },
        {
            "role": "assistant",
            "content": "I'll list them.",
            "tool_calls": [
                {
                    "id": "toolu_01A09q90qw90lq917835lq9",
                    "type": "function",
                    "function": {
                        "name": "Bash",
                        "arguments": '{"command": "ls", "description": "List files"}',
                    },
                }
            ],
        },
        {"role": "tool", "content": "README.md\nsetup.py", "tool_call_id": "toolu_01A09q90qw90lq917835lq9"},
        {"role": "system", "content": "The working directory is /work."},
    ]
    # The server tool (web_search) is Anthropic's to run: only the client tools are functions.
    assert [t["function"]["name"] for t in chat["tools"]] == ["Bash", "Read"]
    assert all(t["type"] == "function" for t in chat["tools"])
    assert chat["tools"][1]["function"]["parameters"]["required"] == ["file_path"]
    assert chat["max_completion_tokens"] == 32000
    # Claude Code's user id (a JSON object of ids) is past OpenAI's 64 characters: its SHA-256.
    user_id = json.loads(CLAUDE_CODE)["metadata"]["user_id"]
    assert chat["user"] == hashlib.sha256(user_id.encode()).hexdigest()
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    # output_config.effort is said outright, so it wins over the thinking budget's effort.
    assert chat["reasoning_effort"] == "medium"
    # Nothing a strict OpenAI-compatible upstream would refuse.
    for name in ("thinking", "top_k", "context_management", "output_config", "metadata", "system"):
        assert name not in chat
    assert b"cache_control" not in body and b"content_blocks" not in body


def test_decoded_request_carries_what_fastgate_mappings_read() -> None:
    body, req = messages_to_chat_request(CLAUDE_CODE)
    assert type(req) is RawContentChatRequest
    assert req.thinking == {"type": "enabled", "budget_tokens": 31999}
    assert req.user == json.loads(CLAUDE_CODE)["metadata"]["user_id"]  # Anthropic takes it whole
    system, first, assistant, tool, _ = req.messages
    assert json.loads(bytes(system.content))[0]["cache_control"] == {"type": "ephemeral"}
    assert json.loads(bytes(first.content))[1] == {
        "type": "text",
        "text": "List the files here",
        "cache_control": {"type": "ephemeral"},
    }
    # Signed thinking goes back to Anthropic unchanged, with the turn's text (content_blocks).
    assert assistant.content_blocks == [
        {
            "type": "thinking",
            "thinking": "The user wants a listing; I will run ls.",
            "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds",
        },
        {"type": "text", "text": "I'll list them."},
    ]
    assert json.loads(bytes(tool.content)) == [
        {"type": "text", "text": "README.md\nsetup.py", "cache_control": {"type": "ephemeral"}}
    ]
    # Apart from those, the decoded request is the body's.
    plain = msgspec.structs.replace(
        req, messages=msgspec.json.decode(body, type=RawContentChatRequest).messages
    )
    assert (
        _encode(msgspec.structs.replace(plain, thinking=None, top_k=None, user=json.loads(body)["user"]))
        == body
    )


def test_a_request_without_extensions_is_its_body_decoded() -> None:
    request = messages(
        user("Hello"),
        {"role": "assistant", "content": [{"type": "text", "text": "Hi!"}]},
        user(
            [
                {"type": "text", "text": "Weather?"},
                {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}},
            ]
        ),
        system="Be brief.",
        stop_sequences=["END"],
        temperature=0.5,
        top_p=0.9,
    )
    body, req = messages_to_chat_request(_encode(request))
    assert msgspec.json.decode(body, type=RawContentChatRequest) == req
    chat = json.loads(body)
    assert chat["stop"] == ["END"] and chat["temperature"] == 0.5 and chat["top_p"] == 0.9
    assert "stream" not in chat and "stream_options" not in chat


def test_fastgates_anthropic_mapping_turns_the_pivot_back_into_the_request() -> None:
    # The Messages request the Anthropic provider's tests send, through the pivot and back.
    original = recorded_json("anthropic", "messages_request.json")
    body, req = messages_to_chat_request(_encode(original))
    again = json.loads(openai_chat_to_anthropic(body, request=req))
    # One difference: a tool result's text blocks come back as its text.
    original["messages"][2]["content"][1]["content"] = "22C"
    assert again == original


@pytest.mark.parametrize(
    ("thinking", "config", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ({"type": "enabled", "budget_tokens": 4000}, None, "low"),
        ({"type": "enabled", "budget_tokens": 4096}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 10000}, None, "medium"),
        ({"type": "enabled", "budget_tokens": 16384}, None, "high"),
        ({"type": "enabled", "budget_tokens": 31999}, None, "high"),
        ({"type": "adaptive"}, None, None),
        ({"type": "adaptive"}, {"effort": "max"}, "high"),
        ({"type": "adaptive"}, {"effort": "low"}, "low"),
        ({"type": "disabled"}, None, None),
        (None, {"effort": "xhigh"}, "high"),
    ],
)
def test_thinking_becomes_reasoning_effort(thinking: Any, config: Any, effort: str | None) -> None:
    fields: dict[str, Any] = {}
    if thinking is not None:
        fields["thinking"] = thinking
    if config is not None:
        fields["output_config"] = config
    chat, req = to_chat(messages(user("hi"), **fields))
    assert chat.get("reasoning_effort") == effort
    assert req.thinking == thinking


TOOLS = [{"name": "get_weather", "input_schema": {"type": "object", "properties": {}}}]


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "auto"}, "auto", None),
        ({"type": "any"}, "required", None),
        ({"type": "none"}, "none", None),
        (
            {"type": "tool", "name": "get_weather"},
            {"type": "function", "function": {"name": "get_weather"}},
            None,
        ),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
        ({"type": "any", "disable_parallel_tool_use": True}, "required", False),
    ],
)
def test_tool_choice(choice: dict[str, Any], expected: Any, parallel: bool | None) -> None:
    chat, _ = to_chat(messages(user("hi"), tools=TOOLS, tool_choice=choice))
    assert chat["tool_choice"] == expected
    assert chat.get("parallel_tool_calls") == parallel
    assert chat["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]


def test_tool_choice_without_tools_is_left_out() -> None:
    chat, _ = to_chat(messages(user("hi"), tool_choice={"type": "any"}))
    assert "tool_choice" not in chat and "tools" not in chat


PDF = base64.b64encode(b"%PDF-1.4 1 0 obj <</Type /Page>> 2 0 obj <</Type /Page>> <</Type /Pages>>").decode()


def test_images_and_documents_become_content_parts() -> None:
    blocks = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}, "title": "a.pdf"},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain words"}},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "inner"}]}},
        {"type": "document", "source": {"type": "file", "file_id": "file_011"}, "title": "b.pdf"},
        {"type": "text", "text": "Summarise."},
    ]
    chat, _ = to_chat(messages(user(blocks)))
    assert chat["messages"][0]["content"] == [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {
            "type": "file",
            "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "document.pdf"},
        },
        {"type": "file", "file": {"file_data": "https://example.com/a.pdf", "filename": "a.pdf"}},
        {"type": "text", "text": "plain words"},
        {"type": "text", "text": "inner"},
        {"type": "file", "file": {"file_id": "file_011", "filename": "b.pdf"}},
        {"type": "text", "text": "Summarise."},
    ]


def test_tool_results_become_tool_messages_before_the_users_text() -> None:
    shot = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    chat, _ = to_chat(
        messages(
            user("Screenshot and run it"),
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "screenshot", "input": {}},
                    {"type": "tool_use", "id": "toolu_2", "name": "run", "input": {"cmd": "false"}},
                ],
            },
            user(
                [
                    {"type": "text", "text": "Here you go."},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "ok"}, shot],
                    },
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "exit 1", "is_error": True},
                ]
            ),
        )
    )
    assert chat["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "screenshot", "arguments": "{}"}},
            {
                "id": "toolu_2",
                "type": "function",
                "function": {"name": "run", "arguments": '{"cmd":"false"}'},
            },
        ],
    }
    assert chat["messages"][2:] == [
        {"role": "tool", "content": "ok", "tool_call_id": "toolu_1"},
        # OpenAI has no error flag on a tool message: the model reads it.
        {"role": "tool", "content": "Error:\nexit 1", "tool_call_id": "toolu_2"},
        # A tool message holds text only: the screenshot goes to the user turn after them.
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": "Here you go."},
            ],
        },
    ]


def test_structured_output_and_metadata() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    chat, _ = to_chat(
        messages(
            user("hi"),
            output_config={"format": {"type": "json_schema", "schema": schema}},
            metadata={"user_id": "u-1"},
        )
    )
    assert chat["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output_format", "schema": schema},
    }
    assert chat["user"] == "u-1"


def test_server_tool_records_of_earlier_turns_are_left_out() -> None:
    chat, _ = to_chat(
        messages(
            user("Search it"),
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_1",
                        "name": "web_search",
                        "input": {"query": "x"},
                    },
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                    {"type": "text", "text": "Found it."},
                ],
            },
        )
    )
    assert chat["messages"][1] == {"role": "assistant", "content": "Found it."}


@pytest.mark.parametrize(
    ("request_body", "words"),
    [
        (b"{", "not valid JSON"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}', "max_tokens"),
        (_encode(messages()), "at least one message"),
        (_encode(messages({"role": "tool", "content": "x"})), "role"),
        (_encode(messages(user([{"type": "audio", "data": "x"}]))), "'audio'"),
        (_encode(messages(user([{"type": "image", "source": {"type": "file", "file_id": "f"}}]))), "image"),
        (_encode(messages(user("x"), tools=TOOLS, tool_choice={"type": "tool"})), "tool_choice.name"),
        (_encode(messages(user("x"), tools=TOOLS, tool_choice={"type": "sometimes"})), "tool_choice"),
        (_encode({"model": "m", "max_tokens": "many", "messages": []}), "max_tokens"),
    ],
)
def test_bad_requests_are_400s_with_anthropic_error_bodies(request_body: bytes, words: str) -> None:
    error = refused(request_body)
    assert error.status == 400 and words in error.message
    answer = json.loads(chat_error_to_messages(error.status, error.body()))
    assert answer == {"type": "error", "error": {"type": "invalid_request_error", "message": error.message}}


# ---- answer ------------------------------------------------------------------------------------


def test_tool_call_answer_is_a_message() -> None:
    message = json.loads(chat_to_messages_answer(TOOL_ANSWER))
    parsed = anthropic.types.Message.model_validate(message)
    assert parsed.id == "msg_chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG"
    assert parsed.model == "gpt-4o-2024-08-06" and parsed.role == "assistant" and parsed.type == "message"
    assert [b.type for b in parsed.content] == ["text", "tool_use", "tool_use"]
    assert parsed.content[0].text == "Checking both cities."  # type: ignore[union-attr]
    assert parsed.content[2].input == {"location": "Bogotá, Colombia"}  # type: ignore[union-attr]
    assert parsed.content[1].id == "call_DdmO9pD3xa9XTPNJ32zg2hcA"  # type: ignore[union-attr]
    assert parsed.stop_reason == "tool_use" and parsed.stop_sequence is None
    # prompt_tokens counts the cached tokens; Anthropic's input_tokens does not.
    assert parsed.usage.input_tokens == 2082 - 1920
    assert parsed.usage.cache_read_input_tokens == 1920
    assert parsed.usage.cache_creation_input_tokens == 0
    assert parsed.usage.output_tokens == 51


def answer(message: dict[str, Any], finish: str | None = "stop", **choice: Any) -> bytes:
    return _encode(
        {
            "id": "chatcmpl-1",
            "model": "gpt-x",
            "choices": [
                {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish, **choice}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        }
    )


@pytest.mark.parametrize(
    ("finish", "extra", "reason", "sequence"),
    [
        ("stop", {}, "end_turn", None),
        (None, {}, "end_turn", None),
        ("length", {}, "max_tokens", None),
        ("content_filter", {}, "refusal", None),
        ("tool_calls", {}, "tool_use", None),
        # fastgate's non-strict mode keeps Anthropic's own reasons.
        ("pause_turn", {}, "pause_turn", None),
        ("stop_sequence", {}, "stop_sequence", None),
        # vLLM names the stop string that matched.
        ("stop", {"stop_reason": "END"}, "stop_sequence", "END"),
        ("stop", {"stop_reason": 128009}, "end_turn", None),
        ("some_new_reason", {}, "end_turn", None),
    ],
)
def test_stop_reasons(finish: str | None, extra: dict[str, Any], reason: str, sequence: str | None) -> None:
    message = json.loads(chat_to_messages_answer(answer({"content": "Hi"}, finish, **extra)))
    assert message["stop_reason"] == reason and message["stop_sequence"] == sequence
    anthropic.types.Message.model_validate(message)


def test_reasoning_and_refusal() -> None:
    message = json.loads(chat_to_messages_answer(answer({"content": "9.9", "reasoning_content": "compare"})))
    assert message["content"] == [
        {"type": "thinking", "thinking": "compare", "signature": ""},
        {"type": "text", "text": "9.9"},
    ]
    message = json.loads(chat_to_messages_answer(answer({"content": None, "refusal": "I can't help."})))
    assert message["content"] == [{"type": "text", "text": "I can't help."}]
    assert message["stop_reason"] == "refusal"
    # A model that names no model: the requested one.
    assert json.loads(chat_to_messages_answer(b'{"choices": []}', "claude-x"))["model"] == "claude-x"


@pytest.mark.parametrize("name", ["message_thinking.json", "message_tool_use.json", "message_refusal.json"])
def test_anthropic_answers_come_back_through_the_pivot(name: str) -> None:
    # A Message, mapped by fastgate's Anthropic provider (non-strict: thinking kept), then back.
    original = recorded_json("anthropic", name)
    chat = anthropic_to_openai_chat(_encode(original), "anthropic", strict=False)
    again = json.loads(chat_to_messages_answer(chat))
    assert again["id"] == original["id"]
    assert again["content"] == original["content"]
    assert again["stop_reason"] == original["stop_reason"]
    usage = original["usage"]
    assert again["usage"] == {
        "input_tokens": usage["input_tokens"],
        "output_tokens": usage["output_tokens"],
        "cache_creation_input_tokens": usage.get("cache_creation_input_tokens") or 0,
        "cache_read_input_tokens": usage.get("cache_read_input_tokens") or 0,
    }


def test_an_unreadable_answer_is_a_502() -> None:
    with pytest.raises(GatewayError) as info:
        chat_to_messages_answer(b"<html>")
    assert info.value.status == 502


# ---- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (402, "billing_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (415, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_error_types_follow_the_status(status: int, kind: str) -> None:
    body = b'{"error": {"message": "openai error: nope", "type": "server_error"}, "provider": "openai"}'
    assert json.loads(chat_error_to_messages(status, body)) == {
        "type": "error",
        "error": {"type": kind, "message": "openai error: nope"},
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": "bare string"}', "bare string"),
        (b"<html>bad gateway</html>", "<html>bad gateway</html>"),
        (b"", "upstream returned HTTP 502"),
        (b'{"detail": "x"}', '{"detail": "x"}'),
    ],
)
def test_error_messages_from_any_body(body: bytes, message: str) -> None:
    error = anthropic.types.ErrorResponse.model_validate_json(
        chat_error_to_messages(502, body).replace(b'"type":"error"', b'"type":"error","request_id":null')
    )
    assert error.error.message == message and error.error.type == "api_error"


# ---- count_tokens ------------------------------------------------------------------------------


def count(request: dict[str, Any]) -> int:
    body = estimate_messages_tokens(_encode(request))
    return int(anthropic.types.MessageTokensCount.model_validate_json(body).input_tokens)


def test_count_tokens_is_a_quarter_of_the_characters() -> None:
    base = {"model": "m", "messages": [user("x" * 400)]}
    assert count(base) == 100
    assert count({**base, "system": "y" * 40}) == 110
    assert count({**base, "messages": [user("x" * 400), {"role": "assistant", "content": "z" * 4}]}) == 101
    tool = {"name": "t" * 4, "description": "d" * 4, "input_schema": {"type": "object"}}
    assert count({**base, "tools": [tool]}) == 100 + (8 + len(b'{"type":"object"}') + 3) // 4


def test_count_tokens_charges_images_and_pdf_pages() -> None:
    image = {"type": "image", "source": {"type": "url", "url": "https://x/a.png"}}
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}}
    assert count({"model": "m", "messages": [user([image])]}) == 1600
    assert count({"model": "m", "messages": [user([pdf])]}) == 2 * 3000
    result = {
        "type": "tool_result",
        "tool_use_id": "t",
        "content": [{"type": "text", "text": "r" * 8}, image],
    }
    assert count({"model": "m", "messages": [user([result])]}) == 2 + 1600


def test_count_tokens_of_the_claude_code_request() -> None:
    request = json.loads(CLAUDE_CODE)
    assert 100 < count(request) < len(CLAUDE_CODE) // 4
    with pytest.raises(GatewayError):
        estimate_messages_tokens(b'{"model": "m"}')


# ---- hostile input: a 400 or a 502, never a traceback ------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
BLOCK_TYPES = ["text", "image", "document", "tool_use", "tool_result", "thinking", "search_result", "x"]
BLOCK = st.fixed_dictionaries(
    {"type": st.sampled_from(BLOCK_TYPES)},
    optional={
        "text": JSON,
        "source": JSON,
        "content": JSON,
        "input": JSON,
        "id": JSON,
        "is_error": JSON,
        "cache_control": JSON,
    },
)
REQUEST = st.fixed_dictionaries(
    {
        "model": st.text(max_size=8),
        "max_tokens": st.integers(min_value=1, max_value=10),
        "messages": st.lists(
            st.fixed_dictionaries(
                {
                    "role": st.sampled_from(["user", "assistant", "system", "tool"]),
                    "content": st.text(max_size=8) | st.lists(BLOCK, max_size=4),
                }
            ),
            max_size=4,
        ),
    },
    optional={"system": JSON, "tools": JSON, "tool_choice": JSON, "thinking": JSON, "output_config": JSON},
)


@given(REQUEST)
@settings(max_examples=300, deadline=None)
def test_any_request_maps_or_is_a_400(request: dict[str, Any]) -> None:
    body = _encode(request)
    for fn in (messages_to_chat_request, estimate_messages_tokens):
        try:
            fn(body)
        except GatewayError as exc:
            assert exc.status == 400


@given(JSON)
@settings(max_examples=200, deadline=None)
def test_any_answer_maps_or_is_a_502(answer_body: Any) -> None:
    body = _encode(answer_body)
    try:
        anthropic.types.Message.model_validate_json(chat_to_messages_answer(body))
    except GatewayError as exc:
        assert exc.status == 502
    assert json.loads(chat_error_to_messages(500, body))["type"] == "error"


def test_a_body_nested_too_deeply_is_a_400() -> None:
    deep = b'{"type":"tool_result","tool_use_id":"t","content":[' * 5000 + b"]}" * 5000
    body = b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[' + deep + b"]}]}"
    assert refused(body).message == "Request body is nested too deeply"
