"""The compiled Anthropic mapping against payloads written from Anthropic's public API reference."""

from __future__ import annotations

import base64
import json
import re
from itertools import pairwise
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import (
    AnthropicStream,
    anthropic_models_to_openai,
    anthropic_to_openai_chat,
    anthropic_to_openai_completion,
    openai_chat_to_anthropic,
    openai_completion_to_anthropic,
)
from fastgate.errors import GatewayError
from fastgate.providers.registry import get_provider
from fastgate.schema.anthropic import MessageParam, MessagesRequest, Metadata, TextBlock
from fastgate.schema.openai import RawContentChatRequest
from tests.support.sse import openai_chunks

DATA = Path(__file__).parent.parent / "data" / "anthropic"


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def to_anthropic(request: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return json.loads(openai_chat_to_anthropic(msgspec.json.encode(request), **kwargs))


def chat(**fields: Any) -> dict[str, Any]:
    return {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], **fields}


def run_stream(sse: bytes, split: int = 0, **kwargs: Any) -> list[Any]:
    stream = AnthropicStream("anthropic", **kwargs)
    out = b""
    step = split or len(sse)
    for i in range(0, len(sse), step):
        out += stream.feed(sse[i : i + step])
    out += stream.finish()
    assert stream.done
    return openai_chunks(out)


# ---- request ---------------------------------------------------------------------------------


def test_request_fixture_maps_field_by_field() -> None:
    got = json.loads(openai_chat_to_anthropic(load("chat_request.json")))
    assert got == json.loads(load("messages_request.json"))


def test_parameters_anthropic_cannot_take_are_never_sent() -> None:
    got = to_anthropic(
        chat(
            n=2,
            seed=1,
            presence_penalty=1,
            frequency_penalty=1,
            logprobs=True,
            top_logprobs=3,
            reasoning_effort="high",
            metadata={"k": "v"},
            response_format={"type": "json_object"},
            stream_options={"include_usage": True},
            brand_new_param=1,
        )
    )
    assert set(got) == {"model", "max_tokens", "messages"}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 4096),
        ({"max_tokens": 50}, 50),
        ({"max_completion_tokens": 70}, 70),
        ({"max_tokens": 50, "max_completion_tokens": 70}, 70),
    ],
)
def test_max_tokens_default_and_aliases(fields: dict[str, Any], expected: int) -> None:
    assert to_anthropic(chat(**fields))["max_tokens"] == expected


@pytest.mark.parametrize(("given", "sent"), [(2.0, 1.0), (0.4, 0.4), (-1.0, 0.0), (1, 1)])
def test_temperature_clamped_to_anthropic_range(given: float, sent: float) -> None:
    assert to_anthropic(chat(temperature=given))["temperature"] == sent


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    ("fields", "choice"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": {"type": "function", "function": {"name": "f"}}}, {"type": "tool", "name": "f"}),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
        ),
        ({"tool_choice": "none", "parallel_tool_calls": False}, {"type": "none"}),
        ({"parallel_tool_calls": True}, None),
        ({}, None),
    ],
)
def test_tool_choice(fields: dict[str, Any], choice: dict[str, Any] | None) -> None:
    got = to_anthropic(chat(tools=TOOLS, **fields))
    assert got["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]
    assert got.get("tool_choice") == choice


def test_tool_choice_without_tools_is_not_sent() -> None:
    # Anthropic refuses tool_choice without tools; OpenAI's built-in tool types have no equivalent.
    got = to_anthropic(chat(tool_choice="required", tools=[{"type": "web_search"}]))
    assert "tools" not in got and "tool_choice" not in got


def test_json_schema_response_format_becomes_output_config() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    got = to_anthropic(
        chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    )
    assert got["output_config"] == {"format": {"type": "json_schema", "schema": schema}}


def test_vertex_flavour_puts_version_in_body_and_drops_model() -> None:
    got = to_anthropic(chat(), body_version="vertex-2023-10-16", send_model=False)
    assert got["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in got


def test_override_params_win_and_unknown_ones_are_ignored() -> None:
    body = msgspec.json.encode(chat(temperature=0.2))
    got = json.loads(openai_chat_to_anthropic(body, {"temperature": 0.9, "max_tokens": 9, "unknown": 1}))
    assert got["temperature"] == 0.9 and got["max_tokens"] == 9 and "unknown" not in got


def test_consecutive_same_role_turns_merge_and_empty_text_is_dropped() -> None:
    got = to_anthropic(
        chat(
            messages=[
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": ""},
                {"role": "assistant", "content": "c"},
            ]
        )
    )
    assert got["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
    ]


def test_file_parts_plain_text_and_file_id() -> None:
    text = base64.b64encode(b"hello doc").decode()
    got = to_anthropic(
        chat(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "file", "file": {"file_data": f"data:text/plain;base64,{text}"}},
                        {"type": "file", "file": {"file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}},
                        {"type": "file", "file": {"file_data": "https://example.com/a.pdf"}},
                    ],
                }
            ]
        )
    )
    assert got["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "text", "data": "hello doc", "media_type": "text/plain"}},
        {"type": "document", "source": {"type": "file", "file_id": "file_011CNha8iCJcU1wXNR6q4V8w"}},
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
    ]


