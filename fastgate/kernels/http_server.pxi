# The server side of HTTP/1.1 (RFC 9112): the client's request parsed, the response head written
# (and, with the same writer, the upstream client's request head).
#
# Strict where leniency lets a request mean two things to two parsers (request smuggling): bare CR
# or LF, obs-fold, control bytes, whitespace before a colon, Content-Length with Transfer-Encoding,
# differing Content-Lengths, a Transfer-Encoding other than chunked, an HTTP/1.1 request without
# Host, a chunk line other than hex digits and well-formed extensions, control bytes in chunk
# extensions or trailers are all refused; bytes that can never become a valid head are refused as
# they arrive, not when the head ends. Limits: one header line 8190 bytes, 128 fields, a 64 KiB
# head (trailers alike), a body of ``max_body`` bytes (413). The grammar is in http_syntax.pxi.
#
# An upload route's body (a POST to a path in ``uploads``) is streamed rather than collected: the
# request is complete for the server once its head is (``streams_body``), each ``feed`` leaves the
# body bytes it parsed for ``take_piece``, and the limit is ``max_upload`` instead of ``max_body``.
#
# What a client sends slowly or in small pieces costs time and memory in proportion to its size:
# an unfinished head is checked once, as it arrives (``_Scan``); unparsed bytes wait in one buffer
# appended to in place; a body split over reads or chunks is collected in one ``BodyBuffer``.

from http import HTTPStatus as _HTTPStatus

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_SetDefault
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.string cimport memcpy

cdef str _method(const char* p, Py_ssize_t n):
    """The request method; the common ones as the module's own constants (no new object)."""
    if n == 4 and memcmp(p, b"POST", 4) == 0:
        return "POST"
    if n == 3 and memcmp(p, b"GET", 3) == 0:
        return "GET"
    return PyUnicode_DecodeLatin1(<char*>p, n, NULL)


class RequestRefused(ValueError):
    """The client's request cannot be served; ``status`` says why (400, 413, 431, 501, 505)."""

    def __init__(self, int status, str message):
        super().__init__(message)
        self.status = status
        self.message = message


cdef inline bint _is_token(str s) noexcept:
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(s)
    cdef const unsigned char* data
    if n == 0 or not PyUnicode_IS_ASCII(s):
        return False
    data = <const unsigned char*>PyUnicode_DATA(s)
    for i in range(n):
        if not _IS_TCHAR[data[i]]:
            return False
    return True


cdef inline bint _is_field_value(str s) noexcept:
    """No control character but HTAB (RFC 9110 §5.5): nothing that could end a line."""
    cdef Py_UCS4 c
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(s)
    cdef const unsigned char* data
    if PyUnicode_IS_ASCII(s):
        data = <const unsigned char*>PyUnicode_DATA(s)
        for i in range(n):
            if (data[i] < 32 and data[i] != 9) or data[i] == 127:
                return False
        return True
    for c in s:
        if (c < 32 and c != 9) or c == 127:
            return False
    return True


cdef str _origin_form(str target):
    """The path and query of an absolute-form target, which a server must accept (RFC 9112
    §3.2.2); its authority replaces Host, which the gateway does not read. Authority-form is for
    CONNECT, which the gateway does not serve: any other form is refused."""
    cdef str lower = target[:8].lower()
    cdef Py_ssize_t start, end
    if lower.startswith("http://"):
        start = 7
    elif lower.startswith("https://"):
        start = 8
    else:
        raise RequestRefused(400, "Invalid request target")
    end = start
    while end < len(target) and target[end] not in "/?":
        end += 1
    if end == start:
        raise RequestRefused(400, "Invalid request target: no authority")
    if end == len(target):
        return "/"
    return target[end:] if target[end] == "/" else "/" + target[end:]


cdef object _scan_refusal(Py_ssize_t code, bint head):
    if code == _SCAN_BAD_BYTE:
        return RequestRefused(400, "A control byte, or a bare CR or LF, in the request")
    if head:
        return RequestRefused(431, "A request header line is too long")
    return RequestRefused(400, "A chunk size line is too long")


