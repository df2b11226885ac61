"""The compiled Responses ingress mapping: Responses requests to the chat pivot, chat answers and
streams back to Responses, checked against OpenAI's API reference and the openai SDK's types."""

from __future__ import annotations

import json
from itertools import pairwise
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from fastgate._transforms import (
    AnthropicStream,
    ChunkWriter,
    ResponsesTurn,
    openai_chat_to_anthropic,
    responses_to_chat,
)
from fastgate.errors import GatewayError
from fastgate.schema.openai import RawContentChatRequest, Usage, chat_decoder
from fastgate.schema.responses import OutputTextDelta, request_decoder
from tests.support.payloads import recorded, recorded_json
from tests.support.sse import data_payloads, frames, named_events

STREAM_EVENT = TypeAdapter(ResponseStreamEvent)


def turn_for(**fields: Any) -> ResponsesTurn:
    return responses_to_chat(
        request_decoder.decode(msgspec.json.encode({"model": "m", "input": "hi", **fields}))
    )


def chat_of(**fields: Any) -> dict[str, Any]:
    return json.loads(turn_for(**fields).body)


def refusal(**fields: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        turn_for(**fields)
    assert caught.value.status == 400
    return caught.value


def chat_answer(message: dict[str, Any], finish: str = "stop", usage: dict[str, Any] | None = None) -> bytes:
    return msgspec.json.encode(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "provider-model-1",
            "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish}],
            "usage": usage or {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
        }
    )


def parsed(body: bytes) -> Response:
    """The Response as the openai SDK's type validates it (pydantic validation, not construct)."""
    return Response.model_validate_json(body)


# ---- request ---------------------------------------------------------------------------------


def test_request_fixture_maps_field_by_field() -> None:
    turn = responses_to_chat(request_decoder.decode(recorded("responses", "request.json")))
    assert json.loads(turn.body) == recorded_json("responses", "chat_request.json")


def test_the_struct_is_the_body_the_mappings_read() -> None:
    turn = responses_to_chat(request_decoder.decode(recorded("responses", "request.json")))
    assert type(turn.request) is RawContentChatRequest
    assert msgspec.json.encode(turn.request) == turn.body
    chat_decoder.decode(turn.body)  # a valid chat request by the gateway's own schema
    # A provider mapping reading the Struct writes what it writes from the body (JSON Schemas are
    # copied as they came, spaces included).
    from_struct = openai_chat_to_anthropic(turn.body, request=turn.request)
    assert json.loads(from_struct) == json.loads(openai_chat_to_anthropic(turn.body))


def test_string_input_is_one_user_turn_after_the_instructions() -> None:
    chat = chat_of(input="hello", instructions="be brief")
    assert chat["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert chat["model"] == "m"
    assert "stream" not in chat


def test_messages_keep_their_roles_and_parts() -> None:
    chat = chat_of(
        input=[
            {"role": "developer", "content": "rules"},
            {"role": "user", "content": [{"type": "input_text", "text": "only text"}]},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "look"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,iVBORw0KGgo=",
                        "detail": "low",
                    },
                    {"type": "input_file", "file_url": "https://example.com/a.pdf"},
                ],
            },
        ]
    )
    assert chat["messages"] == [
        {"role": "developer", "content": "rules"},
        {"role": "user", "content": "only text"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "look"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
                {"type": "file", "file": {"file_data": "https://example.com/a.pdf"}},
            ],
        },
    ]


def test_a_call_without_an_assistant_message_opens_one() -> None:
    chat = chat_of(
        input=[
            {"role": "user", "content": "go"},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
            {"type": "function_call", "call_id": "c2", "name": "g"},
            {
                "type": "function_call_output",
                "call_id": "c2",
                "output": [{"type": "input_text", "text": "ok"}],
            },
        ]
    )
    assert chat["messages"][1:] == [
        {
            "role": "assistant",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "g", "arguments": ""}}],
        },
        {"role": "tool", "tool_call_id": "c2", "content": "ok"},
    ]