@pytest.mark.parametrize(
    "message",
    [
        {
            "role": "user",
            "content": [{"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}],
        },
        {"role": "function", "name": "f", "content": "x"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}],
        },
    ],
)
def test_unmappable_input_is_a_400(message: dict[str, Any]) -> None:
    with pytest.raises(GatewayError) as info:
        to_anthropic(chat(messages=[message]))
    assert info.value.status == 400


def test_completion_prompt_is_one_user_turn() -> None:
    body = msgspec.json.encode({"model": "claude-x", "prompt": "Say hi", "max_tokens": 5, "stop": ["\n"]})
    got = json.loads(openai_completion_to_anthropic(body))
    assert got == {
        "model": "claude-x",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "Say hi"}],
        "stop_sequences": ["\n"],
    }


# ---- response --------------------------------------------------------------------------------


def test_text_message_with_cache_usage() -> None:
    got = json.loads(anthropic_to_openai_chat(load("message_text.json"), "anthropic"))
    assert got["id"] == "msg_013Zva2CMHLNnXjNJJKqJ2EF"
    assert got["object"] == "chat.completion" and got["provider"] == "anthropic"
    assert got["model"] == "claude-sonnet-4-20250514"
    [choice] = got["choices"]
    assert choice["message"] == {"role": "assistant", "content": "Hi! My name is Claude.", "refusal": None}
    assert choice["finish_reason"] == "stop"
    usage = got["usage"]
    # OpenAI's prompt_tokens includes cached tokens; Anthropic's input_tokens does not.
    assert usage["prompt_tokens"] == 2095 + 2051 + 1800
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1800}
    assert usage["completion_tokens"] == 503
    assert usage["total_tokens"] == 2095 + 2051 + 1800 + 503
    assert usage["cache_creation_input_tokens"] == 2051 and usage["cache_read_input_tokens"] == 1800


def test_tool_use_message_becomes_tool_calls() -> None:
    got = json.loads(anthropic_to_openai_chat(load("message_tool_use.json"), "anthropic"))
    message = got["choices"][0]["message"]
    assert message["content"] == "I'll check the weather in both cities."
    calls = message["tool_calls"]
    assert [(c["id"], c["type"], c["function"]["name"]) for c in calls] == [
        ("toolu_01A09q90qw90lq917835lq9", "function", "get_weather"),
        ("toolu_01B19q90qw90lq917835lq0", "function", "get_weather"),
    ]
    assert json.loads(calls[0]["function"]["arguments"]) == {
        "location": "San Francisco, CA",
        "unit": "celsius",
    }
    assert got["choices"][0]["finish_reason"] == "tool_calls"
    assert "cache_read_input_tokens" not in got["usage"]


def test_thinking_blocks_only_in_non_strict_mode() -> None:
    strict = json.loads(anthropic_to_openai_chat(load("message_thinking.json"), "anthropic"))
    assert "content_blocks" not in strict["choices"][0]["message"]
    assert strict["choices"][0]["message"]["content"] == "Based on my analysis, the answer is 42."
    loose = json.loads(anthropic_to_openai_chat(load("message_thinking.json"), "anthropic", False))
    blocks = loose["choices"][0]["message"]["content_blocks"]
    assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking", "text"]
    assert blocks[0]["signature"].startswith("WaUjzkyp")
    assert loose["choices"][0]["finish_reason"] == "end_turn"