cdef class RequestParser:
    """One request at a time from a connection's bytes; ``reset()`` readies the next (pipelining).

    ``feed`` returns True once the current request is complete: ``method``, ``target``,
    ``headers`` (names lower-cased, repeated fields joined with ", ") and ``body`` are then set.
    Bytes past it stay buffered until ``reset()`` and the next ``feed``.
    """

    # Bytes received and not yet parsed (None: none): an unfinished head or chunk line, or the
    # requests pipelined after this one, parsed in place one after another. A read is parsed where
    # it lies when nothing is waiting; what it leaves is appended to, and trimmed, in place.
    cdef bytearray _pending
    cdef _Scan _scan
    cdef _State _state
    cdef Py_ssize_t _remaining
    cdef Py_ssize_t _max_body
    #: The Content-Length being read, or -1 for a chunked body.
    cdef Py_ssize_t _length
    cdef Py_ssize_t _body_size
    cdef Py_ssize_t _trailer_size
    cdef Py_ssize_t _trailer_count
    #: A body that came in more than one piece (a streamed one: the bytes of the last feeds).
    cdef BodyBuffer _body
    #: The largest body of this request: ``_max_body``, or ``_max_upload`` when it is streamed.
    cdef Py_ssize_t _limit
    cdef Py_ssize_t _max_upload
    #: Upload routes: exact paths, and (prefix, suffix) pairs for the paths with a parameter.
    cdef frozenset _upload_paths
    cdef tuple _upload_patterns
    #: This request's body is streamed (an upload route): taken piece by piece (``take_piece``).
    cdef readonly bint streams_body
    #: The Content-Length of the body being read, -1 when chunked.
    cdef readonly Py_ssize_t body_length
    #: The read being parsed when nothing was pending before it (else None), and a streamed
    #: body's piece that is the whole of a read, handed on without a copy.
    cdef bytes _read
    cdef bytes _whole
    cdef readonly str method
    cdef readonly str target
    cdef readonly dict headers
    cdef readonly bytes body
    cdef readonly bint keep_alive
    #: The client speaks HTTP/1.0: no chunked answers, and keep-alive only when it asked.
    cdef readonly bint http10
    cdef readonly bint expect_continue
    cdef readonly bint head_done

    def __cinit__(self, Py_ssize_t max_body, Py_ssize_t max_upload=0, uploads=None):
        self._max_body = max_body
        self._max_upload = max_upload
        self._upload_paths, self._upload_patterns = uploads if uploads is not None else (frozenset(), ())
        self._pending = None
        self._read = self._whole = None
        self._body = BodyBuffer()
        self._reset()

    cdef void _reset(self):
        self._scan.checked = self._scan.line = 0
        self._state = S_HEAD
        self._remaining = 0
        self._length = -1
        self._body_size = 0
        self._trailer_size = 0
        self._trailer_count = 0
        self._limit = self._max_body
        self.streams_body = False
        self.body_length = -1
        self.method = ""
        self.target = ""
        self.headers = None
        self.body = _EMPTY
        self.keep_alive = True
        self.http10 = False
        self.expect_continue = False
        self.head_done = False

    def reset(self):
        if self.streams_body:
            self._body.take_bytes()  # what an abandoned upload left
            self._whole = None
        self._reset()

    def take_pending(self):
        """The bytes received past the request and not parsed (a connection that changes
        protocol hands them to the next one)."""
        cdef bytearray pending = self._pending
        self._pending = None
        return _EMPTY if pending is None else bytes(pending)

    def take_piece(self):
        """The bytes of a streamed body parsed since the last call, as one piece (b"": none)."""
        cdef bytes whole = self._whole
        if whole is not None:
            self._whole = None
            return whole
        return self._body.take_bytes()

    @property
    def buffered(self):
        """Bytes received and not yet parsed (the start of a pipelined request, say)."""
        return 0 if self._pending is None else len(self._pending)

    @property
    def started(self):
        """Some of a request has arrived (its head or body is incomplete)."""
        return self.head_done or self._pending is not None

    def feed(self, bytes data):
        cdef bytearray pending = self._pending
        cdef char* p
        cdef Py_ssize_t n, pos = 0
        _scanned_bytes(pending, data, &p, &n)
        if self._state != S_DONE:  # else a pipelined request: kept, parsed after reset()
            self._read = data if pending is None else None
            try:
                pos = self._parse(p, n)
            finally:
                self._read = None
        self._pending = _unfinished(pending, p, pos, n)
        return self._state == S_DONE

    cdef Py_ssize_t _parse(self, const char* p, Py_ssize_t n) except -1:
        """Parses ``p[:n]`` as far as it goes; returns where it stopped."""
        cdef Py_ssize_t pos = 0, end, take, size
        cdef const char* error = NULL
        while pos < n and self._state != S_DONE:
            if self._state == S_HEAD:
                if self._scan.checked == 0:
                    while pos + 1 < n and p[pos] == b"\r" and p[pos + 1] == b"\n":
                        pos += 2  # empty lines before a request line are ignored (RFC 9112 §2.2)
                    if pos == n:
                        break
                end = _scan_lines(p, pos, n, &self._scan, True, _MAX_LINE)
                if end == _SCAN_MORE:
                    if n - pos > _MAX_HEAD + 3:  # the end marker may be partly here
                        raise RequestRefused(431, "The request head is too large")
                    break
                if end < 0:
                    raise _scan_refusal(end, True)
                if end - 2 - pos > _MAX_HEAD:
                    raise RequestRefused(431, "The request head is too large")
                self._scan.checked = self._scan.line = 0
                self._parse_head(p, pos, end - 2)
                pos = end + 2
            elif self._state == S_BODY_LENGTH:
                take = min(self._remaining, n - pos)
                if self.streams_body:
                    if take == n and self._read is not None and self._body._size == 0 and self._whole is None:
                        self._whole = self._read  # the whole read is body: passed on as it is
                    else:
                        if self._whole is not None:  # keep the pieces in order
                            self._body.put(PyBytes_AS_STRING(self._whole), PyBytes_GET_SIZE(self._whole), -1)
                            self._whole = None
                        self._body.put(p + pos, take, take if self._body._size == 0 else -1)
                elif take == self._remaining and self._body._size == 0:
                    self.body = _slice(p, pos, pos + take)  # all of it in this read
                else:
                    self._body.put(p + pos, take, self._length)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    if self._body._size and not self.streams_body:
                        self.body = self._body.take_bytes()
                    self._state = S_DONE
            elif self._state == S_CHUNK_SIZE:
                end = _scan_lines(p, pos, n, &self._scan, False, _MAX_CHUNK_LINE)
                if end == _SCAN_MORE:
                    break
                if end < 0:
                    raise _scan_refusal(end, False)
                self._scan.checked = self._scan.line = 0
                size = _chunk_line(p, pos, end, &error)
                if size < 0:
                    raise RequestRefused(400, f"Invalid chunked body: {error.decode('ascii')}")
                if self._body_size + size > self._limit:
                    raise RequestRefused(413, "Request body is too large")
                self._body_size += size
                pos = end + 2
                if size == 0:
                    self._state = S_TRAILERS
                else:
                    self._remaining = size
                    self._state = S_CHUNK_DATA
            elif self._state == S_CHUNK_DATA:
                take = min(self._remaining, n - pos)
                self._body.put(p + pos, take, -1 if self.streams_body else self._max_body)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._state = S_CHUNK_DATA_END
            elif self._state == S_CHUNK_DATA_END:
                if p[pos] != b"\r" or (n - pos > 1 and p[pos + 1] != b"\n"):
                    raise RequestRefused(400, "Invalid chunked body: no CRLF after chunk data")
                if n - pos < 2:
                    break
                pos += 2
                self._state = S_CHUNK_SIZE
            elif self._state == S_TRAILERS:
                # Trailers are read and dropped, within the limits of a head.
                end = _scan_lines(p, pos, n, &self._scan, False, _MAX_LINE)
                if end == _SCAN_MORE:
                    break
                if end < 0:
                    raise _scan_refusal(end, True)
                self._scan.checked = self._scan.line = 0
                if end == pos:
                    if not self.streams_body:
                        self.body = self._body.take_bytes()
                    self._state = S_DONE
                elif _field_name_end(p, pos, end) < 0:
                    raise RequestRefused(400, "Invalid chunked body: invalid trailer line")
                else:
                    self._trailer_size += end + 2 - pos
                    self._trailer_count += 1
                    if self._trailer_size > _MAX_HEAD or self._trailer_count > _MAX_FIELDS:
                        raise RequestRefused(431, "The request trailers are too large")
                pos = end + 2
        return pos

    cdef void _parse_head(self, const char* p, Py_ssize_t pos, Py_ssize_t end) except *:
        """The request line and fields of ``p[pos:end]`` (the head without its final CRLF CRLF),
        which ``_scan_lines`` passed: its only control bytes are HTAB and CRLF line ends."""
        cdef Py_ssize_t line_end = _line_end(p, pos, end), sp1, sp2, i, colon, before, fields = 0
        cdef str name, value, previous, version
        cdef dict headers = {}
        cdef Py_ssize_t length = -1
        cdef int connection = 0
        cdef bint chunked = False, has_te = False, http10 = False
        sp1 = pos
        while sp1 < line_end and p[sp1] != b" ":
            sp1 += 1
        sp2 = line_end - 1
        while sp2 > sp1 and p[sp2] != b" ":
            sp2 -= 1
        if sp1 == pos or sp1 == line_end or sp2 <= sp1 + 1:
            raise RequestRefused(400, "Invalid request line")
        for i in range(pos, sp1):
            if not _IS_TCHAR[<unsigned char>p[i]]:
                raise RequestRefused(400, "Invalid request line")
        for i in range(sp1 + 1, sp2):
            if p[i] == b" " or p[i] == b"\t":
                raise RequestRefused(400, "Invalid request line")
            if <unsigned char>p[i] > 127 or p[i] == b"#":
                # A URI is ASCII (RFC 3986 §2): anything else comes percent-encoded; a fragment is
                # the client's own and never sent (RFC 9112 §3.2).
                raise RequestRefused(400, "Invalid request target: raw non-ASCII bytes or a fragment")
        self.method = _method(p + pos, sp1 - pos)
        self.target = PyUnicode_DecodeLatin1(<char*>p + sp1 + 1, sp2 - sp1 - 1, NULL)
        if p[sp1 + 1] != b"/" and self.target != "*":
            self.target = _origin_form(self.target)
        if line_end - sp2 - 1 == 8 and memcmp(p + sp2 + 1, b"HTTP/1.", 7) == 0 and b"0" <= p[sp2 + 8] <= b"9":
            # A later 1.x is served as 1.1, the highest minor version implemented (RFC 9110 §2.5).
            http10 = p[sp2 + 8] == b"0"
            self.http10 = http10
        else:
            version = PyUnicode_DecodeUTF8(<char*>p + sp2 + 1, line_end - sp2 - 1, "surrogateescape")
            if version.startswith("HTTP/"):
                raise RequestRefused(505, f"HTTP version {version[5:]!r} is not supported: use HTTP/1.1")
            raise RequestRefused(400, "Invalid request line")
        i = line_end
        while i < end:
            fields += 1
            i = _line_end(p, i + 2, end)
        if fields > _MAX_FIELDS:
            raise RequestRefused(431, "The request has too many header fields")
        pos = line_end + 2
        while pos < end:
            line_end = _line_end(p, pos, end)
            colon = _field_name_end(p, pos, line_end)
            if colon < 0:
                # Includes obs-fold (a line starting with whitespace): refused, RFC 9112 §5.2.
                raise RequestRefused(400, "Invalid request header line")
            name = _header_name(p, pos, colon)
            value = _header_value(p, colon + 1, line_end)
            pos = line_end + 2
            # One lookup for a new field: it was new when the dict grew (not when the value came
            # back: one-character and empty strings are shared objects).
            before = len(headers)
            previous = <str>PyDict_SetDefault(headers, name, value)
            if len(headers) > before:
                pass
            elif name is H_CONTENT_LENGTH:
                if previous != value:
                    raise RequestRefused(400, "Conflicting Content-Length headers")
                continue
            elif name is H_HOST:
                raise RequestRefused(400, "More than one Host header")
            else:
                headers[name] = previous + ", " + value
            if name is H_CONTENT_LENGTH:
                length = _content_length(value)
                if length < 0:
                    raise RequestRefused(400, "Invalid Content-Length")
            elif name is H_TRANSFER_ENCODING:
                has_te = True
            elif name is H_CONNECTION:
                connection |= _connection_options(p, colon + 1, line_end)
            elif name is H_EXPECT:
                # An HTTP/1.0 client cannot know 100 Continue: ignored (RFC 9110 §10.1.1).
                self.expect_continue = not http10 and value.lower() == "100-continue"
        if not http10 and H_HOST not in headers:
            raise RequestRefused(400, "An HTTP/1.1 request must have a Host header")  # RFC 9112 §3.2
        # Every Connection field is a list of options, and a close in any one ends the connection
        # after the answer (RFC 9112 §9.6); HTTP/1.0 closes unless asked to keep alive (§9.3).
        if connection & _CONN_CLOSE:
            self.keep_alive = False
        else:
            self.keep_alive = not http10 or connection & _CONN_KEEP_ALIVE != 0
        if has_te:
            if headers["transfer-encoding"].lower() != "chunked":
                raise RequestRefused(501, "Only the chunked transfer coding is supported")
            if length >= 0:
                raise RequestRefused(400, "Both Content-Length and Transfer-Encoding were sent")
            chunked = True
            if http10:
                # An HTTP/1.0 recipient may not know chunked: its framing is suspect, so the
                # connection closes after the answer (RFC 9112 §6.1).
                self.keep_alive = False
        self.headers = headers
        self.head_done = True
        if (chunked or length > 0) and self._max_upload and self._is_upload():
            self.streams_body = True
            self._limit = self._max_upload
        if chunked:
            self._state = S_CHUNK_SIZE
        elif length > 0:
            if length > self._limit:
                raise RequestRefused(413, "Request body is too large")
            self._remaining = self._length = self.body_length = length
            self._state = S_BODY_LENGTH
        else:
            self._state = S_DONE

    cdef bint _is_upload(self):
        """A POST to an upload route: its body is streamed."""
        cdef str path = self.target
        cdef Py_ssize_t query
        cdef tuple pattern
        if self.method != "POST":
            return False
        query = path.find("?")
        if query >= 0:
            path = path[:query]
        if path in self._upload_paths:
            return True
        for pattern in self._upload_patterns:
            if (
                len(path) > len(pattern[0]) + len(pattern[1])
                and path.startswith(pattern[0]) and path.endswith(pattern[1])
            ):
                return True
        return False