def test_reasoning_goes_back_only_with_what_signed_it() -> None:
    chat = chat_of(
        input=[
            {"role": "user", "content": "q"},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "unsigned"}]},
            {"type": "message", "role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
            {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": "REDACTED-DATA"},
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
        ]
    )
    assert chat["messages"][1] == {"role": "assistant", "content": "a1"}
    assert chat["messages"][3]["content_blocks"] == [{"type": "redacted_thinking", "data": "REDACTED-DATA"}]
    assert chat["messages"][3]["tool_calls"][0]["id"] == "c"


def test_reasoning_not_followed_by_its_answer_is_not_sent() -> None:
    chat = chat_of(
        input=[
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "SIGNED"},
            {"role": "user", "content": "a new question"},
            {"type": "message", "role": "assistant", "content": "a"},
        ]
    )
    assert "content_blocks" not in chat["messages"][1]


def test_tools_flat_to_nested_with_their_type() -> None:
    chat = chat_of(
        tools=[
            {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}},
            {"type": "function", "name": "g"},
        ],
        tool_choice={"type": "function", "name": "g"},
        parallel_tool_calls=False,
    )
    assert chat["tools"] == [
        {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
        {"type": "function", "function": {"name": "g"}},
    ]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "g"}}
    assert chat["parallel_tool_calls"] is False


def test_allowed_tools_narrow_the_tools_sent() -> None:
    chat = chat_of(
        tools=[{"type": "function", "name": "f"}, {"type": "function", "name": "g"}],
        tool_choice={
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "g"}],
        },
    )
    assert [t["function"]["name"] for t in chat["tools"]] == ["g"]
    assert chat["tool_choice"] == "required"


def test_tool_settings_are_left_out_without_tools() -> None:
    chat = chat_of(parallel_tool_calls=True, tool_choice="auto")
    assert "parallel_tool_calls" not in chat and "tool_choice" not in chat and "tools" not in chat


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"type": "json_object"}),
        (
            {"type": "json_schema", "schema": {"type": "object"}},
            {"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}}},
        ),
        (
            {"type": "json_schema", "name": "x", "schema": {}, "strict": True, "description": "d"},
            {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {}, "strict": True, "description": "d"},
            },
        ),
    ],
)
def test_text_format_is_the_response_format(fmt: dict[str, Any], expected: dict[str, Any] | None) -> None:
    assert chat_of(text={"format": fmt}).get("response_format") == expected


def test_sampling_limits_and_the_rest() -> None:
    chat = chat_of(
        reasoning={"effort": "high"},
        max_output_tokens=64,
        temperature=0.5,
        top_p=0.5,
        metadata={"k": "v"},
        user="u",
        stream=True,
        store=False,
        truncation="auto",
        include=["x"],
    )
    assert chat == {
        "messages": [{"role": "user", "content": "hi"}],
        "model": "m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.5,
        "user": "u",
        "metadata": {"k": "v"},
        "reasoning_effort": "high",
    }


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"type": "function"}]}, "tools[0].name"),
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0]"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input[0].role"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file-1"}]}]},
            "input[0].content[0]",
        ),
        ({"input": [{"type": "function_call", "name": "f"}]}, "input[0]"),
        ({"input": []}, "input"),
        ({"input": [], "instructions": "rules alone"}, "input"),
        ({"tools": [{"type": "function", "name": "f"}], "tool_choice": "sometimes"}, "tool_choice"),
        (
            {"tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "file_search"}},
            "tool_choice",
        ),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ],
)
def test_what_chat_cannot_carry_is_a_400_naming_the_parameter(fields: dict[str, Any], param: str) -> None:
    assert refusal(**fields).param == param


def test_a_hosted_tool_is_refused_by_name() -> None:
    assert "web_search" in refusal(tools=[{"type": "web_search"}]).message