def test_refusal_is_content_filter() -> None:
    got = json.loads(anthropic_to_openai_chat(load("message_refusal.json"), "anthropic"))
    assert got["choices"][0]["finish_reason"] == "content_filter"
    assert got["choices"][0]["message"]["content"] is None


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("tool_use", "tool_calls"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("refusal", "content_filter"),
        ("reason_from_the_future", "stop"),
        (None, "stop"),
    ],
)
def test_finish_reasons(stop_reason: str | None, finish: str) -> None:
    message = json.loads(load("message_text.json"))
    message["stop_reason"] = stop_reason
    got = json.loads(anthropic_to_openai_chat(msgspec.json.encode(message), "anthropic"))
    assert got["choices"][0]["finish_reason"] == finish


def test_completion_response_is_text_completion() -> None:
    got = json.loads(anthropic_to_openai_completion(load("message_text.json"), "anthropic"))
    assert got["object"] == "text_completion"
    assert got["choices"] == [
        {"index": 0, "text": "Hi! My name is Claude.", "finish_reason": "stop", "logprobs": None}
    ]


def test_models_list() -> None:
    got = json.loads(anthropic_models_to_openai(load("models.json"), "anthropic"))
    assert got["object"] == "list"
    assert [(m["id"], m["created"], m["owned_by"]) for m in got["data"]] == [
        ("claude-sonnet-4-20250514", 1747872000, "anthropic"),
        ("claude-3-5-haiku-20241022", 1729555200, "anthropic"),
    ]


def test_unrecognised_2xx_body_is_a_502() -> None:
    with pytest.raises(GatewayError) as info:
        anthropic_to_openai_chat(b'{"content": "nope"}', "anthropic")
    assert info.value.status == 502
    assert "Invalid response received from anthropic" in info.value.message


def test_error_body_keeps_anthropic_type_and_adds_provider() -> None:
    got = json.loads(get_provider("anthropic").error(529, load("error_overloaded.json")))
    assert got == {
        "error": {
            "message": "anthropic error: Overloaded",
            "type": "overloaded_error",
            "param": None,
            "code": None,
        },
        "provider": "anthropic",
    }


# ---- stream ----------------------------------------------------------------------------------


@pytest.mark.parametrize("split", [0, 1, 7, 64])
def test_text_stream_event_by_event(split: int) -> None:
    chunks = run_stream(load("stream_text.sse"), split)
    assert chunks[-1] == "[DONE]"
    body = chunks[:-1]
    assert {c["id"] for c in body} == {"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}
    assert {c["object"] for c in body} == {"chat.completion.chunk"}
    assert [c["choices"][0]["delta"] for c in body] == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": "!"},
        {},
    ]
    assert body[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in c for c in body)


def test_crlf_stream_maps_the_same() -> None:
    sse = load("stream_text.sse")
    assert run_stream(sse.replace(b"\n", b"\r\n"), 5) == run_stream(sse)


def test_include_usage_adds_one_final_usage_chunk() -> None:
    chunks = run_stream(load("stream_text.sse"), include_usage=True)
    usage_chunks = [c for c in chunks[:-1] if c.get("usage")]
    assert usage_chunks == [chunks[-2]]
    assert chunks[-2]["choices"] == []
    assert chunks[-2]["usage"] == {
        "prompt_tokens": 35,
        "completion_tokens": 15,
        "total_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 10},
        "cache_read_input_tokens": 10,
    }


def test_tool_use_stream_sends_indexed_deltas_as_they_arrive() -> None:
    chunks = run_stream(load("stream_tool_use.sse"))
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "Okay, let's check the weather."},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"location":'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ' "San Francisco, CA"}'}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "toolu_02T1x1fJ34qAmk2tNTrN7Up7",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 1, "function": {"arguments": '{"tz": "PST"}'}}]},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


def test_thinking_stream_strict_and_non_strict() -> None:
    strict = run_stream(load("stream_thinking.sse"))
    assert [c["choices"][0]["delta"] for c in strict[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "The answer is 42."},
        {},
    ]
    assert strict[-2]["choices"][0]["finish_reason"] == "length"
    loose = run_stream(load("stream_thinking.sse"), strict=False)
    blocks = [c["choices"][0]["delta"].get("content_blocks") for c in loose[:-1]]
    assert blocks == [
        None,
        [{"index": 0, "delta": {"thinking": "Let me solve this step by step."}}],
        [{"index": 0, "delta": {"signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."}}],
        [{"index": 1, "delta": {"text": "The answer is 42."}}],
        None,
    ]
    assert loose[-2]["choices"][0]["finish_reason"] == "max_tokens"


