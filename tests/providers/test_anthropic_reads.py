"""Answers, message_start and message_delta read from their bytes (kernels/jsonread.pxi) map as
decoding them would: the same chunks and answers for every way the same JSON can be written, the
same failures for what is not JSON or not of the shape."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import AnthropicStream, anthropic_to_openai_chat
from fastgate.errors import GatewayError
from tests.support.sse import openai_chunks

#: A member no reader matches (its key is written with an escape) and every decoder ignores
#: (``type``): an event carrying it is always decoded, so it is the reference the read is held to.
_DECODED = '"\\u0074ype":0,'

_STOP = b"event: message_stop\ndata: {}\n\n"


def _event(name: str, data: str) -> bytes:
    """An SSE event; data of several lines (indented JSON) as several ``data:`` lines."""
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {name}\n{lines}\n".encode()


def _decoded(data: str) -> str:
    return "{" + _DECODED + data[1:] if data.startswith("{") else data


def _run(start: str, delta: str, include_usage: bool) -> list[Any]:
    stream = AnthropicStream("anthropic", include_usage=include_usage)
    out = stream.feed(_event("message_start", start) + _event("message_delta", delta) + _STOP)
    return openai_chunks(re.sub(rb'"created":\d+', b'"created":0', out + stream.finish()))


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=16)  # no lone surrogates
_figure = st.one_of(st.none(), st.integers(-3, 10**12))
_skipped = st.sampled_from(
    [
        ("role", "assistant"),
        ("content", []),
        ("stop_sequence", None),
        ("cache_creation", {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}),
        ("service_tier", "standard"),
        ("odd", 'quotes " and \\ backslashes, }] brackets [{ in a string'),
        ("nested", [{"a": [1, 2.5e3, True, None]}, "]", {"}": "{"}]),
    ]
)


def _usage(draw: st.DrawFn, output_required: bool) -> dict[str, Any]:
    usage: dict[str, Any] = {}
    for name in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        if draw(st.booleans()):
            usage[name] = draw(_figure)
    if output_required or draw(st.booleans()):
        usage["output_tokens"] = draw(st.integers(0, 10**9))
    for name, value in draw(st.lists(_skipped, max_size=2)):
        usage[name] = value
    return usage


@st.composite
def _events(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    message: dict[str, Any] = {"type": "message"}
    if draw(st.booleans()):
        message["id"] = draw(_text)
    if draw(st.booleans()):
        message["model"] = draw(_text)
    if draw(st.booleans()):
        message["usage"] = _usage(draw, output_required=False)
    for name, value in draw(st.lists(_skipped, max_size=3)):
        message[name] = value
    delta: dict[str, Any] = {"type": "message_delta"}
    if draw(st.booleans()):
        delta["delta"] = {"stop_reason": draw(st.sampled_from([None, "end_turn", "max_tokens", "tool_use"]))}
    if draw(st.booleans()):
        delta["usage"] = _usage(draw, output_required=True)
    order = draw(st.permutations(list(message)))
    start = {"type": "message_start", "message": {k: message[k] for k in order}}
    return start, delta


def _written(value: dict[str, Any], style: int) -> str:
    if style == 0:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)  # as Anthropic writes it
    if style == 1:
        return json.dumps(value, ensure_ascii=False, indent=1)  # whitespace everywhere
    return json.dumps(value)  # \u escapes: strings read by the decoder


@given(_events(), st.integers(0, 2), st.booleans())
@settings(max_examples=400, deadline=None)
def test_read_or_decoded_the_events_map_the_same(
    events: tuple[dict[str, Any], dict[str, Any]], style: int, include_usage: bool
) -> None:
    start, delta = (_written(value, style) for value in events)
    read = _run(start, delta, include_usage)
    assert read == _run(_decoded(start), _decoded(delta), include_usage)
    message = events[0]["message"]
    assert read[0]["id"] == message.get("id", "") and read[0]["model"] == message.get("model", "")


def test_a_real_message_start_is_read_with_its_cache_figures() -> None:
    start = (
        '{"type":"message_start","message":{"id":"msg_01XFDUDYJgAACzvnptvVoYEL","type":"message",'
        '"role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,'
        '"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":7,'
        '"cache_read_input_tokens":10,"cache_creation":{"ephemeral_5m_input_tokens":7,'
        '"ephemeral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}'
    )
    delta = (
        '{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},'
        '"usage":{"output_tokens":15}}'
    )
    chunks = _run(start, delta, include_usage=True)
    assert chunks[0]["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL" and chunks[0]["model"] == "claude-sonnet-4-5"
    assert chunks[-3]["choices"][0]["finish_reason"] == "length"
    usage = chunks[-2]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == (42, 15, 57)
    assert usage["prompt_tokens_details"] == {"cached_tokens": 10}
    assert chunks == _run(_decoded(start), _decoded(delta), include_usage=True)


def test_values_skipped_are_checked_for_their_brackets_and_quotes_only() -> None:
    """What the reader skips it does not decode: a scalar no JSON allows, inside a value no
    mapping reads, passes (decoding it would refuse the event)."""
    start = '{"type":"message_start","message":{"id":"m","model":"c","content":[1 2],"usage":{}}}'
    assert _run(start, '{"usage":{"output_tokens":1}}', include_usage=False)[0]["id"] == "m"
    with pytest.raises(ValueError):
        _run(_decoded(start), '{"usage":{"output_tokens":1}}', include_usage=False)
    answer = '{"id":"m","content":[{"type":"text","text":"hi"}],"odd":[1 2]}'
    assert _answer(answer)["choices"][0]["message"]["content"] == "hi"
    with pytest.raises(GatewayError):
        _answer(_decoded(answer))


_GOOD_START = '{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1}}}'
_GOOD_DELTA = '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}'


@pytest.mark.parametrize(
    "start",
    [
        '{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1}}',  # cut short
        _GOOD_START + " x",  # more after the object
        '{"type":"message_start","message":{"id":"m","content":[}],"usage":{}}}',  # mismatched brackets
        '{"type":"message_start","message":{"id":"m,"usage":{}}}',  # a string that does not end
        '{"type":"message_start","message":{"id":"m" "model":"c"}}',  # no comma
        '{"type":"message_start","message":{"id":"m\x01","model":"c"}}',  # a raw control character
        '{"type":"message_start","message":{"id":"m","model":"\xff"}}',  # not UTF-8
        '{"type":"message_start","message":{"id":null,"model":"c"}}',  # not a string
        '{"type":"message_start","message":{"id":"m","usage":{"input_tokens":1.5}}}',  # not an integer
        '{"type":"message_start","message":{"id":"m","usage":{"output_tokens":null}}}',  # output must be one
        '{"type":"message_start","message":{"id":"m","usage":[]}}',  # usage not an object
        '{"type":"message_start","message":null}',
        '{"type":"message_start"}',  # no message
        "[]",
    ],
)
def test_a_message_start_decoding_refuses_is_refused(start: str) -> None:
    data = start.encode("latin-1")
    stream = AnthropicStream("anthropic")
    with pytest.raises(ValueError):
        stream.feed(b"event: message_start\ndata: " + data + b"\n\n")


@pytest.mark.parametrize(
    "delta",
    [
        '{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}',
        '{"type":"message_delta","delta":{"stop_reason":7},"usage":{"output_tokens":2}}',
        '{"type":"message_delta","delta":null,"usage":{"output_tokens":2}}',
        '{"type":"message_delta","usage":{"output_tokens":"2"}}',
        '{"type":"message_delta","usage":{"output_tokens":02}}',
        '{"type":"message_delta","usage":{"output_tokens":-}}',
    ],
)
def test_a_message_delta_decoding_refuses_is_refused(delta: str) -> None:
    stream = AnthropicStream("anthropic")
    stream.feed(_event("message_start", _GOOD_START))
    with pytest.raises(ValueError):
        stream.feed(_event("message_delta", delta))


def test_a_repeated_usage_object_is_taken_whole_as_decoding_keeps_the_last() -> None:
    delta = '{"usage":{"output_tokens":2,"input_tokens":9},"usage":{"output_tokens":3}}'
    chunks = _run(_GOOD_START, delta, include_usage=True)
    assert chunks == _run(_GOOD_START, _decoded(delta), include_usage=True)
    assert chunks[-2]["usage"]["prompt_tokens"] == 1 and chunks[-2]["usage"]["completion_tokens"] == 3


def test_an_escaped_key_is_left_to_the_decoder() -> None:
    """A key written with an escape may name a member the mapping reads."""
    start = '{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tok\\u0065ns":8}}}'
    chunks = _run(start, _GOOD_DELTA, include_usage=True)
    assert chunks[-2]["usage"]["prompt_tokens"] == 8


# ---- answers ---------------------------------------------------------------------------------

_block = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _text}),
    st.fixed_dictionaries(
        {"type": st.just("text"), "text": _text, "citations": st.just([{"type": "char_location"}])}
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("tool_use"),
            "id": st.just("toolu_1"),
            "name": st.just("f"),
            "input": st.just({"a": 1}),
        }
    ),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": _text, "signature": st.just("s")}),
)


@st.composite
def _answers(draw: st.DrawFn) -> dict[str, Any]:
    answer: dict[str, Any] = {"type": "message", "role": "assistant"}
    if draw(st.booleans()):
        answer["id"] = draw(_text)
    if draw(st.booleans()):
        answer["model"] = draw(_text)
    if draw(st.booleans()):
        answer["content"] = draw(st.lists(_block, max_size=3))
    if draw(st.booleans()):
        answer["stop_reason"] = draw(st.sampled_from([None, "end_turn", "max_tokens", "tool_use", "refusal"]))
    if draw(st.booleans()):
        answer["usage"] = _usage(draw, output_required=False)
    for name, value in draw(st.lists(_skipped, max_size=2)):
        answer[name] = value
    order = draw(st.permutations(list(answer)))
    return {k: answer[k] for k in order}


def _answer(data: str) -> Any:
    return json.loads(
        re.sub(rb'"created":\d+', b'"created":0', anthropic_to_openai_chat(data.encode(), "anthropic"))
    )


@given(_answers(), st.integers(0, 2))
@settings(max_examples=400, deadline=None)
def test_read_or_decoded_an_answer_maps_the_same(answer: dict[str, Any], style: int) -> None:
    data = _written(answer, style)
    read = _answer(data)
    assert read == _answer(_decoded(data))
    texts = [b["text"] for b in answer.get("content", []) if b["type"] == "text"]
    assert read["choices"][0]["message"]["content"] == ("".join(texts) if texts else None)


def test_an_answer_decoding_refuses_is_a_502() -> None:
    for data in (
        '{"id":"m","content":[{"type":"text","text":"hi"}]',  # cut short
        '{"id":"m","content":[{"type":"text","text":"hi"}]} x',  # more after the object
        '{"id":"m","content":[{"type":"text","text":"hi\x01"}]}',  # a raw control character
        '{"id":"m","content":[{"type":"text","text":"hi"}],"usage":{"output_tokens":1.5}}',
        '{"id":7,"content":[]}',
        '{"id":"m","content":{}}',
    ):
        with pytest.raises(GatewayError) as refused:
            anthropic_to_openai_chat(data.encode(), "anthropic")
        assert refused.value.status == 502


_long_text = st.text(
    st.one_of(
        st.sampled_from('abcdefghij ,.-"\\/\n\t\x7f'),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=300,
)


@given(_long_text, st.booleans())
@settings(max_examples=400, deadline=None)
def test_a_long_text_is_copied_as_decoding_would_write_it(text: str, escaped: bool) -> None:
    """Texts past a few words are checked a word (8 bytes) at a time where they are plain ASCII."""
    data = json.dumps({"id": "m", "content": [{"type": "text", "text": text}]}, ensure_ascii=escaped)
    read = _answer(data)
    assert read == _answer(_decoded(data))
    assert read["choices"][0]["message"]["content"] == text


@pytest.mark.parametrize("at", range(18))
@pytest.mark.parametrize("special", ['"', "\\", "\n", "é", "€", "😀", "\x7f"])
def test_a_character_to_look_at_is_found_wherever_it_stands_in_a_word(at: int, special: str) -> None:
    """The word test stops at the first byte it flags: an escape or a multi-byte character at
    any place in the first words is taken as it is, and the text after it copied as well."""
    text = "plain ascii text"[:at] + special + "plain ascii text"
    data = json.dumps({"id": "m", "content": [{"type": "text", "text": text}]}, ensure_ascii=False)
    assert _answer(data)["choices"][0]["message"]["content"] == text


@pytest.mark.parametrize("at", [0, 1, 3, 6, 7, 8, 9, 15, 16, 17, 31, 40])
@pytest.mark.parametrize("bad", [b"\x01", b"\xff", b"\xc0\xaf", b"\\x"])
def test_a_long_text_that_is_not_json_is_refused_wherever_it_breaks(at: int, bad: bytes) -> None:
    text = b"plain ascii text " * 3
    data = b'{"id":"m","content":[{"type":"text","text":"' + text[:at] + bad + text[at:] + b'"}]}'
    with pytest.raises(GatewayError):
        anthropic_to_openai_chat(data, "anthropic")
