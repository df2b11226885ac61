"""Bedrock mapping in the compiled module: OpenAI ⇄ Converse, against payloads from the public docs."""

from __future__ import annotations

import base64
import itertools
import pathlib
import struct
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import (
    BedrockStream,
    bedrock_chat_request,
    bedrock_chat_response,
    bedrock_completion_request,
    bedrock_embedding_request,
    bedrock_embedding_response,
)
from fastgate.errors import GatewayError
from fastgate.mock.bedrock_format import encode_message, event, exception
from tests.support.sse import openai_chunks

DATA = pathlib.Path(__file__).parent.parent / "data" / "bedrock"
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def load(name: str) -> Any:
    return msgspec.json.decode((DATA / name).read_bytes())


def converse(body: dict[str, Any]) -> dict[str, Any]:
    model, payload = bedrock_chat_request(msgspec.json.encode({"model": MODEL, **body}))
    assert model == MODEL
    return msgspec.json.decode(payload)


def user(content: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}]}


def test_full_request_matches_the_recorded_converse_body() -> None:
    model, payload = bedrock_chat_request((DATA / "openai_chat_request.json").read_bytes())
    assert model == MODEL
    assert msgspec.json.decode(payload) == load("converse_request.json")


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"auto": {}}),
        ("required", {"any": {}}),
        ({"type": "function", "function": {"name": "f"}}, {"tool": {"name": "f"}}),
        (None, None),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = {**user("hi"), "tools": tools, **({"tool_choice": choice} if choice else {})}
    config = converse(body)["toolConfig"]
    assert config["tools"] == [
        {"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object", "properties": {}}}}}
    ]
    assert config.get("toolChoice") == expected


def test_tool_choice_none_omits_tools() -> None:
    body = {**user("hi"), "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "none"}
    assert "toolConfig" not in converse(body)


def test_only_what_converse_takes_is_sent() -> None:
    body = {
        **user("hi"),
        "seed": 1,
        "n": 1,
        "logprobs": True,
        "user": "u",
        "response_format": {"type": "text"},
    }
    assert converse(body) == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}


def test_max_completion_tokens_wins_and_stop_list() -> None:
    body = {**user("hi"), "max_tokens": 5, "max_completion_tokens": 9, "stop": ["a", "b"]}
    assert converse(body)["inferenceConfig"] == {"maxTokens": 9, "stopSequences": ["a", "b"]}