cdef dict _STATUS_LINES = {}


cdef bytes _status_line(int status):
    cdef bytes line = _STATUS_LINES.get(status)
    if line is None:
        try:
            reason = _HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        line = f"HTTP/1.1 {status} {reason}\r\n".encode("ascii")
        _STATUS_LINES[status] = line
    return line


def response_head(
    int status, dict headers, str content_type, Py_ssize_t length, bint keep_alive, bytes date,
    bint http10=False,
):
    """The status line and header block of a response, in one bytes object.

    ``length`` >= 0 is sent as Content-Length; -1 means a chunked body, -2 a body that ends when
    the connection closes (HTTP/1.0 has no chunked coding). An HTTP/1.0 client kept alive is
    told so (it assumes a close otherwise). A header (Content-Type
    included) whose name is not a token or whose value holds a control character is dropped:
    relayed from an upstream, a bare CR or LF would split the response for a lenient client, and
    any other would make a strict one (h11, under the OpenAI SDK) refuse the whole answer.

    Written in one pass into a buffer on the stack (no string formatted per field).
    """
    cdef char stack[2048]
    cdef _Out out
    cdef object name, value
    cdef str text
    out.data, out.size, out.cap, out.heap = stack, 0, 2048, False
    try:
        _put_bytes(&out, _status_line(status))
        for name, value in headers.items():
            text = value if type(value) is str else str(value)
            if type(name) is not str or not _is_token(name) or not _is_field_value(text):
                continue
            _put_text(&out, name)  # a token: ASCII
            _put(&out, ": ", 2)
            _put_text(&out, text)
            _put(&out, "\r\n", 2)
        if content_type is not None and _is_field_value(content_type):
            _put(&out, "Content-Type: ", 14)
            _put_text(&out, content_type)
            _put(&out, "\r\n", 2)
        if length >= 0:
            _put_length(&out, length)
        elif length == -1:
            _put(&out, "Transfer-Encoding: chunked\r\n", 28)
        if not keep_alive:
            _put(&out, "Connection: close\r\n", 19)
        elif http10:
            _put(&out, "Connection: keep-alive\r\n", 24)
        _put(&out, "Server: fastgate\r\n", 18)
        _put_bytes(&out, date)
        return PyBytes_FromStringAndSize(out.data, out.size)
    finally:
        if out.heap:
            PyMem_Free(out.data)


