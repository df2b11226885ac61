# AWS event-stream decoder (content type application/vnd.amazon.eventstream), the binary framing
# of Bedrock's ConverseStream and InvokeModelWithResponseStream answers.
#
# Message layout (AWS "Event stream encoding", Transcribe/S3 Select/Bedrock docs; botocore's
# eventstream.py reads the same), all integers big-endian:
#   total length u32 | headers length u32 | prelude CRC u32 (CRC32 of the 8 bytes before)
#   headers ... | payload ... | message CRC u32 (CRC32 of everything before it, prelude included)
# A header is: name length u8, name (UTF-8), value type u8, value; the types are
#   0 true, 1 false, 2 byte i8, 3 short i16, 4 integer i32, 5 long i64,
#   6 byte array (u16 length + bytes), 7 string (u16 length + UTF-8),
#   8 timestamp (i64 milliseconds since the epoch), 9 UUID (16 bytes).
# Network reads split messages anywhere; unfinished bytes wait, as pieces, until the message
# they belong to is complete, so a large message split into many reads is copied once.

from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint32_t, uint64_t

import uuid as _es_uuid

cdef Py_ssize_t _ES_PRELUDE = 12
# botocore's limits, the service's own: 128 KiB of headers, 24 MiB of payload.
cdef Py_ssize_t _ES_MAX_HEADERS = 128 * 1024
cdef Py_ssize_t _ES_MAX_MESSAGE = 16 + 128 * 1024 + 24 * 1024 * 1024
# Header blocks remembered per decoder (a Converse stream has about ten distinct ones).
cdef Py_ssize_t _ES_CACHED_HEADERS_MAX = 256
cdef Py_ssize_t _ES_CACHED_HEADER_BLOCKS = 32

# CRC32 (ISO-HDLC, the zlib polynomial), slice-by-8: eight 256-entry tables, built once.
cdef uint32_t _ES_CRC[8][256]


cdef void _es_crc_tables() noexcept:
    cdef uint32_t c
    cdef int i, k
    for i in range(256):
        c = <uint32_t>i
        for k in range(8):
            c = (c >> 1) ^ (0xEDB88320 if c & 1 else 0)
        _ES_CRC[0][i] = c
    for i in range(256):
        c = _ES_CRC[0][i]
        for k in range(1, 8):
            c = _ES_CRC[0][c & 0xFF] ^ (c >> 8)
            _ES_CRC[k][i] = c


_es_crc_tables()


cdef inline uint32_t _es_le32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0]) | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef inline uint32_t _es_be32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | (<uint32_t>p[3])


cdef inline uint64_t _es_be64(const unsigned char* p) noexcept nogil:
    return (<uint64_t>_es_be32(p) << 32) | <uint64_t>_es_be32(p + 4)


