# JSON text checks the decoder does not make (see fastgate/jsontext.py).

from libc.stdint cimport uint64_t
from libc.string cimport memcpy


def quoted_twice(bytes body, tuple quoted):
    """The members of ``quoted`` (each a JSON key with its quotes, ``b'"model"'``) found more than
    once in ``body``: one pass over its quote marks instead of one full search per key.

    Occurrences may overlap (``"a"a"`` holds ``"a"`` twice): a superset of the keys really
    repeated, which the caller confirms with a parse.
    """
    cdef char* p
    cdef Py_ssize_t n, pos = 0, k, i, m, nkeys = len(quoted)
    cdef const char* hit
    cdef int counts[8]
    cdef const char* keys[8]
    cdef Py_ssize_t lengths[8]
    cdef bytes key
    if nkeys > 8:
        raise ValueError("at most 8 keys")
    for k in range(nkeys):
        key = quoted[k]
        keys[k] = key
        lengths[k] = len(key)
        counts[k] = 0
    PyBytes_AsStringAndSize(body, &p, &n)
    while True:
        hit = <const char*>memchr(p + pos, b'"', n - pos)
        if hit == NULL:
            break
        i = hit - p
        for k in range(nkeys):
            m = lengths[k]
            if i + m <= n and p[i + 1] == keys[k][1] and memcmp(p + i, keys[k], m) == 0:
                counts[k] += 1
                break
        pos = i + 1
    return [quoted[k] for k in range(nkeys) if counts[k] > 1]


cdef inline Py_ssize_t _js_utf8_length(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Length of the well-formed UTF-8 sequence starting at ``p[i]`` (a byte past ASCII), or 0:
    no overlong forms, surrogates or code points past U+10FFFF (Unicode §3.9, table 3-7)."""
    cdef unsigned char c = p[i], lo = 0x80, hi = 0xBF
    cdef Py_ssize_t size, k
    if 0xC2 <= c <= 0xDF:
        size = 2
    elif 0xE0 <= c <= 0xEF:
        size = 3
        if c == 0xE0:
            lo = 0xA0
        elif c == 0xED:
            hi = 0x9F
    elif 0xF0 <= c <= 0xF4:
        size = 4
        if c == 0xF0:
            lo = 0x90
        elif c == 0xF4:
            hi = 0x8F
    else:
        return 0
    if i + size > n or not lo <= p[i + 1] <= hi:
        return 0
    for k in range(2, size):
        if not 0x80 <= p[i + k] <= 0xBF:
            return 0
    return size


cdef extern from *:
    """
    /* The first byte of a word (as loaded from memory) that a "has a byte below" test flagged:
       on a little-endian machine its lowest flag, which is exact (a borrow runs only towards
       the later bytes); on a big-endian one a borrow runs towards the earlier bytes, so the
       word's first byte, from where the caller tests byte by byte. */
    static inline int fg_first_flagged_byte(uint64_t flags) {
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return __builtin_ctzll(flags) >> 3;
    #else
        (void)flags;
        return 0;
    #endif
    }
    """
    int fg_first_flagged_byte(uint64_t flags) noexcept nogil


cdef inline Py_ssize_t _js_plain_end(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """The first byte from ``p[i]`` that is not printable ASCII other than a quote or a
    backslash (or the last word's end), tested a word (8 bytes) at a time: most of a long text
    in few tests, and a short string (a streamed token) ending in its first word found in one.
    Tried where a string starts and after each escape or multi-byte character."""
    cdef uint64_t ones = 0x0101010101010101ULL, w, quote, backslash, flags
    while i + 8 <= n:
        memcpy(&w, p + i, 8)
        quote = w ^ (ones * 0x22)
        backslash = w ^ (ones * 0x5C)
        flags = (w | ((w - ones * 0x20) & ~w) | ((quote - ones) & ~quote)
                 | ((backslash - ones) & ~backslash)) & 0x8080808080808080ULL
        if flags:
            return i + fg_first_flagged_byte(flags)
        i += 8
    return i


cdef inline Py_ssize_t _js_json_string_end(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Where the JSON string whose text starts at ``p[i]`` closes (its quote), when the string
    is as msgspec writes strings, so it can be copied into output as it is; -1 when not, or when
    it is not valid JSON, and the caller decodes it instead.

    msgspec writes UTF-8 as it is and escapes only ``"``, ``\\``, ``\\b \\f \\n \\r \\t`` and other
    control characters as ``\\u00XX``; ``\\u`` escapes and ``\\/`` are refused here rather than
    checked, so an accepted string is byte for byte what decoding and encoding it would give.
    A plain string (a streamed token) is found here, inline; the rest is looked at byte by byte.
    """
    i = _js_plain_end(p, i, n)
    if i < n and p[i] == b'"':
        return i
    return _js_string_end_after_plain(p, i, n)


cdef Py_ssize_t _js_string_end_after_plain(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """``_js_json_string_end`` on from where the word test stopped, a byte at a time."""
    cdef unsigned char c
    cdef Py_ssize_t size
    while i < n:
        c = p[i]
        if c == b'"':
            return i
        if c == b"\\":
            if i + 1 >= n or p[i + 1] not in b'"\\bfnrt':
                return -1
            i = _js_plain_end(p, i + 2, n)
        elif c < 0x20:
            return -1
        elif c < 0x80:
            i += 1
        else:
            size = _js_utf8_length(p, i, n)
            if size == 0:
                return -1
            i = _js_plain_end(p, i + size, n)
    return -1