def test_history_goes_between_the_instructions_and_the_input() -> None:
    first = turn_for(input="first question", instructions="old rules")
    first.answer(chat_answer({"content": "first answer"}))
    record = first.record()
    assert record is not None
    req = request_decoder.decode(
        msgspec.json.encode(
            {"model": "m", "input": "second", "instructions": "new rules", "previous_response_id": first.id}
        )
    )
    chat = json.loads(responses_to_chat(req, bytes(record.conversation)).body)
    # The instructions of the earlier turn are not carried over (OpenAI's rule).
    assert chat["messages"] == [
        {"role": "system", "content": "new rules"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second"},
    ]


# ---- answer ----------------------------------------------------------------------------------


def test_text_answer_is_a_response_the_sdk_reads() -> None:
    turn = turn_for(
        instructions="be brief",
        temperature=0.3,
        metadata={"a": "b"},
        max_output_tokens=50,
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        text={"format": {"type": "json_object"}},
        reasoning={"effort": "low"},
    )
    usage = {
        "prompt_tokens": 20,
        "completion_tokens": 7,
        "total_tokens": 27,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 3},
        "cache_creation_input_tokens": 4,
    }
    body = turn.answer(chat_answer({"content": "Hello there."}, usage=usage))
    response = parsed(body)
    assert response.id == turn.id and response.id.startswith("resp_")
    assert response.object == "response" and response.status == "completed"
    assert response.created_at == turn.created_at and response.completed_at is not None
    assert response.model == "provider-model-1"
    assert response.output_text == "Hello there."
    message = response.output[0]
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_")
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert response.usage is not None
    assert response.usage.input_tokens == 20 and response.usage.output_tokens == 7
    assert response.usage.total_tokens == 27
    assert response.usage.input_tokens_details.cached_tokens == 8
    assert response.usage.input_tokens_details.cache_write_tokens == 4
    assert response.usage.output_tokens_details.reasoning_tokens == 3
    # The request's settings, echoed as OpenAI echoes them.
    assert response.instructions == "be brief" and response.temperature == 0.3 and response.top_p == 1.0
    assert response.max_output_tokens == 50 and response.metadata == {"a": "b"}
    assert response.tools[0].type == "function" and response.tools[0].name == "f"
    assert response.tool_choice == "auto" and response.parallel_tool_calls is True
    assert response.text is not None and response.text.format is not None
    assert response.text.format.type == "json_object"
    assert response.reasoning is not None and response.reasoning.effort == "low"
    assert response.store is True and response.previous_response_id is None
    assert response.error is None and response.incomplete_details is None
    assert turn.response == body
    # Written for clients that read the JSON themselves too (the SDKs compute their own).
    assert json.loads(body)["output_text"] == "Hello there."


def test_tool_calls_are_function_call_items() -> None:
    message = {
        "content": None,
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
            {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
        ],
    }
    response = parsed(turn_for().answer(chat_answer(message, "tool_calls")))
    assert [item.type for item in response.output] == ["function_call", "function_call"]
    first = response.output[0]
    assert first.type == "function_call"
    assert (first.call_id, first.name, first.arguments, first.status) == (
        "call_a",
        "f",
        '{"x":1}',
        "completed",
    )
    assert first.id is not None and first.id.startswith("fc_")
    assert response.status == "completed" and response.output_text == ""


@pytest.mark.parametrize(
    ("finish", "reason"),
    [
        ("length", "max_output_tokens"),
        ("content_filter", "content_filter"),
        # Non-strict answers keep the provider's own reason.
        ("max_tokens", "max_output_tokens"),
        ("MAX_TOKENS", "max_output_tokens"),
        ("SAFETY", "content_filter"),
        ("refusal", "content_filter"),
    ],
)
def test_a_cut_answer_is_incomplete(finish: str, reason: str) -> None:
    response = parsed(turn_for().answer(chat_answer({"content": "partial"}, finish)))
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == reason
    assert response.completed_at is None


@pytest.mark.parametrize("finish", ["stop", "end_turn", "STOP", "tool_calls", "tool_use"])
def test_other_finishes_are_complete(finish: str) -> None:
    assert parsed(turn_for().answer(chat_answer({"content": "x"}, finish))).status == "completed"