def test_error_event_ends_the_stream_with_an_error_chunk() -> None:
    stream = AnthropicStream("anthropic")
    out = stream.feed(load("stream_error.sse"))
    assert stream.done
    assert stream.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n\n') == b""
    assert stream.finish() == b""
    chunks = openai_chunks(out)
    assert chunks[1]["choices"][0]["delta"] == {"content": "Partial"}
    assert chunks[-2] == {
        "error": {
            "message": "anthropic error: Overloaded",
            "type": "overloaded_error",
            "param": None,
            "code": None,
        },
        "provider": "anthropic",
    }
    assert chunks[-1] == "[DONE]"


def test_stream_cut_before_message_stop_ends_with_error() -> None:
    sse = load("stream_text.sse")
    cut = sse[: sse.index(b"event: message_delta")]
    chunks = run_stream(cut)
    assert "stream ended before message_stop" in chunks[-2]["error"]["message"]
    assert chunks[-1] == "[DONE]"


def test_last_event_without_blank_line_is_still_mapped() -> None:
    chunks = run_stream(load("stream_text.sse").rstrip(b"\n"))
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1] == "[DONE]"


def test_completion_stream_is_text_completion_chunks() -> None:
    chunks = run_stream(load("stream_text.sse"), text_completion=True, include_usage=True)
    assert [c["choices"][0]["text"] for c in chunks[:-2]] == ["Hello", "!", ""]
    assert {c["object"] for c in chunks[:-1]} == {"text_completion"}
    assert chunks[-3]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-2]["usage"]["completion_tokens"] == 15
    assert chunks[-1] == "[DONE]"


def test_error_before_message_start_still_ends_cleanly() -> None:
    stream = AnthropicStream("anthropic")
    chunks = openai_chunks(
        stream.feed(b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"boom"}}\n\n')
    )
    assert chunks == [
        {
            "error": {"message": "anthropic error: boom", "type": "api_error", "param": None, "code": None},
            "provider": "anthropic",
        },
        "[DONE]",
    ]


def test_unknown_event_types_are_ignored() -> None:
    # Anthropic's versioning policy: new event types may appear; they must not break a stream.
    sse = load("stream_text.sse").replace(
        b"event: ping", b'event: brand_new_event\ndata: {"type": "brand_new_event"}\n\nevent: ping'
    )
    assert run_stream(sse) == run_stream(load("stream_text.sse"))


def test_assistant_content_blocks_go_back_verbatim_before_tool_use() -> None:
    thinking = {"type": "thinking", "thinking": "I should look it up.", "signature": "sig-1"}
    got = to_anthropic(
        chat(
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": "ignored when blocks are given",
                    "content_blocks": [thinking],
                    "tool_calls": [
                        {"id": "toolu_9", "type": "function", "function": {"name": "w", "arguments": ""}}
                    ],
                },
                {"role": "tool", "tool_call_id": "toolu_9", "content": "sunny"},
            ]
        )
    )
    assert got["messages"][1]["content"] == [
        thinking,
        {"type": "tool_use", "id": "toolu_9", "name": "w", "input": {}},
    ]


def test_tool_result_keeps_images_and_empty_turns_are_skipped() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    got = to_anthropic(
        chat(
            messages=[
                {"role": "user", "content": ""},
                {"role": "user", "content": "take a screenshot"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "t1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "t1", "content": [{"type": "text", "text": "done"}, image]},
            ]
        )
    )
    assert got["messages"][0] == {"role": "user", "content": "take a screenshot"}
    assert got["messages"][2]["content"] == [
        {
            "type": "tool_result",
            "tool_use_id": "t1",
            "content": [
                {"type": "text", "text": "done"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
                },
            ],
        }
    ]


# ---- text deltas copied as they came -----------------------------------------------------------
# A text delta written in Anthropic's field order with a string msgspec would write the same way
# is copied into the chunk without decoding; anything else is decoded. Both must give one answer.

_START = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","model":"claude-x","content":[],"stop_reason":null,'
    b'"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
)