def test_model_specific_fields() -> None:
    fields = {
        "additionalModelRequestFields": {"anthropic_beta": ["x"]},
        "top_k": 3,
        "thinking": {"type": "enabled"},
    }
    assert converse({**user("hi"), **fields})["additionalModelRequestFields"] == {
        "anthropic_beta": ["x"],
        "top_k": 3,
        "thinking": {"type": "enabled"},
    }
    _, payload = bedrock_chat_request(
        msgspec.json.encode({"model": "us.amazon.nova-pro-v1:0", **user("hi"), "top_k": 3})
    )
    assert msgspec.json.decode(payload)["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 3}}
    guard = {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"}
    assert converse({**user("hi"), "guardrail_config": guard})["guardrailConfig"] == guard


def test_blank_text_is_skipped_and_roles_merge() -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": "b"},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
        {"role": "user", "content": "d"},
    ]
    assert converse({"messages": messages})["messages"] == [
        {"role": "user", "content": [{"text": "a"}]},
        {"role": "assistant", "content": [{"text": "b"}, {"text": "c"}]},
        {"role": "user", "content": [{"text": "d"}]},
    ]


def test_images_and_documents() -> None:
    content = [
        {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/4AAQ"}},
        {"type": "image_url", "image_url": {"url": "s3://bucket/cat.webp"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "Q3 report.v2.pdf"},
        },
    ]
    blocks = converse(user(content))["messages"][0]["content"]
    assert blocks == [
        {"image": {"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}},
        {"image": {"format": "webp", "source": {"s3Location": {"uri": "s3://bucket/cat.webp"}}}},
        {"document": {"format": "pdf", "name": "Q3 report-v2", "source": {"bytes": "JVBERi0="}}},
    ]


@pytest.mark.parametrize(
    ("part", "param", "fragment"),
    [
        (
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            "messages[0].content[1].image_url.url",
            "not http(s) URLs",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}},
            "messages[0].content[1].image_url.url",
            "png, jpeg",
        ),
        (
            {"type": "image_url", "image_url": {"url": "data:image/png,rawdata"}},
            "messages[0].content[1].image_url.url",
            "base64",
        ),
        ({"type": "file", "file": {"file_id": "file-1"}}, "messages[0].content[1].file", "file ids"),
        (
            {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
            "messages[0].content[1]",
            "does not take",
        ),
    ],
)
def test_refused_content_names_the_field(part: dict[str, Any], param: str, fragment: str) -> None:
    with pytest.raises(GatewayError) as info:
        converse(user([{"type": "text", "text": "look"}, part]))
    assert info.value.status == 400
    assert info.value.param == param
    assert fragment in info.value.message


def test_bad_tool_arguments_and_missing_model() -> None:
    messages = [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{nope"}}]},
    ]
    with pytest.raises(GatewayError, match="not valid JSON"):
        converse({"messages": messages})
    with pytest.raises(GatewayError, match="Model is required"):
        bedrock_chat_request(b'{"messages": []}')


def test_text_response() -> None:
    data = msgspec.json.decode(bedrock_chat_response((DATA / "converse_text.json").read_bytes(), MODEL))
    assert data["object"] == "chat.completion" and data["model"] == MODEL and data["provider"] == "bedrock"
    assert data["id"].startswith("chatcmpl-")
    [choice] = data["choices"]
    assert choice["message"]["content"].endswith('"Bitter Sweet Symphony" by The Verve')
    assert choice["finish_reason"] == "stop"
    assert data["usage"] == {
        "prompt_tokens": 125,
        "completion_tokens": 60,
        "total_tokens": 185,
        "prompt_tokens_details": {"cached_tokens": 0},
    }


def test_tool_use_response() -> None:
    data = msgspec.json.decode(bedrock_chat_response((DATA / "converse_tool_use.json").read_bytes(), MODEL))
    message = data["choices"][0]["message"]
    assert message["content"] == "I'll look up the most popular song on WZPZ."
    assert message["tool_calls"] == [
        {
            "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "type": "function",
            "function": {"name": "top_song", "arguments": '{"sign": "WZPZ"}'},
        }
    ]
    assert data["choices"][0]["finish_reason"] == "tool_calls"


def test_cache_usage_the_openai_way() -> None:
    data = msgspec.json.decode(
        bedrock_chat_response((DATA / "converse_cache_usage.json").read_bytes(), MODEL)
    )
    assert data["usage"] == {
        "prompt_tokens": 12 + 1800 + 252,
        "completion_tokens": 5,
        "total_tokens": 2069,
        "prompt_tokens_details": {"cached_tokens": 1800},
        "cache_read_input_tokens": 1800,
        "cache_creation_input_tokens": 252,
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("tool_use", "tool_calls"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_model_output", "stop"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    body = msgspec.json.encode(
        {"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}}, "stopReason": stop_reason}
    )
    assert msgspec.json.decode(bedrock_chat_response(body, MODEL))["choices"][0]["finish_reason"] == finish


def recorded_stream() -> bytes:
    return b"".join(event(name, payload) for name, payload in load("converse_stream_tool_use.json"))


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_with_tool_use(include_usage: bool) -> None:
    mapper = BedrockStream(MODEL, include_usage)
    data = recorded_stream()
    out = b"".join(mapper.feed(data[i : i + 50]) for i in range(0, len(data), 50))
    assert mapper.done and mapper.finish() == b""
    chunks = openai_chunks(out)
    assert chunks[-1] == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1] if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == "Let me check the station."
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
        "type": "function",
        "function": {"name": "top_song", "arguments": ""},
    }
    assert "".join(c["function"].get("arguments", "") for c in calls) == '{"sign": "WZPZ"}'
    finishes = [c["choices"][0]["finish_reason"] for c in chunks[:-1] if c["choices"]]
    assert finishes[-1] == "tool_calls" and finishes.count("tool_calls") == 1
    usage_chunks = [c for c in chunks[:-1] if not c["choices"]]
    if include_usage:
        [last] = usage_chunks
        assert last["usage"]["prompt_tokens"] == 675
        assert last["usage"]["prompt_tokens_details"] == {"cached_tokens": 300}
    else:
        assert usage_chunks == []
        assert all("usage" not in c for c in chunks[:-1])


def test_exception_event_mid_stream_is_an_error_event() -> None:
    mapper = BedrockStream(MODEL)
    out = mapper.feed(
        event("messageStart", {"role": "assistant"}) + exception("throttlingException", "Too many tokens")
    )
    chunks = openai_chunks(out)
    assert chunks[-1] == "[DONE]"
    error = chunks[-2]
    assert error["error"]["type"] == "rate_limit_error"
    assert "throttlingException: Too many tokens" in error["error"]["message"]
    assert mapper.done and mapper.feed(event("messageStop", {"stopReason": "end_turn"})) == b""


def test_error_message_type_event() -> None:
    frame = encode_message(
        {":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, b""
    )
    [error, done] = openai_chunks(BedrockStream(MODEL).feed(frame))
    assert "InternalFailure: boom" in error["error"]["message"] and done == "[DONE]"


def test_corrupted_frame_is_an_error_event() -> None:
    frame = bytearray(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}))
    frame[-1] ^= 0xFF
    mapper = BedrockStream(MODEL)
    [error, done] = openai_chunks(mapper.feed(bytes(frame)))
    assert "CRC" in error["error"]["message"] and done == "[DONE]"
    assert mapper.done


@pytest.mark.parametrize("cut", [0, 1, 2])
def test_stream_cut_short_is_an_error_not_a_stop(cut: int) -> None:
    frames = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}),
    ]
    data = b"".join(frames)[: len(b"".join(frames)) - cut]
    mapper = BedrockStream(MODEL)
    mapper.feed(data)
    tail = openai_chunks(mapper.finish())
    assert "ended before messageStop" in tail[0]["error"]["message"] and tail[1] == "[DONE]"


