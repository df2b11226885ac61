"""The compiled SSE kernels: split anywhere, any line ending, never a half event out."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import SSEDecoder, SSERelay

EVENTS = [
    b'data: {"a":1}',
    b"event: ping\ndata: {}",
    b": keep-alive",
    b'data: {"b":"x\\ny"}',
    b"data: [DONE]",
]


def _stream(events: list[bytes], eol: bytes) -> bytes:
    return b"".join(e.replace(b"\n", eol) + eol + eol for e in events)


def _relay_all(parts: list[bytes]) -> tuple[bytes, SSERelay]:
    relay = SSERelay()
    return b"".join(relay.feed(p) for p in parts), relay


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_relay_reframes_every_line_ending(eol: bytes) -> None:
    out, relay = _relay_all([_stream(EVENTS, eol)])
    assert out == b"".join(e.replace(b"\n", eol) + b"\n\n" for e in EVENTS)
    assert relay.done and relay.events == len(EVENTS)


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_relay_split_at_every_byte_gives_same_events(eol: bytes) -> None:
    data = _stream(EVENTS, eol)
    whole, _ = _relay_all([data])
    for cut in range(1, len(data)):
        out, relay = _relay_all([data[:cut], data[cut:]])
        assert out == whole, cut
        assert relay.done


def test_relay_never_emits_a_partial_event() -> None:
    relay = SSERelay()
    assert relay.feed(b'data: {"a":') == b""
    assert relay.feed(b"1}\n") == b""
    assert relay.feed(b"\n") == b'data: {"a":1}\n\n'


def test_relay_ignores_anything_after_done() -> None:
    relay = SSERelay()
    assert relay.feed(b"data: [DONE]\n\ndata: late\n\n") == b"data: [DONE]\n\n"
    assert relay.feed(b"data: more\n\n") == b""


def test_decoder_fields_and_multiline_data() -> None:
    dec = SSEDecoder()
    got = dec.feed(b'event: message_start\ndata: {"x":1}\n\n: comment\n\ndata: a\ndata:b\n\n')
    assert got == [(b"message_start", b'{"x":1}'), (None, b"a\nb")]


def test_decoder_crlf_split_between_reads_is_one_line_end() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"\ndata: b\r\n\r\n") == [(None, b"a\nb")]


def test_decoder_close_flushes_an_unterminated_event() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: tail") == []
    assert dec.close() == [(None, b"tail")]


payloads = st.lists(
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")), max_size=8
)


@settings(max_examples=300, deadline=None)
@given(payloads, st.sampled_from([b"\n", b"\r\n", b"\r"]), st.data())
def test_decoder_round_trips_any_payload_split_anywhere(
    datas: list[bytes], eol: bytes, data: st.DataObject
) -> None:
    stream = b"".join(b"data: " + d + eol + eol for d in datas)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    dec = SSEDecoder()
    got: list[tuple[bytes | None, bytes]] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        got.extend(dec.feed(stream[start:cut]))
        start = cut
    got.extend(dec.close())
    assert got == [(None, d) for d in datas]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6))
def test_arbitrary_bytes_never_crash_or_grow_output(blob: bytes, cuts: list[int]) -> None:
    relay, dec = SSERelay(), SSEDecoder()
    start = 0
    total = 0
    for cut in [*sorted(c % (len(blob) + 1) for c in cuts), len(blob)]:
        total += len(relay.feed(blob[start:cut]))
        dec.feed(blob[start:cut])
        start = cut
    dec.close()
    # Re-framing adds at most the two-byte terminator per event.
    assert total <= len(blob) + 2 * (blob.count(b"\n") + blob.count(b"\r") + 1)


def _reference_relay(data: bytes) -> bytes:
    """The relay's contract on a whole stream: each complete event (non-blank lines ended by a
    blank one) goes out as it came, its last line end replaced by one blank line; nothing
    after ``data: [DONE]``."""
    lines = []
    start = i = 0
    while i < len(data):
        if data[i : i + 2] == b"\r\n":
            lines.append((start, i))
            i += 2
            start = i
        elif data[i : i + 1] in (b"\n", b"\r"):
            lines.append((start, i))
            i += 1
            start = i
        else:
            i += 1
    out = []
    first = last = None
    done = False
    for begin, end in lines:
        if begin == end:  # a blank line ends the event, if any
            if first is not None:
                out.append(data[first:last] + b"\n\n")
                if done:
                    break
            first = last = None
            done = False
            continue
        first = begin if first is None else first
        last = end
        done = done or data[begin:end] in (b"data: [DONE]", b"data:[DONE]")
    return b"".join(out)


SSE_PIECES = st.sampled_from(
    [b"data: x", b"data: [DONE]", b"data:[DONE]", b"event: e", b": c", b"\n", b"\r", b"\r\n", b"\n\n", b" "]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(SSE_PIECES, max_size=40).map(b"".join), st.lists(st.integers(0, 400), max_size=5))
def test_relay_keeps_its_contract_split_anywhere(data: bytes, cuts: list[int]) -> None:
    """Whatever the reads, the relay passes on exactly the complete events, re-framed: the fast
    path that hands on a run of already-framed events uncopied must agree with the slow one."""
    out, _ = _relay_all(
        [
            data[a:b]
            for a, b in zip(
                [0, *sorted(c % (len(data) + 1) for c in cuts)],
                [*sorted(c % (len(data) + 1) for c in cuts), len(data)],
                strict=True,
            )
        ]
    )
    assert out == _reference_relay(data)


def _reference_decode(data: bytes) -> list[tuple[bytes | None, bytes]]:
    """The spec's parsing, on a whole stream: lines end in CRLF, LF or CR; ``:`` starts a
    comment; a field's value loses one leading space; a line that is a bare name is that field
    with an empty value; a blank line dispatches the event if it has data, and resets it. The
    decoder also dispatches an event the stream ends in (``close``)."""
    out: list[tuple[bytes | None, bytes]] = []
    event: bytes | None = None
    lines: list[bytes] | None = None
    for line in [*re.split(rb"\r\n|\r|\n", data), b""]:
        if not line:
            if lines is not None:
                out.append((event, b"\n".join(lines)))
            event, lines = None, None
            continue
        name, colon, value = line.partition(b":")
        if not name:
            continue
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            lines = [*(lines or []), value]
        elif name == b"event":
            event = value
    return out


DECODER_PIECES = st.sampled_from(
    [
        b"data: x",
        b"data:y",
        b"data",
        b"data: ",
        b"event: e",
        b"event:f",
        b"id: 1",
        b": c",
        b"datum: z",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b" ",
        b"{}",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(DECODER_PIECES, max_size=40).map(b"".join), st.lists(st.integers(0, 400), max_size=5))
def test_decoder_follows_the_spec_split_anywhere(data: bytes, cuts: list[int]) -> None:
    """Events are handed on as pointers into the read with the unfinished one kept whole between
    reads: whatever the reads, the events are the spec's, multi-line data and CRLFs split
    between reads included."""
    bounds = sorted(c % (len(data) + 1) for c in cuts)
    dec = SSEDecoder()
    got: list[tuple[bytes | None, bytes]] = []
    for a, b in zip([0, *bounds], [*bounds, len(data)], strict=True):
        got.extend(dec.feed(data[a:b]))
    got.extend(dec.close())
    assert got == _reference_decode(data)


def test_decoder_event_names_are_shared_between_events() -> None:
    got = SSEDecoder().feed(b"event: tick\ndata: 1\n\nevent: tick\ndata: 2\n\n")
    assert got == [(b"tick", b"1"), (b"tick", b"2")]
    assert got[0][0] is got[1][0]