def _delta_event(text_json: bytes, index: bytes = b"0") -> bytes:
    data = b'{"type":"content_block_delta","index":' + index + b',"delta":{"type":"text_delta","text":'
    return b"event: content_block_delta\ndata: " + data + text_json + b"}}\n\n"


def _mapped(event: bytes) -> bytes:
    """The chunk an event maps to, ``created`` zeroed: the two roads compared may run either
    side of a second's turn."""
    stream = AnthropicStream("anthropic")
    stream.feed(_START)
    return re.sub(rb'"created":\d+', b'"created":0', stream.feed(event))


@given(st.text(max_size=40))
@settings(max_examples=400, deadline=None)
def test_text_delta_copied_or_decoded_gives_the_same_chunk(text: str) -> None:
    try:
        canonical = msgspec.json.encode(text)
    except UnicodeEncodeError:  # lone surrogates: no UTF-8 form
        return
    out = _mapped(_delta_event(canonical))
    assert openai_chunks(out)[0]["choices"][0]["delta"] == {"content": text}
    # \u escapes and \/ are never copied, so these go through the decoder.
    assert _mapped(_delta_event(json.dumps(text).encode())) == out
    assert _mapped(_delta_event(canonical.replace(b"/", b"\\/"))) == out
    # Fields in another order are decoded too.
    other = (
        b'{"index":0,"type":"content_block_delta","delta":{"text":' + canonical + b',"type":"text_delta"}}'
    )
    assert _mapped(b"event: content_block_delta\ndata: " + other + b"\n\n") == out


@pytest.mark.parametrize(
    "text_json",
    [
        b'"bad \xff byte"',
        b'"overlong \xc0\xaf"',
        b'"surrogate \xed\xa0\x80"',
        b'"past U+10FFFF \xf4\x90\x80\x80"',
        b'"cut \xe2\x82"',
        b'"raw \x01 control"',
        b'"bad \\x escape"',
        b'"unterminated',
    ],
)
def test_text_delta_that_is_not_valid_json_is_never_copied(text_json: bytes) -> None:
    with pytest.raises(ValueError):
        _mapped(_delta_event(text_json))


def test_text_delta_with_a_big_index_or_trailing_fields_is_decoded() -> None:
    assert openai_chunks(_mapped(_delta_event(b'"x"', index=b"12345678901")))[0]["choices"][0]["delta"] == {
        "content": "x"
    }
    data = b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","extra":1}}'
    out = _mapped(b"event: content_block_delta\ndata: " + data + b"\n\n")
    assert openai_chunks(out)[0]["choices"][0]["delta"] == {"content": "x"}


def test_a_read_of_many_deltas_is_mapped_whole() -> None:
    """One read's chunks go out in one buffer, grown as they need (past its first 4 KB)."""
    texts = [f"{i}:" + "é" * (i % 50) for i in range(300)]
    read = b"".join(_delta_event(msgspec.json.encode(t)) for t in texts)
    out = openai_chunks(_mapped(read))
    assert [chunk["choices"][0]["delta"]["content"] for chunk in out] == texts


@given(
    st.lists(st.text(max_size=12), min_size=1, max_size=8),
    st.lists(st.integers(0, 4000), max_size=6),
    st.sampled_from([b"\n", b"\r\n"]),
)
@settings(max_examples=300, deadline=None)
def test_deltas_map_the_same_whatever_the_reads(texts: list[str], cuts: list[int], eol: bytes) -> None:
    """Whole events in a read are mapped from its bytes (``AnthropicStream.whole``), the rest
    line by line: cut anywhere, with LF or CRLF, a stream maps to the same chunks."""
    try:
        deltas = b"".join(_delta_event(msgspec.json.encode(t)) for t in texts)
    except UnicodeEncodeError:  # lone surrogates: no UTF-8 form
        return
    stream = (_START + deltas + b"event: message_stop\ndata: {}\n\n").replace(b"\n", eol)
    bounds = sorted({min(c, len(stream)) for c in cuts} | {0, len(stream)})
    mapper = AnthropicStream("anthropic")
    out = b"".join(mapper.feed(stream[a:b]) for a, b in pairwise(bounds)) + mapper.finish()
    chunks = openai_chunks(out)
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]] == texts
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-1] == "[DONE]"


