"""The compiled AWS event-stream decoder, against botocore's own parser and the spec's header types."""

from __future__ import annotations

import datetime
import struct
import uuid
import zlib

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import EventStreamDecoder, EventStreamError, event_stream_crc32
from fastgate.mock.bedrock_format import encode_message, event, exception

WHEN = datetime.datetime(2026, 11, 21, 12, 30, 15, 123000, tzinfo=datetime.UTC)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")
ALL_TYPES = {
    "t": True,
    "f": False,
    "byte": (2, -7),
    "short": (3, -300),
    "int": -70000,
    "long": (5, 2**40 + 3),
    "bytes": b"\x00\xffraw",
    ":event-type": "contentBlockDelta",
    "when": WHEN,
    "id": ID,
}
STREAM = [
    event("messageStart", {"role": "assistant"}),
    *(
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"piece {i} é"}})
        for i in range(5)
    ),
    event("contentBlockStop", {"contentBlockIndex": 0}),
    event("messageStop", {"stopReason": "end_turn"}),
    exception("throttlingException", "slow down"),
    encode_message({}, b""),
]


def decode_all(chunks: list[bytes]) -> list[tuple[dict, bytes]]:
    decoder = EventStreamDecoder()
    out = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    assert decoder.pending == 0
    return out


def botocore_decode(data: bytes) -> list[tuple[dict, bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return [(m.headers, m.payload) for m in buffer]


def test_matches_botocore_on_a_converse_stream() -> None:
    data = b"".join(STREAM)
    ours = decode_all([data])
    assert ours == botocore_decode(data)
    assert [h.get(":event-type") for h, _ in ours][:2] == ["messageStart", "contentBlockDelta"]
    assert ours[-2][0][":exception-type"] == "throttlingException"
    assert ours[-1] == ({}, b"")


def test_every_header_type() -> None:
    [(headers, payload)] = decode_all([encode_message(ALL_TYPES, b"{}")])
    assert payload == b"{}"
    assert headers == {
        "t": True,
        "f": False,
        "byte": -7,
        "short": -300,
        "int": -70000,
        "long": 2**40 + 3,
        "bytes": b"\x00\xffraw",
        ":event-type": "contentBlockDelta",
        "when": int(WHEN.timestamp() * 1000),
        "id": ID,
    }
    # botocore reads the same values (it keeps UUIDs as raw bytes).
    [(theirs, _)] = botocore_decode(encode_message(ALL_TYPES, b"{}"))
    assert {**theirs, "id": uuid.UUID(bytes=theirs["id"])} == headers


def test_split_at_every_byte_boundary() -> None:
    data = b"".join(STREAM[:4]) + encode_message(ALL_TYPES, b'{"x": 1}')
    expected = decode_all([data])
    for cut in range(len(data) + 1):
        assert decode_all([data[:cut], data[cut:]]) == expected, cut


def test_byte_by_byte_and_three_way_splits() -> None:
    data = b"".join(STREAM)
    expected = decode_all([data])
    assert decode_all([data[i : i + 1] for i in range(len(data))]) == expected
    for a in range(0, len(data), 37):
        for b in range(a, len(data), 53):
            assert decode_all([data[:a], data[a:b], data[b:]]) == expected


@settings(max_examples=60, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    names=st.lists(st.text(min_size=1, max_size=20), min_size=0, max_size=4),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
)
def test_random_messages_random_reads(payloads: list[bytes], names: list[str], cuts: list[int]) -> None:
    headers = {n[:60]: n for n in names if len(n.encode()) < 200}
    data = b"".join(encode_message(headers, p) for p in payloads)
    points = sorted({min(c, len(data)) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert decode_all(pieces) == [(headers, p) for p in payloads]


def test_crc32_is_zlibs() -> None:
    blob = bytes(range(256)) * 9 + b"tail"
    for n in (0, 1, 7, 8, 9, 100, len(blob)):
        assert event_stream_crc32(blob[:n]) == zlib.crc32(blob[:n])
    assert event_stream_crc32(b"def", event_stream_crc32(b"abc")) == zlib.crc32(b"abcdef")


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("at", "fragment"),
    [(1, "prelude CRC"), (9, "prelude CRC"), (20, "message CRC"), (-1, "message CRC"), (-10, "message CRC")],
)
def test_corruption_is_detected_and_final(at: int, fragment: str) -> None:
    good = STREAM[1]
    decoder = EventStreamDecoder()
    assert len(decoder.feed(STREAM[0])) == 1
    with pytest.raises(EventStreamError, match=fragment):
        decoder.feed(flip(good, at % len(good)))
    with pytest.raises(EventStreamError):
        decoder.feed(STREAM[2])


def test_impossible_lengths_with_valid_prelude_crc() -> None:
    for total, headers_len in ((8, 0), (20, 10), (2**31, 0)):
        prelude = struct.pack(">II", total, headers_len)
        data = prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\x00" * 8
        with pytest.raises(EventStreamError, match="impossible lengths"):
            EventStreamDecoder().feed(data)


def test_malformed_headers_are_errors() -> None:
    for raw in (b"\x05ab", b"\x01a\x07\x00\x09abc", b"\x01a\x0e"):
        prelude = struct.pack(">II", 16 + len(raw), len(raw))
        message = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw
        message += struct.pack(">I", zlib.crc32(message))
        with pytest.raises(EventStreamError):
            EventStreamDecoder().feed(message)


def test_pending_counts_an_unfinished_message() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(STREAM[1][:30]) == []
    assert decoder.pending == 30
    assert len(decoder.feed(STREAM[1][30:])) == 1
    assert decoder.pending == 0