def test_signed_thinking_is_a_reasoning_item() -> None:
    blocks = [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Answer."},
    ]
    response = parsed(turn_for().answer(chat_answer({"content": "Answer.", "content_blocks": blocks})))
    kinds = [item.type for item in response.output]
    assert kinds == ["reasoning", "reasoning", "message"]
    thinking, redacted = response.output[0], response.output[1]
    assert thinking.type == "reasoning" and redacted.type == "reasoning"
    assert [s.text for s in thinking.summary] == ["Let me think."]
    assert thinking.encrypted_content == "sig-1"
    assert redacted.summary == [] and redacted.encrypted_content == "opaque"
    assert response.output_text == "Answer."


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_text_fields_are_a_reasoning_item(field: str) -> None:
    response = parsed(turn_for().answer(chat_answer({"content": "42", field: "Adding up."})))
    assert response.output[0].type == "reasoning"
    assert [s.text for s in response.output[0].summary] == ["Adding up."]
    assert response.output[0].encrypted_content is None


def test_a_refusal_is_a_refusal_part() -> None:
    response = parsed(turn_for().answer(chat_answer({"content": None, "refusal": "I can't."})))
    message = response.output[0]
    assert message.type == "message"
    assert [(p.type, getattr(p, "refusal", None)) for p in message.content] == [("refusal", "I can't.")]


def test_an_empty_answer_is_an_empty_message() -> None:
    response = parsed(turn_for().answer(chat_answer({"content": None})))
    assert [item.type for item in response.output] == ["message"]
    assert response.output_text == ""


@pytest.mark.parametrize("body", [b"not json", b'{"choices": []}', b'{"choices": [{"delta": {}}]}'])
def test_an_answer_that_is_not_a_chat_completion_is_a_502(body: bytes) -> None:
    with pytest.raises(GatewayError) as caught:
        turn_for().answer(body)
    assert caught.value.status == 502


def test_the_record_keeps_the_response_the_input_and_the_conversation() -> None:
    turn = turn_for(
        input=[
            {"role": "user", "content": "q"},
            {"type": "message", "role": "assistant", "content": "a"},
            {"role": "user", "content": [{"type": "input_text", "text": "q2"}]},
        ]
    )
    assert turn.record() is None
    body = turn.answer(chat_answer({"content": "a2"}))
    record = turn.record()
    assert record is not None and bytes(record.response) == body
    items = json.loads(bytes(record.input_items))
    assert [item["id"] for item in items] == [f"in_{turn.id[5:]}{n:02x}" for n in range(3)]
    assert items[0] == {
        "type": "message",
        "id": items[0]["id"],
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": "q"}],
    }
    assert list(items[0]) == ["type", "id", "role", "content", "status"]
    assert items[1]["content"] == [{"type": "output_text", "text": "a", "annotations": [], "logprobs": []}]
    conversation = json.loads(bytes(record.conversation))
    assert conversation == [*items, *json.loads(turn.output or b"")]


# ---- stream ----------------------------------------------------------------------------------


def check_events(raw: bytes) -> list[dict[str, Any]]:
    """Every event typed by the SDK, named by its type, numbered 0, 1, 2, ... in order."""
    events = named_events(raw)
    for name, data in events:
        assert name == data["type"]
        STREAM_EVENT.validate_python(data)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    return [data for _, data in events]


def run(turn: ResponsesTurn, sse: bytes, split: int = 0) -> list[dict[str, Any]]:
    mapper = turn.stream_mapper()
    step = split or len(sse) or 1
    out = b"".join(mapper.feed(sse[i : i + step]) for i in range(0, len(sse), step)) + mapper.finish()
    assert mapper.done
    return check_events(out)


def usage(prompt: int = 9, completion: int = 4) -> Usage:
    return Usage(prompt, completion, prompt + completion)


def text_stream(*pieces: str, finish: str = "stop", provider: str | None = None) -> bytes:
    writer = ChunkWriter("chatcmpl-9", "provider-model-1", provider, include_usage=True)
    return writer.role() + b"".join(writer.content(p) for p in pieces) + writer.finish(finish, usage())