def test_deltas_of_blocks_taking_turns_each_map_to_their_text() -> None:
    """A delta's bytes before its text are compared whole with the last delta's; a delta of
    another block (its index another number, even one that starts with the same digits) is
    read afresh."""
    events = [(b"1", "a"), (b"12", "b"), (b"1", "c"), (b"2", "d"), (b"12345678901", "e"), (b"1", "f")]
    read = b"".join(_delta_event(msgspec.json.encode(text), index) for index, text in events)
    out = openai_chunks(_mapped(read))
    assert [chunk["choices"][0]["delta"]["content"] for chunk in out] == [text for _, text in events]


def _whole_stream(sse: bytes, strict: bool) -> bytes:
    stream = AnthropicStream("anthropic", include_usage=True, strict=strict)
    return re.sub(rb'"created":\d+', b'"created":0', stream.feed(sse) + stream.finish())


@pytest.mark.parametrize(
    "name", ["stream_text.sse", "stream_thinking.sse", "stream_tool_use.sse", "stream_error.sse"]
)
@pytest.mark.parametrize("strict", [True, False])
def test_events_written_as_anthropic_writes_them_map_as_the_line_parse_reads_them(
    name: str, strict: bool
) -> None:
    """Events of two LF lines are handed on without the line parse (``_sse_two_lines``); the
    same events written so that only the parse reads them (no space after the colon, CR or
    CRLF line ends) map to the same chunks."""
    sse = load(name)
    assert b"event: " in sse and b"\r" not in sse
    mapped = _whole_stream(sse, strict)
    assert openai_chunks(mapped)
    assert _whole_stream(sse.replace(b"event: ", b"event:").replace(b"data: ", b"data:"), strict) == mapped
    assert _whole_stream(sse.replace(b"\n", b"\r"), strict) == mapped
    assert _whole_stream(sse.replace(b"\n", b"\r\n"), strict) == mapped


def test_a_cr_inside_a_data_line_ends_the_line_as_the_parse_reads_it() -> None:
    """A CR ends a line: the data is cut there (and the rest is a field of its own), so the
    event is not the two lines it looks like."""
    cut = (
        b'event: message_delta\ndata: {"type":"message_delta",\r"delta":{"stop_reason":"end_turn"},'
        b'"usage":{"output_tokens":2}}\n\n'
    )
    with pytest.raises(ValueError):
        _mapped(cut)


def _block_start(data: bytes) -> bytes:
    return _mapped(b"event: content_block_start\ndata: " + data + b"\n\n")


@pytest.mark.parametrize(
    ("data", "content"),
    [
        # As Anthropic writes it: recognised from the bytes, nothing to send.
        (b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}', None),
        (b'{"type":"content_block_start","index":17,"content_block":{"type":"text","text":""}}', None),
        # Anything else is decoded, and gives the same answer.
        (b'{"index":0,"type":"content_block_start","content_block":{"text":"","type":"text"}}', None),
        (
            b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"","citations":[]}}',
            None,
        ),
        (b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Hi"}}', "Hi"),
        (b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"\\u0041"}}', "A"),
    ],
)
def test_text_block_start_sends_only_text_it_carries(data: bytes, content: str | None) -> None:
    deltas = [chunk["choices"][0]["delta"] for chunk in openai_chunks(_block_start(data))]
    assert deltas == ([] if content is None else [{"content": content}])


def test_a_text_block_start_that_is_not_json_is_an_error() -> None:
    with pytest.raises(ValueError):
        _block_start(b'{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}')


# ---- string content copied as sent, and answers written from the template --------------------

_RAW_REQUEST = msgspec.json.Decoder(RawContentChatRequest)