cdef inline bint _splits_line(str s) noexcept:
    """A CR, LF or NUL: in a request head it would end the field (or the head) early."""
    cdef Py_UCS4 c
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(s)
    cdef const unsigned char* data
    if PyUnicode_IS_ASCII(s):
        data = <const unsigned char*>PyUnicode_DATA(s)
        for i in range(n):
            if data[i] < 14 and (data[i] == 13 or data[i] == 10 or data[i] == 0):
                return True
        return False
    for c in s:
        if c == 13 or c == 10 or c == 0:
            return True
    return False


def request_head(str start, dict headers, Py_ssize_t length, bytes body):
    """An upstream request: ``start`` (its request line and Host field), ``headers``, a
    Content-Length when ``length`` >= 0, and ``body`` (or None), written in one pass.

    Raises ValueError with the field's name when a name or value holds CR, LF or NUL, which
    would split the request. Values read from the client were decoded with surrogateescape:
    they go out byte for byte.
    """
    cdef char stack[2048]
    cdef _Out out
    cdef object name, value
    cdef str text
    cdef Py_ssize_t size
    cdef bytes request
    out.data, out.size, out.cap, out.heap = stack, 0, 2048, False
    try:
        _put_text(&out, start)
        for name, value in headers.items():
            text = value if type(value) is str else str(value)
            if _splits_line(name) or _splits_line(text):
                raise ValueError(name)
            _put_text(&out, name)
            _put(&out, ": ", 2)
            _put_text(&out, text)
            _put(&out, "\r\n", 2)
        if length >= 0:
            _put_length(&out, length)
        _put(&out, "\r\n", 2)
        size = PyBytes_GET_SIZE(body) if body is not None else 0
        request = PyBytes_FromStringAndSize(NULL, out.size + size)
        memcpy(PyBytes_AS_STRING(request), out.data, out.size)
        if size:
            memcpy(PyBytes_AS_STRING(request) + out.size, PyBytes_AS_STRING(body), size)
        return request
    finally:
        if out.heap:
            PyMem_Free(out.data)
