# The HTTP/1.1 grammar both parsers share (RFC 9110, RFC 9112): the client request parser
# (http_server.pxi) and the upstream response parser (http1.pxi) check line ends, chunk lines,
# field names and the Connection options with the same code, so the gateway is as strict with an
# upstream's answer as with a client's request.
#
# Bytes that arrive a few per read are looked at once: an unfinished head, chunk line or trailer
# line is checked as far as it has come and the next read resumes there (``_HsScan``), so reading
# one costs time linear in its length however it is cut (rescanned from its start on every read,
# a 64 KB head sent a byte per read cost about a second of CPU).

from cpython.unicode cimport (
    PyUnicode_DATA,
    PyUnicode_DecodeLatin1,
    PyUnicode_DecodeUTF8,
    PyUnicode_GET_LENGTH,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp, memcpy

cdef enum _HsState:
    S_HEAD = 0
    S_BODY_LENGTH = 1
    S_CHUNK_SIZE = 2
    S_CHUNK_DATA = 3
    S_CHUNK_DATA_END = 4
    S_TRAILERS = 5
    S_BODY_EOF = 6
    S_DONE = 7

#: A head (and a trailer section) at most; one request header line; request header fields.
cdef Py_ssize_t _HS_MAX_HEAD = 64 * 1024
cdef Py_ssize_t _HS_MAX_LINE = 8190
cdef Py_ssize_t _HS_MAX_FIELDS = 128
#: A chunk line: the size and its extensions.
cdef Py_ssize_t _HS_MAX_CHUNK_LINE = 4096

# Bytes allowed in a method, a field name, a chunk extension (RFC 9110 §5.6.2 tchar).
cdef bytes _HS_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
cdef bint _HS_IS_TCHAR[256]
for _c in range(256):
    _HS_IS_TCHAR[_c] = _c in _HS_TCHAR


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)


# ---------------------------------------------------------------------- lines, as they arrive

cdef struct _HsScan:
    # How far an unfinished head, chunk line or trailer line has been checked, and where the
    # line being checked began, as offsets from its first byte: kept between reads.
    Py_ssize_t checked
    Py_ssize_t line

cdef enum:
    _SCAN_MORE = -1       # its end has not arrived
    _SCAN_BAD_BYTE = -2   # a control byte other than HTAB, or a CR or LF outside a CRLF
    _SCAN_LONG_LINE = -3  # a line longer than allowed


cdef inline Py_ssize_t _hs_scan_lines(const char* p, Py_ssize_t start, Py_ssize_t n, _HsScan* s,
                                   bint section, Py_ssize_t max_line) noexcept:
    """Checks ``p[start + s.checked:n]``: lines end in CRLF, no other control byte but HTAB (a
    bare CR or LF would end a line for a parser in front of the gateway and not for it, and the
    two would disagree on where a message ends), no line longer than ``max_line``.

    Returns where what started at ``start`` ends: the CR of its CRLF for one line, the CR of the
    empty line that ends it for a ``section`` (a head); or a ``_SCAN_*`` code, ``_SCAN_MORE``
    having noted in ``s`` how far it got. A CR as the last byte may yet begin a CRLF: it is
    checked again with the next read.
    """
    cdef Py_ssize_t i = start + s.checked, line = start + s.line
    cdef unsigned char c
    while i < n:
        c = <unsigned char>p[i]
        if c >= 32 and c != 127 or c == 9:
            i += 1
            continue
        if c != 13 or (i + 1 < n and p[i + 1] != b"\n"):
            return _SCAN_BAD_BYTE
        if i + 1 == n:
            break
        if i - line > max_line:
            return _SCAN_LONG_LINE
        if not section or i == line:
            return i
        i += 2
        line = i
    if i - line > max_line:
        return _SCAN_LONG_LINE
    s.checked = i - start
    s.line = line - start
    return _SCAN_MORE


cdef inline Py_ssize_t _hs_find_crlf(const char* p, Py_ssize_t start, Py_ssize_t n) noexcept:
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