@given(st.text(max_size=60), st.booleans())
@settings(max_examples=300, deadline=None)
def test_string_content_reaches_anthropic_unchanged(text: str, ascii_only: bool) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:  # lone surrogates: no UTF-8 form
        return
    request = chat(
        messages=[
            {"role": "system", "content": text},
            {"role": "user", "content": text},
            {"role": "assistant", "content": text},
            {"role": "tool", "tool_call_id": "t1", "content": text},
        ]
    )
    # As the OpenAI SDK or a hand-written client may send it: escapes or UTF-8 as it is.
    body = json.dumps(request, ensure_ascii=ascii_only).encode()
    got = json.loads(openai_chat_to_anthropic(body))
    if not text:
        assert "system" not in got and got["messages"] == [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]}
        ]
        return
    assert got["system"] == [{"type": "text", "text": text}]
    assert got["messages"] == [
        {"role": "user", "content": text},
        {"role": "assistant", "content": [{"type": "text", "text": text}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": text}]},
    ]
    # The string's JSON text is copied, not decoded and written again.
    quoted = json.dumps(text, ensure_ascii=ascii_only).encode()
    assert b'"content":' + quoted in openai_chat_to_anthropic(body)


def test_copied_and_decoded_text_merge_into_one_turn() -> None:
    got = to_anthropic(
        chat(
            messages=[
                {"role": "user", "content": "a"},
                {"role": "user", "content": "b"},
                {"role": "user", "content": [{"type": "text", "text": "c"}]},
                {"role": "user", "content": "d"},
            ]
        )
    )
    assert got["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": t} for t in "abcd"]},
    ]


def test_a_decoded_request_maps_the_same_and_is_left_unchanged() -> None:
    body = msgspec.json.encode(chat(temperature=0.2, max_tokens=5))
    request = _RAW_REQUEST.decode(body)
    overrides = {"temperature": 0.9, "max_tokens": 9}
    assert openai_chat_to_anthropic(body, overrides, request=request) == openai_chat_to_anthropic(
        body, overrides
    )
    assert request.temperature == 0.2 and request.max_tokens == 5  # the call's view, untouched


def test_messages_from_override_params_are_mapped() -> None:
    body = msgspec.json.encode(chat())
    got = json.loads(
        openai_chat_to_anthropic(body, {"messages": [{"role": "user", "content": "from the config"}]})
    )
    assert got["messages"] == [{"role": "user", "content": "from the config"}]


def test_bad_content_names_where_it_is() -> None:
    body = msgspec.json.encode(
        chat(messages=[{"role": "user", "content": "ok"}, {"role": "user", "content": [{"type": "bogus"}]}])
    )
    with pytest.raises(msgspec.ValidationError, match=r"\$\.messages\[1\]\.content\[0\]"):
        openai_chat_to_anthropic(body)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.messages\[0\]\.content"):
        openai_chat_to_anthropic(msgspec.json.encode(chat(messages=[{"role": "user", "content": 7}])))


@given(st.text(max_size=3000), st.text(max_size=30), st.text(max_size=30))
@settings(max_examples=200, deadline=None)
def test_any_answer_text_id_and_model_are_written_as_json(text: str, id: str, model: str) -> None:
    """Plain ASCII is copied between quotes, anything else encoded; long answers outgrow the
    stack buffer."""
    try:
        text.encode(), id.encode(), model.encode()
    except UnicodeEncodeError:
        return
    message = json.loads(load("message_text.json"))
    message.update(id=id, model=model, content=[{"type": "text", "text": text}])
    got = json.loads(anthropic_to_openai_chat(msgspec.json.encode(message), "anthropic"))
    assert (got["id"], got["model"]) == (id, model)
    assert got["choices"][0]["message"]["content"] == text
    assert got["usage"]["total_tokens"] == got["usage"]["prompt_tokens"] + got["usage"]["completion_tokens"]


def test_a_long_answer_is_written_whole() -> None:
    message = json.loads(load("message_text.json"))
    text = 'He said "hi"\n' * 2000  # ~30 KB, far past the 2 KB stack buffer
    message["content"] = [{"type": "text", "text": text}]
    got = json.loads(anthropic_to_openai_chat(msgspec.json.encode(message), "anthropic"))
    assert got["choices"][0]["message"]["content"] == text


# ---- a request of text turns written from the template ------------------------------------------

_finite = st.floats(allow_nan=False, allow_infinity=False)
_utf8_text = st.text().filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))


