# A body that arrives in pieces (a chunked request, a request split over reads, an upstream's
# answer read whole), collected in one bytes object that grows in place and is handed over at its
# exact size. A piece is not an object of its own and there is no join at the end: a body sent in
# 1-byte chunks once cost ~88 bytes a byte (a bytes object per chunk, the list holding it, then
# the join); in this buffer it costs its size and at most a quarter more while it grows.

from cpython.bytes cimport _PyBytes_Resize
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF

#: The first allocation: small, so that a client cannot make many connections hold much memory
#: with a byte each; growth by a quarter from there (realloc moves or extends it in place).
cdef Py_ssize_t _BODY_FIRST = 256


cdef class BodyBuffer:
    """Bytes appended piece by piece; ``take()`` returns them as one bytes object, copied once."""

    # A bytes object owned by this buffer alone (so it may be resized), ``_cap`` bytes long, of
    # which the first ``_size`` are written; NULL while empty.
    cdef PyObject* _data
    cdef Py_ssize_t _size
    cdef Py_ssize_t _cap

    def __dealloc__(self):
        Py_XDECREF(self._data)

    def __len__(self):
        return self._size

    def append(self, bytes piece):
        self.put(PyBytes_AS_STRING(piece), PyBytes_GET_SIZE(piece), -1)

    def take(self):
        return self.take_bytes()

    cdef int put(self, const char* p, Py_ssize_t n, Py_ssize_t most) except -1:
        """Appends ``p[:n]``. ``most`` (-1: unknown) is the whole body's size when it is known
        (a Content-Length): the buffer never grows past it, so it ends at its exact size."""
        cdef Py_ssize_t need = self._size + n, cap
        cdef object fresh
        if n == 0:
            return 0
        if need > self._cap:
            cap = max(need, self._cap + self._cap // 4, _BODY_FIRST)
            if 0 <= most < cap:
                cap = max(most, need)
            if self._data == NULL:
                fresh = PyBytes_FromStringAndSize(NULL, cap)
                Py_INCREF(fresh)
                self._data = <PyObject*>fresh
            else:
                self._resize(cap)
            self._cap = cap
        memcpy(PyBytes_AS_STRING(<object>self._data) + self._size, p, n)
        self._size = need
        return 0

    cdef int _resize(self, Py_ssize_t cap) except -1:
        try:
            _PyBytes_Resize(&self._data, cap)
        except MemoryError:
            self._data = NULL  # freed by the failed resize
            self._size = self._cap = 0
            raise
        return 0

    cdef bytes take_bytes(self):
        """What was appended, as one bytes object; the buffer is empty again."""
        cdef bytes out
        if self._data == NULL:
            return _SSE_EMPTY
        if self._size != self._cap:
            self._resize(self._size)  # shrinks in place
        out = <bytes>self._data
        Py_XDECREF(self._data)
        self._data = NULL
        self._size = self._cap = 0
        return out