cdef inline Py_ssize_t _hs_line_end(const char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    """Where the line at ``start`` ends (its CRLF, or the end of a head without its last CRLF)."""
    cdef Py_ssize_t i = _hs_find_crlf(p, start, end)
    return end if i < 0 else i


# ---------------------------------------------------------------------- chunk lines

cdef inline Py_ssize_t _hs_skip_ws(const char* p, Py_ssize_t i, Py_ssize_t end) noexcept:
    while i < end and (p[i] == b" " or p[i] == b"\t"):
        i += 1
    return i


cdef inline Py_ssize_t _hs_skip_token(const char* p, Py_ssize_t i, Py_ssize_t end) noexcept:
    while i < end and _HS_IS_TCHAR[<unsigned char>p[i]]:
        i += 1
    return i


cdef inline Py_ssize_t _hs_skip_quoted(const char* p, Py_ssize_t i, Py_ssize_t end) noexcept:
    """Past the quoted-string at ``p[i]`` (RFC 9110 §5.6.4), or -1 when it does not close. The
    line holds no control byte but HTAB: every other byte is qdtext, or quoted after a backslash."""
    i += 1
    while i < end:
        if p[i] == b'"':
            return i + 1
        i += 2 if p[i] == b"\\" else 1
    return -1


cdef inline Py_ssize_t _hs_chunk_line(const char* p, Py_ssize_t start, Py_ssize_t end,
                                   const char** error) noexcept:
    """The size of the chunk whose line is ``p[start:end]``, or -1 with ``*error`` saying why.

    ``chunk-size [ chunk-ext ]`` with ``chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] )``,
    the name a token and the value a token or a quoted-string (RFC 9112 §7.1.1): whitespace after
    the size only before a ";", as llhttp checks it. The extensions themselves are ignored.
    """
    cdef Py_ssize_t size = 0, i = start, mark
    cdef bint first = True
    cdef char c
    while i < end:
        c = p[i]
        if 48 <= c <= 57:  # 0-9
            size = size * 16 + (c - 48)
        elif 97 <= c <= 102:  # a-f
            size = size * 16 + (c - 87)
        elif 65 <= c <= 70:  # A-F
            size = size * 16 + (c - 55)
        else:
            break
        i += 1
        if i - start > 15:
            error[0] = "chunk size too large"
            return -1
    if i == start:
        error[0] = "invalid chunk size"
        return -1
    while i < end:  # an extension: BWS ";" BWS name [ BWS "=" BWS value ]
        mark = _hs_skip_ws(p, i, end)
        if mark == end or p[mark] != b";":
            error[0] = "invalid chunk size" if first else "invalid chunk extension"
            return -1
        first = False
        mark = _hs_skip_ws(p, mark + 1, end)
        i = _hs_skip_token(p, mark, end)
        if i == mark:
            error[0] = "invalid chunk extension"
            return -1
        mark = _hs_skip_ws(p, i, end)
        if mark < end and p[mark] == b"=":
            mark = _hs_skip_ws(p, mark + 1, end)
            i = _hs_skip_quoted(p, mark, end) if mark < end and p[mark] == b'"' else _hs_skip_token(p, mark, end)
            if i <= mark:
                error[0] = "invalid chunk extension"
                return -1
    return size


# ---------------------------------------------------------------------- fields

cdef inline Py_ssize_t _hs_field_name_end(const char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    """The colon after the field name that begins the line ``p[start:end]``, or -1 when the line
    does not begin with a token and a colon (obs-fold, whitespace before the colon, a name that is
    not a token: RFC 9112 §5.1, §5.2)."""
    cdef Py_ssize_t i = _hs_skip_token(p, start, end)
    if i == start or i == end or p[i] != b":":
        return -1
    return i


cdef inline bint _hs_is_ascii(const char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
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
cdef list _HS_KNOWN_BY_LENGTH = [() for _ in range(65)]
for _name in (
    H_HOST, H_CONTENT_LENGTH, H_CONTENT_TYPE, H_TRANSFER_ENCODING, H_CONNECTION, H_EXPECT,
    "authorization", "accept", "accept-encoding", "user-agent", "date", "server", "keep-alive",
    "x-request-id", "x-portkey-provider", "x-portkey-config", "x-portkey-api-key",
    "x-portkey-virtual-key", "x-portkey-custom-host", "x-portkey-trace-id", "x-portkey-metadata",
):
    _HS_KNOWN_BY_LENGTH[len(_name)] += (_name,)


cdef inline str _hs_header_name(const char* p, Py_ssize_t start, Py_ssize_t end):
    """A field name lower-cased (RFC 9110 §5.1: names are case-insensitive), made in one step
    from the bytes; a name with non-ASCII bytes keeps them (decoded like values)."""
    cdef char lowered[64]
    cdef Py_ssize_t i, n = end - start
    cdef char c
    cdef str known
    if n > 64 or not _hs_is_ascii(p, start, end):
        return PyUnicode_DecodeUTF8(<char*>p + start, n, "surrogateescape").lower()
    for i in range(n):
        c = p[start + i]
        lowered[i] = c + 32 if b"A" <= c <= b"Z" else c
    for known in <tuple>_HS_KNOWN_BY_LENGTH[n]:
        if memcmp(PyUnicode_DATA(known), lowered, n) == 0:
            return known
    return PyUnicode_DecodeLatin1(lowered, n, NULL)


cdef inline str _hs_header_value(const char* p, Py_ssize_t start, Py_ssize_t end):
    """A field value without the SP/HTAB around it (RFC 9112 §5.1), decoded UTF-8 with
    surrogateescape so that, relayed, it goes out byte for byte."""
    while start < end and (p[start] == b" " or p[start] == b"\t"):
        start += 1
    while end > start and (p[end - 1] == b" " or p[end - 1] == b"\t"):
        end -= 1
    return PyUnicode_DecodeUTF8(<char*>p + start, end - start, "surrogateescape")


cdef inline Py_ssize_t _hs_content_length(str value) noexcept:
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


# ---------------------------------------------------------------------- token lists

cdef enum:
    # Connection options (RFC 9112 §9.3, §9.6)
    _CONN_CLOSE = 1
    _CONN_KEEP_ALIVE = 2
    # Transfer codings (RFC 9112 §6.1)
    _TE_ANY = 1           # a coding was named
    _TE_CHUNKED_LAST = 2  # the last one named is chunked
    _TE_OTHER = 4         # a coding other than chunked was named
    _TE_MISPLACED = 8     # chunked was named before another coding (or twice)


cdef inline bint _hs_token_is(const char* p, Py_ssize_t start, Py_ssize_t end, const char* lower,
                           Py_ssize_t n) noexcept:
    """``p[start:end]`` is the token ``lower`` in any case (the bytes were checked: no control
    byte maps onto a letter or "-" by the case bit)."""
    cdef Py_ssize_t i
    if end - start != n:
        return False
    for i in range(n):
        if (p[start + i] | 0x20) != lower[i]:
            return False
    return True


cdef inline Py_ssize_t _hs_list_item_end(const char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    cdef const char* comma = <const char*>memchr(p + start, b",", end - start)
    return end if comma == NULL else comma - p


cdef inline Py_ssize_t _hs_trimmed_end(const char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    while end > start and (p[end - 1] == b" " or p[end - 1] == b"\t"):
        end -= 1
    return end


cdef inline int _hs_connection_options(const char* p, Py_ssize_t start, Py_ssize_t end) noexcept:
    """The options one Connection field names: a comma-separated list of case-insensitive tokens
    (RFC 9110 §7.6.1). Every Connection field is read, and ``close`` in any of them wins."""
    cdef int found = 0
    cdef Py_ssize_t item, comma
    while start < end:
        comma = _hs_list_item_end(p, start, end)
        item = _hs_skip_ws(p, start, comma)
        if _hs_token_is(p, item, _hs_trimmed_end(p, item, comma), "close", 5):
            found |= _CONN_CLOSE
        elif _hs_token_is(p, item, _hs_trimmed_end(p, item, comma), "keep-alive", 10):
            found |= _CONN_KEEP_ALIVE
        start = comma + 1
    return found


cdef inline int _hs_transfer_codings(const char* p, Py_ssize_t start, Py_ssize_t end,
                                  int seen) noexcept:
    """``seen`` (the codings of earlier Transfer-Encoding fields) with this field's added: the
    fields are one list, read in order (RFC 9110 §5.3); a coding's parameters are ignored."""
    cdef Py_ssize_t item, stop, comma
    cdef const char* semicolon
    while start < end:
        comma = _hs_list_item_end(p, start, end)
        item = _hs_skip_ws(p, start, comma)
        semicolon = <const char*>memchr(p + item, b";", comma - item)
        stop = _hs_trimmed_end(p, item, comma if semicolon == NULL else semicolon - p)
        if stop > item:
            if seen & _TE_CHUNKED_LAST:
                seen |= _TE_MISPLACED
            seen |= _TE_ANY
            if _hs_token_is(p, item, stop, "chunked", 7):
                seen |= _TE_CHUNKED_LAST
            else:
                seen = (seen | _TE_OTHER) & ~_TE_CHUNKED_LAST
        start = comma + 1
    return seen