@st.composite
def text_turn_requests(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A request of text turns as a client may write it (escapes or UTF-8, any field order),
    and the Messages body the Struct path gives for it, built here from the schema."""
    ascii_only = draw(st.booleans())

    def text(value: Any) -> str:
        return json.dumps(value, ensure_ascii=ascii_only)

    fields: dict[str, str] = {}  # field -> its JSON text in the request
    system: list[TextBlock] = []
    turns: list[MessageParam] = []
    messages = []
    previous = None
    for _ in range(draw(st.integers(0, 5))):
        role = draw(st.sampled_from(["system", "developer", "user", "assistant"]))
        if role in ("user", "assistant") and role == previous:
            continue  # consecutive turns merge: the Struct path's business
        content = text(draw(_utf8_text.filter(bool)))
        raw = msgspec.Raw(content.encode())
        messages.append(f'{{"role":{text(role)},"content":{content}}}')
        if role in ("system", "developer"):
            system.append(TextBlock(raw))  # type: ignore[arg-type]
        else:
            turns.append(MessageParam(role, raw if role == "user" else [TextBlock(raw)]))  # type: ignore[arg-type]
            previous = role
    fields["messages"] = "[" + ",".join(messages) + "]"
    model = draw(st.none() | _utf8_text)
    if model is not None:
        fields["model"] = text(model)
    options = {
        "max_tokens": st.integers(1, 2**40),
        "max_completion_tokens": st.integers(1, 2**40),
        "temperature": _finite,
        "top_p": _finite,
        "top_k": st.integers(0, 2**40),
        "stop": _utf8_text | st.lists(_utf8_text, max_size=3),
        "user": _utf8_text,
        "stream": st.booleans(),
    }
    values = {name: draw(strategy) for name, strategy in options.items() if draw(st.booleans())}
    fields.update((name, text(value)) for name, value in values.items())
    order = draw(st.permutations(list(fields)))
    body = ("{" + ",".join(f'"{name}":{fields[name]}' for name in order) + "}").encode()

    stop = values.get("stop")
    temperature = values.get("temperature")
    expected = MessagesRequest(
        values.get("max_completion_tokens") or values.get("max_tokens") or 4096,
        turns,
        model=model,
        system=system or None,
        stop_sequences=([stop] if isinstance(stop, str) else stop or None) if stop is not None else None,
        temperature=None if temperature is None else min(max(temperature, 0.0), 1.0),
        top_p=values.get("top_p"),
        top_k=values.get("top_k"),
        metadata=Metadata(values["user"]) if values.get("user") else None,
        stream=values.get("stream", False),
    )
    return body, msgspec.json.encode(expected)


@given(text_turn_requests())
@settings(max_examples=400, deadline=None)
def test_text_turns_are_written_byte_for_byte_as_the_struct_path_does(case: tuple[bytes, bytes]) -> None:
    body, expected = case
    assert openai_chat_to_anthropic(body) == expected
    # override_params always take the Struct path: the same bytes from the other road.
    model = json.loads(body).get("model")
    assert openai_chat_to_anthropic(body, {"model": model}) == expected


def test_text_turns_in_vertex_flavour_name_the_version_not_the_model() -> None:
    body = msgspec.json.encode(chat(temperature=0.25, stream=True))
    assert openai_chat_to_anthropic(body, body_version="vertex-2023-10-16", send_model=False) == (
        b'{"max_tokens":4096,"messages":[{"role":"user","content":"hi"}],'
        b'"anthropic_version":"vertex-2023-10-16","temperature":0.25,"stream":true}'
    )


def test_zero_and_negative_zero_temperatures_keep_their_sign() -> None:
    # A remembered float is looked up by value, and -0.0 == 0.0: neither may answer for the other.
    for temperature in (0.0, -0.0, 0.0, 0.7, -0.0):
        body = msgspec.json.encode(chat(temperature=temperature))
        sent = json.loads(openai_chat_to_anthropic(body), parse_float=str)["temperature"]
        assert sent == repr(temperature)


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
        [
            {"role": "user", "content": "a"},
            {"role": "system", "content": "s"},
            {"role": "user", "content": "b"},
        ],
        [{"role": "user", "content": ""}],
        [{"role": "user", "content": [{"type": "text", "text": "a"}]}],
        [{"role": "system", "content": [{"type": "text", "text": "s"}]}, {"role": "user", "content": "a"}],
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            }
        ],
        [{"role": "assistant", "content": "a", "content_blocks": [{"type": "text", "text": "a"}]}],
    ],
)
def test_requests_the_template_does_not_write_map_as_before(messages: list[dict[str, Any]]) -> None:
    # Merged turns, parts, empty text, tool calls and content blocks: the Struct path's output.
    body = msgspec.json.encode(chat(messages=messages, temperature=0.5))
    assert openai_chat_to_anthropic(body) == openai_chat_to_anthropic(body, {"model": "claude-x"})
    assert json.loads(openai_chat_to_anthropic(body))["temperature"] == 0.5
