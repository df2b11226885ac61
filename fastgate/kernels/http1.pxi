# Incremental HTTP/1.1 response parser for the upstream client (RFC 9112).
#
# Bytes in, body pieces out: the status line and header fields are parsed once, then the body is
# returned as it arrives, de-chunked. Message length (RFC 9112 §6.3): no body after HEAD or for
# 1xx/204/304; chunked Transfer-Encoding wins over Content-Length (and the connection is then not
# reused); Content-Length; otherwise the body runs to the close of the connection.
#
# As strict as the request parser (the grammar is shared: http_syntax.pxi), so that an upstream's
# answer means one thing: a bare CR, LF or other control byte, obs-fold, a field name that is not
# a token, a status line other than ``HTTP/1.x NNN[ reason]`` or a Transfer-Encoding whose last
# coding is not chunked is an HTTPParseError (a 502, and the connection is closed). A bare LF is
# refused as it arrives, so an answer with LF line ends never swallows the next one.


class HTTPParseError(ValueError):
    """The upstream sent something that is not valid HTTP/1.1."""


cdef enum:
    _RANGES = 32  # body ranges noted per read before they are copied out


cdef bytes _h1_joined(bytes whole, const char* p, Py_ssize_t n, Py_ssize_t* starts, Py_ssize_t* ends,
                  int ranges):
    """The bytes of ``ranges`` ranges of ``p[:n]``, in order, in one object: ``whole`` (the read
    itself, when it is what ``p`` points into, else None) when one range covers it all."""
    cdef Py_ssize_t total = 0, at = 0
    cdef int i
    cdef bytes out
    cdef char* dest
    if ranges == 1:
        if whole is not None and starts[0] == 0 and ends[0] == n:
            return whole
        return PyBytes_FromStringAndSize(p + starts[0], ends[0] - starts[0])
    for i in range(ranges):
        total += ends[i] - starts[i]
    out = PyBytes_FromStringAndSize(NULL, total)
    dest = PyBytes_AS_STRING(out)
    for i in range(ranges):
        memcpy(dest + at, p + starts[i], ends[i] - starts[i])
        at += ends[i] - starts[i]
    return out


cdef int _h1_spill(BodyBuffer spill, const char* p, Py_ssize_t* starts, Py_ssize_t* ends,
                int ranges) except -1:
    cdef int i
    for i in range(ranges):
        spill.put(p + starts[i], ends[i] - starts[i], -1)
    return 0


cdef str _h1_scan_error(Py_ssize_t code, str where):
    if code == _SCAN_BAD_BYTE:
        return f"a control byte, or a bare CR or LF, in the {where}"
    return f"{where} too large"


