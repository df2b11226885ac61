# A few members of a JSON object read from its bytes, the rest of it skipped.
#
# A stream's control events and an answer carry the few values a mapping needs among many it
# does not (Anthropic's message_start: the id, model and usage, beside the role, content, stop
# fields, the cache breakdown, the service tier). Decoding such an event into Structs costs more
# than the rest of its mapping (~4,700 instructions for a short message_start), most of it the
# Structs made and freed. These read the members asked for and skip every other value by its
# quotes and brackets.
#
# They read only what they read exactly as msgspec would: a wanted string without escapes, a
# wanted number that is a plain non-negative integer, ``null``. On anything else (an escape, a
# float, a bracket that does not match, bytes after the object) they give up, and the caller
# decodes as it would have, so a value read here is the value decoding gives, and a document
# whose members, quotes or brackets are malformed fails as it would have. Inside a value skipped
# only quotes and brackets are checked: a scalar no JSON allows there passes.

from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.string cimport memchr, memcmp


cdef enum:
    _JR_MAX_DEPTH = 64
    _JR_MAX_DIGITS = 18  # every such integer fits in a C long long
    _JR_MAX_NAMES = 8  # members one object is read for
    # What a byte is to the skipping loops (_JR_CLASS).
    _JR_OTHER = 0
    _JR_QUOTE = 1
    _JR_OPEN = 2
    _JR_CLOSE = 3
    _JR_TOKEN = 4  # a number's or a literal's

#: What a value reader gives for a value it does not read (the caller decodes instead).
cdef object _JR_UNREAD = object()

cdef unsigned char _JR_CLASS[256]


cdef void _jr_classify() noexcept:
    cdef int c
    for c in range(256):
        _JR_CLASS[c] = _JR_OTHER
    for c in b"0123456789abcdefghijklmnopqrstuvwxyzE+-.":
        _JR_CLASS[c] = _JR_TOKEN
    _JR_CLASS[b'"'] = _JR_QUOTE
    _JR_CLASS[b"{"] = _JR_CLASS[b"["] = _JR_OPEN
    _JR_CLASS[b"}"] = _JR_CLASS[b"]"] = _JR_CLOSE


_jr_classify()