def test_text_stream_is_the_full_event_sequence() -> None:
    turn = turn_for(stream=True)
    events = run(turn, text_stream("Hel", "lo!"))
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    created, completed = events[0]["response"], events[-1]["response"]
    assert created["id"] == completed["id"] == turn.id
    assert created["status"] == "in_progress" and created["output"] == [] and created["usage"] is None
    assert [e["delta"] for e in events[4:6]] == ["Hel", "lo!"]
    assert events[6]["text"] == "Hello!" and events[7]["part"]["text"] == "Hello!"
    assert events[8]["item"]["status"] == "completed"
    final = Response.model_validate(completed)
    assert final.status == "completed" and final.output_text == "Hello!" and final.model == "provider-model-1"
    assert final.usage is not None and final.usage.total_tokens == 13
    assert turn.response is not None and json.loads(turn.response) == completed
    assert completed["output_text"] == "Hello!" and "output_text" not in created


def test_tool_calls_stream_one_item_each_after_the_text() -> None:
    writer = ChunkWriter("chatcmpl-9", "m", include_usage=True)
    sse = (
        writer.role()
        + writer.content("Checking.")
        + writer.tool_call_start(0, "call_a", "f")
        + writer.tool_call_arguments(0, '{"city":')
        + writer.tool_call_arguments(0, '"Paris"}')
        + writer.tool_call_start(1, "call_b", "g", "{}")
        + writer.finish("tool_calls", usage())
    )
    events = run(turn_for(stream=True), sse)
    kinds = [e["type"] for e in events]
    assert kinds[2:] == [
        "response.output_item.added",  # the message
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",  # call_a
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",  # call_b
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    added = events[8]["item"]
    assert (added["call_id"], added["name"], added["arguments"], added["status"]) == (
        "call_a",
        "f",
        "",
        "in_progress",
    )
    assert events[11]["arguments"] == '{"city":"Paris"}'
    final = Response.model_validate(events[-1]["response"])
    assert final.output[0].type == "message"
    assert [i.call_id for i in final.output if i.type == "function_call"] == ["call_a", "call_b"]
    assert [e["output_index"] for e in events if e["type"] == "response.output_item.added"] == [0, 1, 2]


def test_anthropic_thinking_streams_as_reasoning_summary_events() -> None:
    # The chain the ingress runs: Anthropic's stream, mapped by fastgate in non-strict mode (its
    # thinking kept as content_blocks), then mapped to Responses.
    chat = AnthropicStream("anthropic", include_usage=True, strict=False)
    sse = chat.feed(recorded("anthropic", "stream_thinking.sse")) + chat.finish()
    events = run(turn_for(stream=True), sse)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.incomplete",  # the recorded answer stopped at max_tokens
    ]
    assert events[2]["item"] == {
        "type": "reasoning",
        "id": events[2]["item"]["id"],
        "summary": [],
        "encrypted_content": None,
    }
    final = Response.model_validate(events[-1]["response"])
    reasoning = final.output[0]
    assert reasoning.type == "reasoning"
    assert [s.text for s in reasoning.summary] == ["Let me solve this step by step."]
    assert reasoning.encrypted_content  # the signature, for the next turn
    assert final.output_text == "The answer is 42."
    assert final.incomplete_details is not None and final.incomplete_details.reason == "max_output_tokens"