def test_stream_without_metadata_still_finishes() -> None:
    mapper = BedrockStream(MODEL, True)
    mapper.feed(
        event("messageStart", {"role": "assistant"}) + event("messageStop", {"stopReason": "max_tokens"})
    )
    chunks = openai_chunks(mapper.finish())
    assert chunks[0]["choices"][0]["finish_reason"] == "length" and chunks[-1] == "[DONE]"


def test_completion_stream_chunks() -> None:
    mapper = BedrockStream("meta.llama3-8b-instruct-v1:0", True, text_completion=True)
    data = b"".join(
        [
            event("messageStart", {"role": "assistant"}),
            event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hello"}}),
            event("messageStop", {"stopReason": "end_turn"}),
            event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 1, "totalTokens": 4}}),
        ]
    )
    chunks = openai_chunks(mapper.feed(data))
    assert [c["object"] for c in chunks[:-1]] == ["text_completion"] * 3
    assert chunks[0]["choices"][0]["text"] == "Hello"
    assert chunks[1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[2]["usage"]["total_tokens"] == 4 and chunks[-1] == "[DONE]"


def test_completion_request_is_one_user_turn() -> None:
    model, payload = bedrock_completion_request(b'{"model": "m", "prompt": ["Say hi"], "max_tokens": 3}')
    assert model == "m"
    assert msgspec.json.decode(payload) == {
        "messages": [{"role": "user", "content": [{"text": "Say hi"}]}],
        "inferenceConfig": {"maxTokens": 3},
    }
    with pytest.raises(GatewayError, match="one prompt"):
        bedrock_completion_request(b'{"model": "m", "prompt": ["a", "b"]}')


def test_embeddings_titan_and_cohere() -> None:
    model, [payload] = bedrock_embedding_request(
        b'{"model": "amazon.titan-embed-text-v2:0", "input": "hi", "dimensions": 256}'
    )
    assert msgspec.json.decode(payload) == {"inputText": "hi", "dimensions": 256, "normalize": True}
    assert model == "amazon.titan-embed-text-v2:0"
    model, [payload] = bedrock_embedding_request(b'{"model": "cohere.embed-english-v3", "input": ["a", "b"]}')
    assert msgspec.json.decode(payload) == {"texts": ["a", "b"], "input_type": "search_document"}
    assert model == "cohere.embed-english-v3"
    # Titan embeds one input per call: a list becomes one InvokeModel body per input, in order.
    _, payloads = bedrock_embedding_request(b'{"model": "amazon.titan-embed-text-v1", "input": ["a", "b"]}')
    assert [msgspec.json.decode(p) for p in payloads] == [{"inputText": "a"}, {"inputText": "b"}]
    with pytest.raises(GatewayError, match="at most"):
        bedrock_embedding_request(
            msgspec.json.encode({"model": "amazon.titan-embed-text-v2:0", "input": ["x"] * 257})
        )
    titan = msgspec.json.decode(
        bedrock_embedding_response(
            (DATA / "titan_embedding.json").read_bytes(), "amazon.titan-embed-text-v2:0"
        )
    )
    assert titan["data"] == [{"index": 0, "embedding": [0.0625, -0.5, 0.25, 1.0], "object": "embedding"}]
    assert titan["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    cohere = msgspec.json.decode(
        bedrock_embedding_response(
            (DATA / "cohere_embedding.json").read_bytes(), "cohere.embed-english-v3", True
        )
    )
    raw = base64.b64decode(cohere["data"][1]["embedding"])
    assert struct.unpack("<3f", raw) == (1.0, 0.0, -1.0)


def test_reasoning_is_dropped_in_strict_mode_and_kept_otherwise() -> None:
    body = (DATA / "converse_reasoning.json").read_bytes()
    strict = msgspec.json.decode(bedrock_chat_response(body, MODEL))
    assert strict["choices"][0]["message"]["content"] == "The answer is 42."
    assert "content_blocks" not in strict["choices"][0]["message"]
    assert strict["choices"][0]["finish_reason"] == "stop"
    loose = msgspec.json.decode(bedrock_chat_response(body, MODEL, False))
    assert loose["choices"][0]["message"]["content_blocks"] == [
        {
            "type": "thinking",
            "thinking": "The user wants the sum. 40 + 2 = 42.",
            "signature": "ErcBCkgIARABGAIiQMkS",
        },
        {"type": "redacted_thinking", "data": "RXF3QmVkcm9ja1JlZGFjdGVk"},
        {"type": "text", "text": "The answer is 42."},
    ]
    assert loose["choices"][0]["finish_reason"] == "end_turn"


@pytest.mark.parametrize("strict", [True, False])
def test_stream_reasoning_deltas(strict: bool) -> None:
    frames = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "Hmm."}}}),
        event(
            "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "sig"}}}
        ),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "42"}}),
        event("messageStop", {"stopReason": "end_turn"}),
        event("metadata", {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}),
    ]
    chunks = openai_chunks(BedrockStream(MODEL, strict=strict).feed(b"".join(frames)))
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert "".join(d.get("content") or "" for d in deltas) == "42"
    blocks = [b for d in deltas for b in d.get("content_blocks", [])]
    if strict:
        assert blocks == [] and chunks[-2]["choices"][0]["finish_reason"] == "stop"
    else:
        assert blocks == [
            {"index": 0, "delta": {"thinking": "Hmm."}},
            {"index": 0, "delta": {"signature": "sig"}},
            {"index": 1, "delta": {"text": "42"}},
        ]
        assert chunks[-2]["choices"][0]["finish_reason"] == "end_turn"