cdef inline Py_ssize_t _jr_ws(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Past the JSON whitespace at ``p[i]``."""
    while i < n and p[i] <= b" " and (p[i] == b" " or p[i] == b"\n" or p[i] == b"\r" or p[i] == b"\t"):
        i += 1
    return i


cdef inline Py_ssize_t _jr_string_end(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Past the closing quote of the string opening at ``p[i]``, or -1: the next quote not
    escaped (an even run of backslashes before it), found by memchr."""
    cdef const unsigned char* quote
    cdef Py_ssize_t at, k
    i += 1
    while True:
        quote = <const unsigned char*>memchr(p + i, b'"', n - i)
        if quote == NULL:
            return -1
        at = k = quote - p
        while k > i and p[k - 1] == b"\\":
            k -= 1
        if (at - k) % 2 == 0:
            return at + 1
        i = at + 1


cdef Py_ssize_t _jr_value_end(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Past the value starting at ``p[i]``, or -1: a string to its quote, an object or array
    to its matching bracket, a number or literal to its last character."""
    cdef unsigned char closers[_JR_MAX_DEPTH]
    cdef int depth = 0
    cdef unsigned char c, kind = _JR_CLASS[p[i]]
    if kind == _JR_QUOTE:
        return _jr_string_end(p, i, n)
    if kind == _JR_TOKEN:
        while i < n and _JR_CLASS[p[i]] == _JR_TOKEN:
            i += 1
        return i
    if kind != _JR_OPEN:
        return -1
    while i < n:
        c = p[i]
        kind = _JR_CLASS[c]
        if kind == _JR_QUOTE:
            i = _jr_string_end(p, i, n)
            if i < 0:
                return -1
            continue
        if kind == _JR_OPEN:
            if depth == _JR_MAX_DEPTH:
                return -1
            closers[depth] = c + 2  # "{" + 2 is "}", "[" + 2 is "]"
            depth += 1
        elif kind == _JR_CLOSE:
            depth -= 1
            if closers[depth] != c:
                return -1
            if depth == 0:
                return i + 1
        i += 1
    return -1


@cython.final
cdef class _JrObject:
    """The members of an object a reader wants: the value of ``names[k]`` is spanned in slot
    ``slots[k]`` (its start at ``spans[2 * slot]``, its end after it), and read on by
    ``inner[k]`` in the same pass when that is an object with members wanted too."""

    cdef tuple names  # keeps ``name`` alive
    cdef tuple inner
    cdef Py_ssize_t count
    cdef const char* name[_JR_MAX_NAMES]
    cdef Py_ssize_t length[_JR_MAX_NAMES]
    cdef Py_ssize_t slot[_JR_MAX_NAMES]

    def __init__(self, tuple names, tuple slots, tuple inner):
        if not len(names) == len(slots) == len(inner) <= _JR_MAX_NAMES:
            raise ValueError("one slot and one inner reader (or None) for each name, at most 8")
        self.names, self.inner, self.count = names, inner, len(names)
        for k in range(self.count):
            self.name[k] = PyBytes_AS_STRING(names[k])
            self.length[k] = PyBytes_GET_SIZE(names[k])
            self.slot[k] = slots[k]


cdef Py_ssize_t _jr_read(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, _JrObject wanted,
                         Py_ssize_t* spans) noexcept:
    """Read the object opening at ``p[i]`` for the members ``wanted`` names (matched as written:
    a key with an escape is left to the decoder), each value's span put in its slot (the last of
    repeated keys, as decoding keeps; a slot stays as it was when its member is absent). Past
    the object's closing brace, or -1."""
    cdef Py_ssize_t k, slot, key_at, key_n, value_at
    cdef object inner
    if i >= n or p[i] != b"{":
        return -1
    i = _jr_ws(p, i + 1, n)
    if i < n and p[i] == b"}":
        return i + 1
    while i < n:
        if p[i] != b'"':
            return -1
        key_at = i + 1
        i = _jr_string_end(p, i, n)
        if i < 0:
            return -1
        key_n = i - 1 - key_at
        i = _jr_ws(p, i, n)
        if i >= n or p[i] != b":":
            return -1
        value_at = i = _jr_ws(p, i + 1, n)
        if i >= n:
            return -1
        inner = None
        slot = -1
        for k in range(wanted.count):
            if wanted.length[k] == key_n and memcmp(p + key_at, wanted.name[k], key_n) == 0:
                slot = wanted.slot[k]
                inner = wanted.inner[k]
                break
        else:
            for k in range(key_at, key_at + key_n):
                if p[k] == b"\\":
                    return -1  # an escaped key may name a wanted member: left to the decoder
        if inner is not None and p[i] == b"{":
            if spans[2 * slot] >= 0:
                return -1  # an object repeated: decoding keeps the last whole, not a mix
            i = _jr_read(p, i, n, <_JrObject>inner, spans)
        elif p[i] == b'"':
            i = _jr_string_end(p, i, n)
        else:
            i = _jr_value_end(p, i, n)
        if i < 0:
            return -1
        if slot >= 0:
            spans[2 * slot], spans[2 * slot + 1] = value_at, i
        i = _jr_ws(p, i, n)
        if i >= n:
            return -1
        if p[i] == b"}":
            return i + 1
        if p[i] != b",":
            return -1
        i = _jr_ws(p, i + 1, n)
    return -1


cdef bint _jr_read_whole(const unsigned char* p, Py_ssize_t n, _JrObject wanted, Py_ssize_t* spans,
                         Py_ssize_t nslots) noexcept:
    """``_jr_read`` of a whole document (an event's data) that is one object: its slots first
    set to absent (-1); False when it is not read to its end."""
    cdef Py_ssize_t k, end
    for k in range(2 * nslots):
        spans[k] = -1
    end = _jr_read(p, _jr_ws(p, 0, n), n, wanted, spans)
    return end >= 0 and _jr_ws(p, end, n) == n


cdef inline bint _jr_is_null(const unsigned char* p, Py_ssize_t at, Py_ssize_t end) noexcept:
    return end - at == 4 and memcmp(p + at, b"null", 4) == 0


cdef object _jr_int(const unsigned char* p, Py_ssize_t at, Py_ssize_t end):
    """The value in ``[at, end)`` as an int, or None for ``null``, or _JR_UNREAD: a plain
    non-negative integer without leading zeros is read, anything else left to the decoder."""
    cdef long long value = 0
    cdef Py_ssize_t i
    if _jr_is_null(p, at, end):
        return None
    if end - at < 1 or end - at > _JR_MAX_DIGITS or (p[at] == b"0" and end - at > 1):
        return _JR_UNREAD
    for i in range(at, end):
        if not b"0" <= p[i] <= b"9":
            return _JR_UNREAD
        value = value * 10 + (p[i] - 48)
    return value


cdef object _jr_str(const unsigned char* p, Py_ssize_t at, Py_ssize_t end):
    """The value in ``[at, end)`` as a str, or None for ``null``, or _JR_UNREAD: a string
    without escapes or control characters is read (its UTF-8 checked by the decode), anything
    else left to the decoder."""
    if _jr_is_null(p, at, end):
        return None
    cdef Py_ssize_t i
    if end - at < 2 or p[at] != b'"':
        return _JR_UNREAD
    for i in range(at + 1, end - 1):
        if p[i] == b"\\" or p[i] < 0x20:
            return _JR_UNREAD
    try:
        return PyUnicode_DecodeUTF8(<const char*>p + at + 1, end - at - 2, NULL)
    except UnicodeDecodeError:
        return _JR_UNREAD
