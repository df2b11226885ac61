# Incremental HTTP/1.1 response parser for the upstream client (RFC 9112).
#
# Bytes in, body pieces out: the status line and header fields are parsed once, then the body is
# returned as it arrives, de-chunked. Message length (RFC 9112 §6.3): no body after HEAD or for
# 1xx/204/304; chunked Transfer-Encoding wins over Content-Length (and the connection is then not
# reused); Content-Length; otherwise the body runs to the close of the connection.

from libc.string cimport memchr

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
        """Consume ``data`` and return the body pieces it completed (possibly none)."""
        cdef list out = []
        cdef bytes buf = self._buf + data if self._buf else data
        cdef char* p
        cdef Py_ssize_t n, pos = 0, end, take, size
        self._buf = _EMPTY
        PyBytes_AsStringAndSize(buf, &p, &n)
        while pos < n and self._state != S_DONE:
            if self._state == S_HEAD:
                end = _find_head_end(p, pos, n)
                if end < 0:
                    if n - pos > _MAX_HEAD:
                        raise HTTPParseError("response head too large")
                    break
                self._parse_head(buf[pos:end])
                pos = end + 4
            elif self._state == S_BODY_LENGTH:
                take = min(self._remaining, n - pos)
                out.append(buf if (pos == 0 and take == n) else buf[pos:pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = S_DONE
            elif self._state == S_BODY_EOF:
                out.append(buf if pos == 0 else buf[pos:])
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
                out.append(buf[pos:pos + take])
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
        if pos < n:
            self._buf = buf[pos:]
        return out

    def feed_eof(self):
        """The connection closed: fine only where the body runs to the close."""
        if self._state == S_BODY_EOF:
            self._state = S_DONE
            return
        if self._state != S_DONE:
            raise HTTPParseError("connection closed before the response was complete")

    cdef void _parse_head(self, bytes head) except *:
        # UTF-8 with surrogateescape, as the request side: relayed, a value goes out byte for byte.
        cdef list lines = head.decode("utf-8", "surrogateescape").split("\r\n")
        cdef str status_line = lines[0], line
        cdef str name, value, lower
        cdef object length = None
        cdef bint chunked = False
        cdef str connection = ""
        if not status_line.startswith("HTTP/1.") or len(status_line) < 12 or status_line[8] != " ":
            raise HTTPParseError(f"invalid status line {status_line[:40]!r}")
        try:
            self.status = int(status_line[9:12])
        except ValueError:
            raise HTTPParseError(f"invalid status line {status_line[:40]!r}") from None
        self.reason = status_line[13:]
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep or not name or name[-1] in " \t":
                raise HTTPParseError("invalid header line")
            value = value.strip(" \t")
            lower = name.lower()
            headers.append((lower, value))
            if lower == "content-length":
                if not value.isdigit() or (length is not None and length != int(value)):
                    raise HTTPParseError("invalid Content-Length")
                length = int(value)
            elif lower == "transfer-encoding":
                chunked = value.lower().endswith("chunked")
            elif lower == "connection":
                connection = value.lower()
            elif lower == "content-type":
                self.content_type = value
        if 100 <= self.status < 200:
            # An interim response (100 Continue, 103 Early Hints): the real one follows.
            self.headers = []
            self.content_type = None
            return
        self.headers = headers
        self.head_done = True
        if status_line[7] == "0":
            self.keep_alive = "keep-alive" in connection  # HTTP/1.0: close unless asked
        else:
            self.keep_alive = "close" not in connection
        if self._head_request or self.status == 204 or self.status == 304:
            self._state = S_DONE
        elif chunked:
            self._state = S_CHUNK_SIZE
            if length is not None:
                self.keep_alive = False
        elif length is not None:
            self._remaining = length
            self._state = S_BODY_LENGTH if length else S_DONE
        else:
            self._state = S_BODY_EOF
            self.keep_alive = False