cdef class ResponseParser:
    """Parses one response at a time; ``reset()`` readies it for the next on a kept-alive connection.

    ``headers`` are ``(name, value)`` pairs with the names lower-cased (RFC 9110 §5.1).
    """

    # Bytes received and not yet parsed: an unfinished head or chunk line, or what came after the
    # response (None: nothing). Appended to and trimmed in place (amortised, as the SSE kernel's).
    cdef bytearray _pending
    cdef _HsScan _scan
    cdef _HsState _state
    cdef Py_ssize_t _remaining
    cdef Py_ssize_t _trailer_size
    cdef bint _head_request
    cdef bint _started
    cdef readonly int status
    cdef readonly str reason
    cdef readonly list headers
    cdef readonly bint head_done
    cdef readonly bint keep_alive
    cdef readonly object content_type

    def __cinit__(self):
        self._reset(False)

    cdef void _reset(self, bint head_request):
        self._pending = None
        self._scan.checked = self._scan.line = 0
        self._state = S_HEAD
        self._remaining = 0
        self._trailer_size = 0
        self._head_request = head_request
        self._started = False
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
    def started(self):
        """Some byte of the response has arrived."""
        return self._started

    @property
    def reads_to_eof(self):
        """The body ends when the connection closes (no length was given)."""
        return self._state == S_BODY_EOF

    @property
    def leftover(self):
        """Bytes received past the end of the response (a server that answered too much)."""
        if self._state == S_DONE and self._pending is not None:
            return bytes(self._pending)
        return _SSE_EMPTY

    def feed(self, bytes data):
        """Consume ``data`` and return the body bytes it completed: one piece, or none.

        The body bytes of one read come back as one piece, however many chunks carried them: the
        pieces are noted as ranges of the read and copied once, not sliced out one by one (nor
        made an object each: a body in 1-byte chunks costs its own size).
        """
        cdef list out = []
        cdef bytearray pending = self._pending
        cdef bytes whole = data if pending is None else None
        cdef char* p
        cdef Py_ssize_t n, pos = 0, end, take, size
        cdef const char* error = NULL
        cdef Py_ssize_t starts[_RANGES]
        cdef Py_ssize_t ends[_RANGES]
        cdef int ranges = 0
        cdef BodyBuffer spill = None  # the read's body so far, past _RANGES ranges (tiny chunks)
        if data:
            self._started = True
        _sse_scanned_bytes(pending, data, &p, &n)
        while pos < n and self._state != S_DONE:
            if self._state == S_HEAD:
                end = _hs_scan_lines(p, pos, n, &self._scan, True, _HS_MAX_HEAD)
                if end == _SCAN_MORE:
                    if n - pos > _HS_MAX_HEAD + 3:  # the end marker may be partly here
                        raise HTTPParseError("response head too large")
                    break
                if end < 0:
                    raise HTTPParseError(_h1_scan_error(end, "response head"))
                if end == pos:
                    raise HTTPParseError("an empty line where the status line belongs")
                if end - 2 - pos > _HS_MAX_HEAD:
                    raise HTTPParseError("response head too large")
                self._scan.checked = self._scan.line = 0
                self._parse_head(p, pos, end - 2)
                pos = end + 2
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
                end = _hs_scan_lines(p, pos, n, &self._scan, False, _HS_MAX_CHUNK_LINE)
                if end == _SCAN_MORE:
                    break
                if end < 0:
                    raise HTTPParseError(_h1_scan_error(end, "chunk size line"))
                self._scan.checked = self._scan.line = 0
                size = _hs_chunk_line(p, pos, end, &error)
                if size < 0:
                    raise HTTPParseError(error.decode())
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
                if p[pos] != b"\r" or (n - pos > 1 and p[pos + 1] != b"\n"):
                    raise HTTPParseError("missing CRLF after chunk data")
                if n - pos < 2:
                    break
                pos += 2
                self._state = S_CHUNK_SIZE
            elif self._state == S_TRAILERS:
                # Trailer lines are checked like header lines and dropped.
                end = _hs_scan_lines(p, pos, n, &self._scan, False, _HS_MAX_HEAD)
                if end == _SCAN_MORE:
                    if self._trailer_size + n - pos > _HS_MAX_HEAD:
                        raise HTTPParseError("trailer section too large")
                    break
                if end < 0:
                    raise HTTPParseError(_h1_scan_error(end, "trailer section"))
                self._scan.checked = self._scan.line = 0
                if end == pos:
                    self._state = S_DONE
                elif _hs_field_name_end(p, pos, end) < 0:
                    raise HTTPParseError("invalid trailer line")
                self._trailer_size += end + 2 - pos
                if self._trailer_size > _HS_MAX_HEAD:
                    raise HTTPParseError("trailer section too large")
                pos = end + 2
            if ranges == _RANGES:
                if spill is None:
                    spill = BodyBuffer()
                _h1_spill(spill, p, starts, ends, ranges)
                ranges = 0
        if spill is not None:
            _h1_spill(spill, p, starts, ends, ranges)
            out.append(spill.take_bytes())
        elif ranges:
            out.append(_h1_joined(whole, p, n, starts, ends, ranges))
        self._pending = _sse_unfinished(pending, p, pos, n)
        return out

    def feed_eof(self):
        """The connection closed: fine only where the body runs to the close."""
        if self._state == S_BODY_EOF:
            self._state = S_DONE
            return
        if self._state != S_DONE:
            raise HTTPParseError("connection closed before the response was complete")

    cdef void _parse_head(self, const char* p, Py_ssize_t pos, Py_ssize_t end) except *:
        """The status line and fields of ``p[pos:end]`` (the head without its final CRLF CRLF),
        which ``_hs_scan_lines`` passed: its only control bytes are HTAB and CRLF line ends."""
        cdef Py_ssize_t line_end = _hs_line_end(p, pos, end), colon, size
        cdef Py_ssize_t length = -1
        cdef int connection = 0, codings = 0
        cdef bint http10
        cdef str name, value, line
        cdef list headers = []
        # status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4); the SP
        # after the code is left out by some servers when the reason is empty, as llhttp allows.
        if (
            line_end - pos < 12
            or memcmp(p + pos, b"HTTP/1.", 7) != 0
            or not b"0" <= p[pos + 7] <= b"9"
            or p[pos + 8] != b" "
            or not (b"1" <= p[pos + 9] <= b"9" and b"0" <= p[pos + 10] <= b"9" and b"0" <= p[pos + 11] <= b"9")
            or (line_end - pos > 12 and p[pos + 12] != b" ")
        ):
            line = PyUnicode_DecodeUTF8(<char*>p + pos, min(line_end - pos, 40), "surrogateescape")
            raise HTTPParseError(f"invalid status line {line!r}")
        self.status = (p[pos + 9] - 48) * 100 + (p[pos + 10] - 48) * 10 + (p[pos + 11] - 48)
        self.reason = _hs_header_value(p, pos + 13, line_end) if line_end - pos > 13 else ""
        http10 = p[pos + 7] == b"0"
        pos = line_end + 2
        while pos < end:
            line_end = _hs_line_end(p, pos, end)
            colon = _hs_field_name_end(p, pos, line_end)
            if colon < 0:
                raise HTTPParseError("invalid header line")
            name = _hs_header_name(p, pos, colon)
            value = _hs_header_value(p, colon + 1, line_end)
            headers.append((name, value))
            if name is H_CONTENT_LENGTH:
                size = _hs_content_length(value)
                if size < 0 or (length >= 0 and length != size):
                    raise HTTPParseError("invalid Content-Length")
                length = size
            elif name is H_TRANSFER_ENCODING:
                codings = _hs_transfer_codings(p, colon + 1, line_end, codings | _TE_ANY)
            elif name is H_CONNECTION:
                connection |= _hs_connection_options(p, colon + 1, line_end)
            elif name is H_CONTENT_TYPE:
                self.content_type = value
            pos = line_end + 2
        if 100 <= self.status < 200:
            # An interim response (100 Continue, 103 Early Hints): the real one follows.
            self.headers = []
            self.content_type = None
            return
        if codings and (codings & _TE_MISPLACED or not codings & _TE_CHUNKED_LAST):
            # The message's length is then the connection's (RFC 9112 §6.3), which a relay cannot
            # tell from an answer cut short: refused, never read as chunked because it ends so.
            raise HTTPParseError("a Transfer-Encoding not ending in chunked, or naming it twice")
        self.headers = headers
        self.head_done = True
        if connection & _CONN_CLOSE:
            self.keep_alive = False
        else:
            self.keep_alive = not http10 or connection & _CONN_KEEP_ALIVE != 0  # 1.0: close unless asked
        if self._head_request or self.status == 204 or self.status == 304:
            self._state = S_DONE
        elif codings:
            self._state = S_CHUNK_SIZE
            if length >= 0 or codings & _TE_OTHER:
                # Framing that says two things, or a coding the gateway does not undo: the answer
                # is read as chunked, and the connection is not trusted with another.
                self.keep_alive = False
        elif length >= 0:
            self._remaining = length
            self._state = S_BODY_LENGTH if length else S_DONE
        else:
            self._state = S_BODY_EOF
            self.keep_alive = False