def test_reasoning_content_deltas_stream_as_reasoning() -> None:
    frames = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Hmm"}}]},
        {"choices": [{"index": 0, "delta": {"reasoning_content": ", yes."}}]},
        {"choices": [{"index": 0, "delta": {"content": "Yes."}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    sse = b"".join(b"data: " + msgspec.json.encode({"model": "deepseek-r", **f}) + b"\n\n" for f in frames)
    events = run(turn_for(stream=True), sse + b"data: [DONE]\n\n")
    done = [e for e in events if e["type"] == "response.reasoning_summary_text.done"]
    assert [e["text"] for e in done] == ["Hmm, yes."]
    final = Response.model_validate(events[-1]["response"])
    assert [i.type for i in final.output] == ["reasoning", "message"] and final.output_text == "Yes."


def test_a_cut_stream_ends_incomplete() -> None:
    events = run(turn_for(stream=True), text_stream("a b", finish="length"))
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_an_error_mid_stream_is_an_error_then_response_failed() -> None:
    writer = ChunkWriter("chatcmpl-9", "m", provider="anthropic")
    sse = (
        writer.role()
        + writer.content("partial")
        + writer.error("anthropic error: Overloaded", "overloaded_error")
    )
    events = run(turn_for(stream=True), sse + writer.content("never"))
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["message"] == "anthropic error: Overloaded" and events[-2]["code"] == "overloaded_error"
    failed = Response.model_validate(events[-1]["response"])
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
    assert [i.type for i in failed.output] == ["message"]


def test_a_stream_cut_before_its_end_fails_unless_it_had_finished() -> None:
    writer = ChunkWriter("chatcmpl-9", "m")
    events = run(turn_for(stream=True), writer.role() + writer.content("half"))
    assert events[-1]["type"] == "response.failed"
    finished = text_stream("all").replace(b"data: [DONE]\n\n", b"")
    assert run(turn_for(stream=True), finished)[-1]["type"] == "response.completed"


def test_a_malformed_event_fails_the_response() -> None:
    events = run(turn_for(stream=True), b'data: {"choices": 7}\n\n')
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "error",
        "response.failed",
    ]


def test_an_empty_stream_answer_is_an_empty_message() -> None:
    writer = ChunkWriter("chatcmpl-9", "m", include_usage=True)
    final = Response.model_validate(
        run(turn_for(stream=True), writer.role() + writer.finish("stop", usage()))[-1]["response"]
    )
    assert [i.type for i in final.output] == ["message"] and final.output_text == ""


def without_clock(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        if "response" in event:
            event["response"].pop("completed_at")
    return events


STREAM = text_stream("Once ", "upon ", "a tíme ✓") + ChunkWriter("x", "m").error("boom")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=12))
def test_reads_split_anywhere_give_the_same_events(cuts: list[int]) -> None:
    turn = turn_for(stream=True)
    whole = without_clock(run(turn, STREAM))
    mapper = turn.stream_mapper()
    points = [0, *sorted(set(cuts)), len(STREAM)]
    out = b"".join(mapper.feed(STREAM[a:b]) for a, b in pairwise(points)) + mapper.finish()
    assert without_clock(check_events(out)) == whole


def test_byte_by_byte_reads_map_incrementally() -> None:
    turn = turn_for(stream=True)
    sse = text_stream("one", "two")
    mapper = turn.stream_mapper()
    seen = 0
    for i in range(len(sse)):
        out = mapper.feed(sse[i : i + 1])
        if out:
            seen += 1
    # Events come out as the chat chunks that carry them complete, not all at the end.
    assert seen >= 4
    assert mapper.done


@pytest.mark.parametrize(
    "text", ["plain words", 'a "quote", a \\ and a\nnew line', "accents é ✓ and 🎉", "\u0001\u001f", "\u2028"]
)
def test_copied_and_decoded_text_deltas_are_the_same_events(text: str) -> None:
    # ChunkWriter's content frames are mapped from their bytes; the same chunks with their
    # fields in OpenAI's order (an OpenAI-compatible upstream's) have their text copied from the
    # decoded chunk; written with \\u escapes (Python's json module) their text is decoded.
    sse = text_stream(text, text[::-1], provider="anthropic")

    def rewritten(encode: Any) -> bytes:
        return b"".join(
            b"data: "
            + (p if p == b"[DONE]" else encode({"object": "chat.completion.chunk", **json.loads(p)}))
            + b"\n\n"
            for p in data_payloads(sse)
        )

    turn = turn_for(stream=True)
    written = without_clock(run(turn, sse))
    for variant in (rewritten(msgspec.json.encode), rewritten(lambda o: json.dumps(o).encode())):
        assert without_clock(run(turn, variant)) == written
    assert [e["delta"] for e in written if e["type"] == "response.output_text.delta"] == [text, text[::-1]]


def test_text_delta_events_are_written_as_their_struct_encodes() -> None:
    mapper = turn_for(stream=True).stream_mapper()
    raw = mapper.feed(text_stream("copied", 'é " ✓')) + mapper.finish()
    deltas = [f for f in frames(raw) if f.startswith(b"event: response.output_text.delta\n")]
    assert len(deltas) == 2
    for frame in deltas:
        data = frame.split(b"\ndata: ", 1)[1]
        fields = {k: v for k, v in msgspec.json.decode(data).items() if k != "type"}
        assert data == msgspec.json.encode(OutputTextDelta(**fields))


# ---- custom tools (free-form input: Codex's apply_patch) ----------------------------------------

PATCH_TOOL = {
    "type": "custom",
    "name": "apply_patch",
    "description": "Edit files.",
    "format": {"type": "grammar", "syntax": "lark", "definition": "start: PATCH"},
}


def test_a_custom_tool_is_a_function_of_one_string() -> None:
    chat = chat_of(tools=[PATCH_TOOL], tool_choice={"type": "custom", "name": "apply_patch"})
    fn = chat["tools"][0]["function"]
    assert fn["name"] == "apply_patch"
    assert fn["parameters"] == {
        "type": "object",
        "properties": {"input": {"type": "string"}},
        "required": ["input"],
        "additionalProperties": False,
    }
    assert fn["description"].startswith("Edit files.") and "lark grammar:\nstart: PATCH" in fn["description"]
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "apply_patch"}}