def test_malformed_event_payload_is_an_error_event() -> None:
    bad = encode_message(
        {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"},
        b'{"contentBlockIndex": "zero", "delta": {}}',
    )
    mapper = BedrockStream(MODEL)
    mapper.feed(event("messageStart", {"role": "assistant"}))
    [error, done] = openai_chunks(mapper.feed(bad))
    assert "malformed contentBlockDelta event" in error["error"]["message"] and done == "[DONE]"
    assert mapper.done


def test_cohere_embeddings_keyed_by_type() -> None:
    body = msgspec.json.encode(
        {
            "id": "x",
            "response_type": "embeddings_by_type",
            "embeddings": {"float": [[0.5, 1.5]]},
            "texts": ["a"],
        }
    )
    data = msgspec.json.decode(bedrock_embedding_response(body, "cohere.embed-v4:0"))
    assert data["data"] == [{"index": 0, "embedding": [0.5, 1.5], "object": "embedding"}]


_turn = st.tuples(
    st.sampled_from(["system", "user", "assistant"]), st.text(min_size=1, max_size=8).filter(str.strip)
)


@settings(max_examples=80, deadline=None)
@given(turns=st.lists(_turn, min_size=1, max_size=12))
def test_any_conversation_maps_to_alternating_turns(turns: list[tuple[str, str]]) -> None:
    messages = [{"role": "user", "content": "first"}] + [{"role": r, "content": t} for r, t in turns]
    sent = converse({"messages": messages})
    roles = [m["role"] for m in sent["messages"]]
    assert roles[0] == "user"
    assert all(a != b for a, b in itertools.pairwise(roles))
    said = [b["text"] for m in sent["messages"] for b in m["content"]]
    assert said == [m["content"] for m in messages if m["role"] != "system"]
    assert [b["text"] for b in sent.get("system", [])] == [t for r, t in turns if r == "system"]


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=10))
def test_stream_output_does_not_depend_on_read_boundaries(cuts: list[int]) -> None:
    data = recorded_stream()
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]

    def payloads(reads: list[bytes]) -> list[Any]:
        mapper = BedrockStream(MODEL, True)
        out = b"".join(mapper.feed(r) for r in reads) + mapper.finish()
        return [c if c == "[DONE]" else {**c, "id": None, "created": None} for c in openai_chunks(out)]

    assert payloads(pieces) == payloads([data])
