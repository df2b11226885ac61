# The output buffer every writer in the extension builds its bytes in: on the caller's stack while
# they fit, moved to the heap when they outgrow it. Shared by the HTTP heads (http_server.pxi) and
# the answer and chunk writers of the mappings; included before all of them.

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.unicode cimport PyUnicode_DATA, PyUnicode_GET_LENGTH
from libc.string cimport memcpy


cdef extern from "Python.h":
    bint PyUnicode_IS_ASCII(object o)


cdef struct _Out:
    # Bytes being written: in a buffer on the caller's stack while they fit, else on the heap.
    char* data
    Py_ssize_t size
    Py_ssize_t cap
    bint heap


cdef int _out_grow(_Out* out, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = max(out.cap * 2, out.size + need)
    cdef char* data = <char*>PyMem_Malloc(cap)
    if data == NULL:
        raise MemoryError()
    memcpy(data, out.data, out.size)
    if out.heap:
        PyMem_Free(out.data)
    out.data, out.cap, out.heap = data, cap, True
    return 0


cdef inline int _out_put(_Out* out, const char* src, Py_ssize_t n) except -1:
    if out.size + n > out.cap:
        _out_grow(out, n)
    memcpy(out.data + out.size, src, n)
    out.size += n
    return 0


cdef inline char* _out_take(_Out* out, Py_ssize_t n) except NULL:
    """Room for ``n`` more bytes, counted as written: where the caller copies them (a piece made
    of several parts pays one capacity check)."""
    if out.size + n > out.cap:
        _out_grow(out, n)
    cdef char* at = out.data + out.size
    out.size += n
    return at


cdef inline int _out_put_bytes(_Out* out, bytes piece) except -1:
    return _out_put(out, PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece))


cdef inline int _out_put_text(_Out* out, str text) except -1:
    """ASCII as it is; anything else as UTF-8 with surrogateescape (a relayed value goes out
    byte for byte)."""
    if PyUnicode_IS_ASCII(text):
        return _out_put(out, <const char*>PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text))
    return _out_put_bytes(out, text.encode("utf-8", "surrogateescape"))


cdef inline int _out_put_decimal(_Out* out, Py_ssize_t value) except -1:
    """``value`` (a length, a count, a time) in decimal; below zero with its sign, as a count
    an upstream sent so is relayed, so what is written is JSON whatever the figure."""
    cdef char digits[24]
    cdef Py_ssize_t n = 24
    cdef size_t magnitude = <size_t>value if value >= 0 else -<size_t>value
    while True:
        n -= 1
        digits[n] = 48 + magnitude % 10
        magnitude //= 10
        if magnitude == 0:
            break
    if value < 0:
        n -= 1
        digits[n] = 45  # "-"
    return _out_put(out, digits + n, 24 - n)


cdef inline int _out_put_length(_Out* out, Py_ssize_t length) except -1:
    _out_put(out, "Content-Length: ", 16)
    _out_put_decimal(out, length)
    return _out_put(out, "\r\n", 2)