def test_custom_tool_calls_and_outputs_go_back_as_tool_calls() -> None:
    chat = chat_of(
        tools=[PATCH_TOOL],
        input=[
            {"role": "user", "content": "fix it"},
            {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "*** Begin Patch"},
            {"type": "custom_tool_call_output", "call_id": "c1", "output": "Done!"},
        ],
    )
    assert chat["messages"][1:] == [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "apply_patch", "arguments": '{"input":"*** Begin Patch"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Done!"},
    ]


def test_a_custom_tool_call_answer_is_a_custom_tool_call_item() -> None:
    calls = [
        {
            "id": "call_p",
            "type": "function",
            "function": {"name": "apply_patch", "arguments": '{"input": "*** Begin Patch\\n*** End Patch"}'},
        }
    ]
    response = parsed(
        turn_for(tools=[PATCH_TOOL]).answer(chat_answer({"content": None, "tool_calls": calls}))
    )
    call = response.output[0]
    assert call.type == "custom_tool_call"
    assert (call.call_id, call.name, call.input) == (
        "call_p",
        "apply_patch",
        "*** Begin Patch\n*** End Patch",
    )
    assert call.id is not None and call.id.startswith("ctc_")


def test_a_custom_tool_call_streams_its_input_whole() -> None:
    writer = ChunkWriter("chatcmpl-9", "m", include_usage=True)
    sse = (
        writer.role()
        + writer.tool_call_start(0, "call_p", "apply_patch")
        + writer.tool_call_arguments(0, '{"input": "*** Begin')
        + writer.tool_call_arguments(0, ' Patch"}')
        + writer.finish("tool_calls", usage())
    )
    events = run(turn_for(stream=True, tools=[PATCH_TOOL]), sse)
    assert [e["type"] for e in events[2:]] == [
        "response.output_item.added",
        "response.custom_tool_call_input.delta",
        "response.custom_tool_call_input.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert events[2]["item"]["type"] == "custom_tool_call" and events[2]["item"]["input"] == ""
    assert events[3]["delta"] == events[4]["input"] == "*** Begin Patch"
    final = Response.model_validate(events[-1]["response"])
    assert final.output[0].type == "custom_tool_call" and final.output[0].input == "*** Begin Patch"
