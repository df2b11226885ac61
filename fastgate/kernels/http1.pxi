# Incremental HTTP/1.1 response parser for the upstream client (RFC 9112).
#
# Bytes in, body pieces out: the status line and header fields are parsed once, then the body is
# returned as it arrives, de-chunked. Message length (RFC 9112 §6.3): no body after HEAD or for
# 1xx/204/304; chunked Transfer-Encoding wins over Content-Length (and the connection is then not
# reused); Content-Length; otherwise the body runs to the close of the connection.

from cpython.unicode cimport (
    PyUnicode_DATA,
    PyUnicode_DecodeLatin1,
    PyUnicode_DecodeUTF8,
    PyUnicode_GET_LENGTH,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp, memcpy

cdef enum _State:
    S_HEAD = 0
    S_BODY_LENGTH = 1
    S_CHUNK_SIZE = 2
    S_CHUNK_DATA = 3
    S_CHUNK_DATA_END = 4
    S_TRAILERS = 5
    S_BODY_EOF = 6
    S_DONE = 7

cdef Py_ssize_t _MAX_HEAD = 64 * 1024
cdef Py_ssize_t _MAX_CHUNK_LINE = 4096


class HTTPParseError(ValueError):
    """The upstream sent something that is not valid HTTP/1.1."""


cdef inline Py_ssize_t _find_crlf(const char* p, Py_ssize_t start, Py_ssize_t n) noexcept:
    cdef const char* hit
    while start < n:
        hit = <const char*>memchr(p + start, b"\r", n - start)
        if hit == NULL:
            return -1
        start = hit - p
        if start + 1 < n and p[start + 1] == b"\n":
            return start
        if start + 1 >= n:
            return -1
        start += 1
    return -1


cdef inline Py_ssize_t _find_head_end(const char* p, Py_ssize_t start, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    while True:
        i = _find_crlf(p, start, n)
        if i < 0 or i + 3 >= n:
            return -1
        if p[i + 2] == b"\r" and p[i + 3] == b"\n":
            return i
        start = i + 2


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)


cdef inline Py_ssize_t _line_end(const char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    """Where the line at ``start`` ends (its CRLF, or the end of a head without its last CRLF);
    a bare CR or LF stays inside the line, for the caller to refuse or drop."""
    cdef Py_ssize_t i = _find_crlf(p, start, end)
    return end if i < 0 else i


cdef inline bint _is_ascii(const char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    while start < end:
        if <unsigned char>p[start] > 127:
            return False
        start += 1
    return True


# Field names every request or response carries, and the ones the parsers act on: each is
# returned as this one object (its hash computed once), so parsers compare them by identity.
cdef str H_HOST = "host"
cdef str H_CONTENT_LENGTH = "content-length"
cdef str H_CONTENT_TYPE = "content-type"
cdef str H_TRANSFER_ENCODING = "transfer-encoding"
cdef str H_CONNECTION = "connection"
cdef str H_EXPECT = "expect"
# Indexed by length: the few candidates a name of that length can be.
cdef list _KNOWN_BY_LENGTH = [() for _ in range(65)]
for _name in (
    H_HOST, H_CONTENT_LENGTH, H_CONTENT_TYPE, H_TRANSFER_ENCODING, H_CONNECTION, H_EXPECT,
    "authorization", "accept", "accept-encoding", "user-agent", "date", "server", "keep-alive",
    "x-request-id", "x-portkey-provider", "x-portkey-config", "x-portkey-api-key",
    "x-portkey-virtual-key", "x-portkey-custom-host", "x-portkey-trace-id", "x-portkey-metadata",
):
    _KNOWN_BY_LENGTH[len(_name)] += (_name,)


cdef inline str _header_name(const char* p, Py_ssize_t start, Py_ssize_t end):
    """A field name lower-cased (RFC 9110 §5.1: names are case-insensitive), made in one step
    from the bytes; a name with non-ASCII bytes keeps them (decoded like values)."""
    cdef char lowered[64]
    cdef Py_ssize_t i, n = end - start
    cdef char c
    cdef str known
    if n > 64 or not _is_ascii(p, start, end):
        return PyUnicode_DecodeUTF8(<char*>p + start, n, "surrogateescape").lower()
    for i in range(n):
        c = p[start + i]
        lowered[i] = c + 32 if b"A" <= c <= b"Z" else c
    for known in <tuple>_KNOWN_BY_LENGTH[n]:
        if memcmp(PyUnicode_DATA(known), lowered, n) == 0:
            return known
    return PyUnicode_DecodeLatin1(lowered, n, NULL)


cdef inline str _header_value(const char* p, Py_ssize_t start, Py_ssize_t end):
    """A field value without the SP/HTAB around it (RFC 9112 §5.1), decoded UTF-8 with
    surrogateescape so that, relayed, it goes out byte for byte."""
    while start < end and (p[start] == b" " or p[start] == b"\t"):
        start += 1
    while end > start and (p[end - 1] == b" " or p[end - 1] == b"\t"):
        end -= 1
    return PyUnicode_DecodeUTF8(<char*>p + start, end - start, "surrogateescape")


cdef inline Py_ssize_t _content_length(str value) noexcept:
    """Content-Length's digits (RFC 9110 §8.6), or -1 when it is not one; bounded to what fits."""
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(value), length = 0
    cdef const char* digits
    if n == 0 or n > 18 or not PyUnicode_IS_ASCII(value):
        return -1
    digits = <const char*>PyUnicode_DATA(value)
    for i in range(n):
        if not b"0" <= digits[i] <= b"9":
            return -1
        length = length * 10 + (digits[i] - 48)
    return length


cdef inline Py_ssize_t _chunk_size(const char* p, Py_ssize_t start, Py_ssize_t end) except -2:
    cdef Py_ssize_t size = 0, i = start, digits = 0
    cdef char c
    while i < end:
        c = p[i]
        if 48 <= c <= 57:  # 0-9
            size = size * 16 + (c - 48)
        elif 97 <= c <= 102:  # a-f
            size = size * 16 + (c - 87)
        elif 65 <= c <= 70:  # A-F
            size = size * 16 + (c - 55)
        elif c == b";" or c == b" " or c == b"\t":
            break  # chunk extensions (§7.1.1) are ignored
        else:
            raise HTTPParseError("invalid chunk size")
        digits += 1
        if digits > 15:
            raise HTTPParseError("chunk size too large")
        i += 1
    if digits == 0:
        raise HTTPParseError("empty chunk size")
    return size


cdef enum:
    _RANGES = 32  # body ranges noted per read before they are copied out


cdef bytes _joined(bytes buf, const char* p, Py_ssize_t* starts, Py_ssize_t* ends, int ranges):
    """The bytes of ``ranges`` ranges of ``buf``, in order, in one object (``buf`` itself when
    one range covers it)."""
    cdef Py_ssize_t total = 0, at = 0
    cdef int i
    cdef bytes out
    cdef char* dest
    if ranges == 1:
        if starts[0] == 0 and ends[0] == PyBytes_GET_SIZE(buf):
            return buf
        return PyBytes_FromStringAndSize(p + starts[0], ends[0] - starts[0])
    for i in range(ranges):
        total += ends[i] - starts[i]
    out = PyBytes_FromStringAndSize(NULL, total)
    dest = PyBytes_AS_STRING(out)
    for i in range(ranges):
        memcpy(dest + at, p + starts[i], ends[i] - starts[i])
        at += ends[i] - starts[i]
    return out


cdef class ResponseParser:
    """Parses one response at a time; ``reset()`` readies it for the next on a kept-alive connection.

    ``headers`` are ``(name, value)`` pairs with the names lower-cased (RFC 9110 §5.1).
    """

    cdef bytes _buf
    cdef _State _state
    cdef Py_ssize_t _remaining
    cdef bint _head_request
    cdef readonly int status
    cdef readonly str reason
    cdef readonly list headers
    cdef readonly bint head_done
    cdef readonly bint keep_alive
    cdef readonly object content_type

    def __cinit__(self):
        self._reset(False)

    cdef void _reset(self, bint head_request):
        self._buf = _EMPTY
        self._state = S_HEAD
        self._remaining = 0
        self._head_request = head_request
        self.status = 0
        self.reason = ""
        self.headers = []
        self.head_done = False
        self.keep_alive = True
        self.content_type = None

    def reset(self, bint head_request=False):
        self._reset(head_request)

    @property
    def done(self):
        return self._state == S_DONE

    @property
    def reads_to_eof(self):
        """The body ends when the connection closes (no length was given)."""
        return self._state == S_BODY_EOF

    @property
    def leftover(self):
        """Bytes received past the end of the response (a server that answered too much)."""
        return self._buf if self._state == S_DONE else _EMPTY

    def feed(self, bytes data):
        """Consume ``data`` and return the body pieces it completed (possibly none).

        The body bytes of one read come back as one piece, however many chunks carried them: the
        pieces are noted as ranges of the read and copied once, not sliced out one by one.
        """
        cdef list out = []
        cdef bytes buf = self._buf + data if self._buf else data
        cdef char* p
        cdef Py_ssize_t n, pos = 0, end, take, size
        cdef Py_ssize_t starts[_RANGES]
        cdef Py_ssize_t ends[_RANGES]
        cdef int ranges = 0
        self._buf = _EMPTY
        PyBytes_AsStringAndSize(buf, &p, &n)
        while pos < n and self._state != S_DONE:
            if self._state == S_HEAD:
                end = _find_head_end(p, pos, n)
                if end < 0:
                    if n - pos > _MAX_HEAD:
                        raise HTTPParseError("response head too large")
                    break
                self._parse_head(p, pos, end)
                pos = end + 4
            elif self._state == S_BODY_LENGTH:
                take = min(self._remaining, n - pos)
                starts[ranges] = pos
                ends[ranges] = pos + take
                ranges += 1
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = S_DONE
            elif self._state == S_BODY_EOF:
                starts[ranges] = pos
                ends[ranges] = n
                ranges += 1
                pos = n
            elif self._state == S_CHUNK_SIZE:
                end = _find_crlf(p, pos, n)
                if end < 0:
                    if n - pos > _MAX_CHUNK_LINE:
                        raise HTTPParseError("chunk size line too long")
                    break
                size = _chunk_size(p, pos, end)
                pos = end + 2
                if size == 0:
                    self._state = S_TRAILERS
                else:
                    self._remaining = size
                    self._state = S_CHUNK_DATA
            elif self._state == S_CHUNK_DATA:
                take = min(self._remaining, n - pos)
                starts[ranges] = pos
                ends[ranges] = pos + take
                ranges += 1
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = S_CHUNK_DATA_END
            elif self._state == S_CHUNK_DATA_END:
                if n - pos < 2:
                    break
                if p[pos] != b"\r" or p[pos + 1] != b"\n":
                    raise HTTPParseError("missing CRLF after chunk data")
                pos += 2
                self._state = S_CHUNK_SIZE
            elif self._state == S_TRAILERS:
                end = _find_crlf(p, pos, n)
                if end < 0:
                    if n - pos > _MAX_HEAD:
                        raise HTTPParseError("trailer section too large")
                    break
                if end == pos:
                    self._state = S_DONE
                pos = end + 2
            if ranges == _RANGES:
                out.append(_joined(buf, p, starts, ends, ranges))
                ranges = 0
        if ranges:
            out.append(_joined(buf, p, starts, ends, ranges))
        if pos < n:
            self._buf = PyBytes_FromStringAndSize(p + pos, n - pos)
        return out

    def feed_eof(self):
        """The connection closed: fine only where the body runs to the close."""
        if self._state == S_BODY_EOF:
            self._state = S_DONE
            return
        if self._state != S_DONE:
            raise HTTPParseError("connection closed before the response was complete")

    cdef void _parse_head(self, const char* p, Py_ssize_t pos, Py_ssize_t end) except *:
        """The status line and fields of ``p[pos:end]`` (the head without its final CRLF CRLF)."""
        cdef Py_ssize_t line_end = _line_end(p, pos, end), colon, size
        cdef Py_ssize_t length = -1
        cdef bint chunked = False, http10
        cdef const char* hit
        cdef str name, value, line
        cdef str connection = ""
        cdef list headers = []
        if (
            line_end - pos < 12
            or memcmp(p + pos, b"HTTP/1.", 7) != 0
            or p[pos + 8] != b" "
            or not (b"0" <= p[pos + 9] <= b"9" and b"0" <= p[pos + 10] <= b"9" and b"0" <= p[pos + 11] <= b"9")
        ):
            line = PyUnicode_DecodeUTF8(<char*>p + pos, min(line_end - pos, 40), "surrogateescape")
            raise HTTPParseError(f"invalid status line {line!r}")
        self.status = (p[pos + 9] - 48) * 100 + (p[pos + 10] - 48) * 10 + (p[pos + 11] - 48)
        self.reason = _header_value(p, pos + 13, line_end) if line_end - pos > 13 else ""
        http10 = p[pos + 7] == b"0"
        pos = line_end + 2
        while pos < end:
            line_end = _line_end(p, pos, end)
            hit = <const char*>memchr(p + pos, b":", line_end - pos)
            if hit == NULL or hit == p + pos or (hit - 1)[0] == b" " or (hit - 1)[0] == b"\t":
                raise HTTPParseError("invalid header line")
            colon = hit - p
            name = _header_name(p, pos, colon)
            value = _header_value(p, colon + 1, line_end)
            headers.append((name, value))
            pos = line_end + 2
            if name is H_CONTENT_LENGTH:
                size = _content_length(value)
                if size < 0 or (length >= 0 and length != size):
                    raise HTTPParseError("invalid Content-Length")
                length = size
            elif name is H_TRANSFER_ENCODING:
                chunked = value.lower().endswith("chunked")
            elif name is H_CONNECTION:
                connection = value.lower()
            elif name is H_CONTENT_TYPE:
                self.content_type = value
        if 100 <= self.status < 200:
            # An interim response (100 Continue, 103 Early Hints): the real one follows.
            self.headers = []
            self.content_type = None
            return
        self.headers = headers
        self.head_done = True
        if http10:
            self.keep_alive = "keep-alive" in connection  # HTTP/1.0: close unless asked
        else:
            self.keep_alive = "close" not in connection
        if self._head_request or self.status == 204 or self.status == 304:
            self._state = S_DONE
        elif chunked:
            self._state = S_CHUNK_SIZE
            if length >= 0:
                self.keep_alive = False
        elif length >= 0:
            self._remaining = length
            self._state = S_BODY_LENGTH if length else S_DONE
        else:
            self._state = S_BODY_EOF
            self.keep_alive = False