cdef uint32_t _es_crc32(uint32_t crc, const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef uint32_t one, two
    crc = ~crc
    while n >= 8:
        one = _es_le32(p) ^ crc
        two = _es_le32(p + 4)
        crc = (_ES_CRC[7][one & 0xFF] ^ _ES_CRC[6][(one >> 8) & 0xFF] ^ _ES_CRC[5][(one >> 16) & 0xFF]
               ^ _ES_CRC[4][one >> 24] ^ _ES_CRC[3][two & 0xFF] ^ _ES_CRC[2][(two >> 8) & 0xFF]
               ^ _ES_CRC[1][(two >> 16) & 0xFF] ^ _ES_CRC[0][two >> 24])
        p += 8
        n -= 8
    while n > 0:
        crc = _ES_CRC[0][(crc ^ p[0]) & 0xFF] ^ (crc >> 8)
        p += 1
        n -= 1
    return ~crc


def event_stream_crc32(bytes data, uint32_t crc=0):
    """CRC32 as ``zlib.event_stream_crc32`` computes it (exposed for tests and the benchmark)."""
    cdef char* p
    cdef Py_ssize_t n
    PyBytes_AsStringAndSize(data, &p, &n)
    return _es_crc32(crc, <const unsigned char*>p, n)


class EventStreamError(ValueError):
    """A corrupted or malformed event-stream message: the stream cannot be trusted past it."""


cdef inline void _es_need(Py_ssize_t pos, Py_ssize_t size, Py_ssize_t end) except *:
    if pos + size > end:
        raise EventStreamError("event-stream header runs past the header section")


cdef dict _es_parse_headers(const unsigned char* p, Py_ssize_t pos, Py_ssize_t end):
    cdef dict headers = {}
    cdef Py_ssize_t name_len, value_len
    cdef unsigned char kind
    cdef object value
    while pos < end:
        name_len = p[pos]
        pos += 1
        _es_need(pos, name_len + 1, end)
        name = (<const char*>p)[pos:pos + name_len].decode("utf-8")
        pos += name_len
        kind = p[pos]
        pos += 1
        if kind == 0:
            value = True
        elif kind == 1:
            value = False
        elif kind == 2:
            _es_need(pos, 1, end)
            value = <int8_t>p[pos]
            pos += 1
        elif kind == 3:
            _es_need(pos, 2, end)
            value = <int16_t>((<uint32_t>p[pos] << 8) | p[pos + 1])
            pos += 2
        elif kind == 4:
            _es_need(pos, 4, end)
            value = <int32_t>_es_be32(p + pos)
            pos += 4
        elif kind == 5 or kind == 8:
            # A timestamp is a long counting milliseconds since the epoch; kept as that int.
            _es_need(pos, 8, end)
            value = <int64_t>_es_be64(p + pos)
            pos += 8
        elif kind == 6 or kind == 7:
            _es_need(pos, 2, end)
            value_len = (<Py_ssize_t>p[pos] << 8) | p[pos + 1]
            pos += 2
            _es_need(pos, value_len, end)
            value = (<const char*>p)[pos:pos + value_len]
            if kind == 7:
                value = value.decode("utf-8")
            pos += value_len
        elif kind == 9:
            _es_need(pos, 16, end)
            value = _es_uuid.UUID(bytes=(<const char*>p)[pos:pos + 16])
            pos += 16
        else:
            raise EventStreamError(f"event-stream header {name!r} has unknown value type {kind}")
        headers[name] = value
    return headers


cdef class EventStreamDecoder:
    """Incremental decoder: ``feed(bytes)`` → ``[(headers, payload), ...]`` for each complete message.

    Header dicts are shared between messages with identical header blocks: read them, don't
    change them. Both CRCs are checked before a message is handed out; a mismatch, an impossible length or a
    malformed header raises :class:`EventStreamError`, and the decoder stays failed (what follows
    a corrupted length cannot be framed).
    """

    cdef list _pieces
    cdef Py_ssize_t _buffered
    # Bytes the next message needs before it can be parsed: the prelude, then its total length.
    cdef Py_ssize_t _wanted
    cdef object _failure
    cdef dict _known

    def __cinit__(self):
        self._known = {}
        self._pieces = []
        self._buffered = 0
        self._wanted = _ES_PRELUDE
        self._failure = None

    @property
    def pending(self):
        """Bytes of an unfinished message held back (non-zero at the end means truncation)."""
        return self._buffered

    def feed(self, bytes chunk):
        if self._failure is not None:
            raise EventStreamError(self._failure)
        cdef Py_ssize_t size = len(chunk)
        if size == 0:
            return []
        if self._buffered:
            self._pieces.append(chunk)
            self._buffered += size
            if self._buffered < self._wanted:
                return []
            chunk = b"".join(self._pieces)
            self._pieces = []
            self._buffered = 0
        try:
            return self._parse(chunk)
        except EventStreamError as exc:
            self._failure = str(exc)
            self._pieces = []
            self._buffered = 0
            raise

    cdef dict _headers(self, char* raw, Py_ssize_t start, Py_ssize_t size):
        # A stream repeats a handful of header blocks (``:event-type contentBlockDelta`` ...):
        # parsed once each and shared, so callers must treat the dicts as read-only.
        if size > _ES_CACHED_HEADERS_MAX:
            return _es_parse_headers(<const unsigned char*>raw, start, start + size)
        key = raw[start:start + size]
        headers = self._known.get(key)
        if headers is None:
            headers = _es_parse_headers(<const unsigned char*>raw, start, start + size)
            if len(self._known) < _ES_CACHED_HEADER_BLOCKS:
                self._known[key] = headers
        return <dict>headers

    @property
    def failure(self):
        """Why the stream broke, once it did (messages before the bad one were still handed out)."""
        return self._failure

    cdef list _parse(self, bytes buf):
        cdef list out = []
        try:
            self._parse_into(buf, out)
        except EventStreamError as exc:
            if not out:
                raise
            # The good messages ahead of the bad one go out first; the next feed raises.
            self._failure = str(exc)
            self._pieces = []
            self._buffered = 0
        return out

    cdef void _parse_into(self, bytes buf, list out) except *:
        cdef char* raw
        cdef Py_ssize_t n, pos = 0, total, headers_len, payload_end
        cdef const unsigned char* p
        cdef const unsigned char* m
        cdef uint32_t prelude_crc
        PyBytes_AsStringAndSize(buf, &raw, &n)
        p = <const unsigned char*>raw
        while n - pos >= _ES_PRELUDE:
            m = p + pos
            total = _es_be32(m)
            headers_len = _es_be32(m + 4)
            prelude_crc = _es_crc32(0, m, 8)
            if prelude_crc != _es_be32(m + 8):
                raise EventStreamError(
                    f"event-stream prelude CRC mismatch (computed {prelude_crc:#010x}, "
                    f"message says {_es_be32(m + 8):#010x})")
            if total < _ES_PRELUDE + 4 or total > _ES_MAX_MESSAGE or headers_len > _ES_MAX_HEADERS \
                    or headers_len > total - _ES_PRELUDE - 4:
                raise EventStreamError(
                    f"event-stream message has impossible lengths (total {total}, headers {headers_len})")
            if n - pos < total:
                break
            if _es_crc32(prelude_crc, m + 8, total - 12) != _es_be32(m + total - 4):
                raise EventStreamError("event-stream message CRC mismatch: the message is corrupted")
            payload_end = pos + total - 4
            headers = self._headers(raw, pos + _ES_PRELUDE, headers_len)
            out.append((headers, raw[pos + _ES_PRELUDE + headers_len:payload_end]))
            pos += total
        if pos < n:
            self._pieces.append(buf[pos:] if pos else buf)
            self._buffered = n - pos
            self._wanted = _es_be32(p + pos) if n - pos >= _ES_PRELUDE else _ES_PRELUDE
        else:
            self._wanted = _ES_PRELUDE
