# Server-sent events kernels (https://html.spec.whatwg.org/multipage/server-sent-events.html).
#
# Lines end in CRLF, LF or CR; a blank line ends an event. Network reads split events, and even
# a CRLF pair, anywhere, so both classes below keep the unfinished tail between feeds.

from cpython.bytes cimport PyBytes_AsStringAndSize, PyBytes_FromStringAndSize
from libc.string cimport memchr, memcmp, memcpy

cdef bytes _DONE = b"[DONE]"
cdef bytes _EMPTY = b""
cdef bytes _BLANK = b"\n\n"


cdef inline bytes _slice(const char* p, Py_ssize_t start, Py_ssize_t end):
    """``buf[start:end]`` of the buffer at ``p``, without the generic slicing call behind it."""
    return PyBytes_FromStringAndSize(p + start, end - start)


cdef inline Py_ssize_t _field_value(const char* line, Py_ssize_t n, const char* name,
                                    Py_ssize_t name_len) noexcept:
    """Offset of the value of field ``name`` in ``line`` (after ``name:`` and one space), or -1."""
    if n < name_len + 1 or memcmp(line, name, name_len) != 0 or line[name_len] != b":":
        return -1
    if n > name_len + 1 and line[name_len + 1] == b" ":
        return name_len + 2
    return name_len + 1


cdef inline Py_ssize_t _line_break(const char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """The next CR or LF at or after ``i``, or ``n``: a CR is looked for only before the LF."""
    cdef const char* lf = <const char*>memchr(p + i, b"\n", n - i)
    cdef Py_ssize_t limit = n if lf == NULL else lf - p
    cdef const char* cr = <const char*>memchr(p + i, b"\r", limit - i)
    return limit if cr == NULL else cr - p


cdef class EventSink:
    """What an SSEDecoder can hand each event to as it completes (``SSEDecoder.scan``): a stream
    mapper that extends this is spared the list of pairs ``feed`` builds."""

    cdef int take(self, object event, bytes data) except -1:
        raise NotImplementedError


cdef class SSEDecoder:
    """Incremental SSE parser: bytes in, ``(event, data)`` pairs out.

    ``event`` is the ``event:`` field (``None`` when absent); ``data`` joins the event's ``data:``
    lines with ``\\n``. Events without data (comments, keep-alives) are skipped, as the spec's
    dispatch step does.
    """

    cdef bytes _tail
    cdef bint _skip_lf
    cdef object _event
    cdef object _name  # the last event name read: a stream repeats a few, so they are shared
    cdef object _data  # the event's first data line; further lines go to _more (rare)
    cdef list _more

    def __cinit__(self):
        self._tail = _EMPTY
        self._skip_lf = False
        self._event = None
        self._name = None
        self._data = None
        self._more = None

    def feed(self, bytes chunk):
        cdef list out = []
        self._feed(chunk, out, None)
        return out

    cdef int scan(self, bytes chunk, EventSink sink) except -1:
        """``feed``, each event going to ``sink.take`` instead of into a list."""
        return self._feed(chunk, None, sink)

    cdef int _feed(self, bytes chunk, list out, EventSink sink) except -1:
        cdef bytes buf = self._tail + chunk if self._tail else chunk
        cdef char* p
        cdef Py_ssize_t n, i = 0, start = 0
        cdef char c
        PyBytes_AsStringAndSize(buf, &p, &n)
        if self._skip_lf and n > 0 and p[0] == b"\n":
            i = start = 1
        self._skip_lf = False
        while True:
            i = _line_break(p, i, n)
            if i == n:
                break
            c = p[i]
            self._line(p + start, i - start, out, sink)
            if c == b"\r":
                if i + 1 < n:
                    if p[i + 1] == b"\n":
                        i += 1
                else:
                    self._skip_lf = True
            i += 1
            start = i
        self._tail = _slice(p, start, n) if start < n else _EMPTY
        return 0

    cdef inline int _line(self, const char* line, Py_ssize_t n, list out, EventSink sink) except -1:
        cdef Py_ssize_t off
        if n == 0:
            event, data = self._event, self._data
            self._event = self._data = None
            if data is not None:
                if self._more is not None:
                    data = b"\n".join([data, *self._more])
                    self._more = None
                if sink is not None:
                    sink.take(event, data)
                else:
                    out.append((event, data))
            return 0
        off = _field_value(line, n, "data", 4)
        if off >= 0:
            value = PyBytes_FromStringAndSize(line + off, n - off)
            if self._data is None:
                self._data = value
            elif self._more is None:
                self._more = [value]
            else:
                self._more.append(value)
            return 0
        off = _field_value(line, n, "event", 5)
        if off >= 0:
            self._event = self._event_name(line + off, n - off)
        return 0

    cdef inline object _event_name(self, const char* name, Py_ssize_t n):
        cdef const char* last
        if self._name is not None and len(<bytes>self._name) == n:
            last = <bytes>self._name
            if memcmp(last, name, n) == 0:
                return self._name
        self._name = PyBytes_FromStringAndSize(name, n)
        return self._name

    def close(self):
        """Events left when the stream ends without its final blank line."""
        cdef list out = []
        self._close(out, None)
        return out

    cdef int close_into(self, EventSink sink) except -1:
        """``close``, the events going to ``sink.take``."""
        return self._close(None, sink)

    cdef int _close(self, list out, EventSink sink) except -1:
        cdef bytes buf = self._tail
        cdef const char* q = buf
        self._tail = _EMPTY
        if buf:
            self._line(q, len(buf), out, sink)
        return self._line(q, 0, out, sink)


cdef inline bytes _relayed(bytes buf, bytearray out, Py_ssize_t run_start, Py_ssize_t run_end):
    """What a feed passes on: the copied events, then the stretch passed through as it came."""
    if out is None:
        if run_start == 0 and run_end == len(buf):
            return buf
        return buf[run_start:run_end] if run_end > run_start else _EMPTY
    if run_end > run_start:
        out += buf[run_start:run_end]
    return bytes(out)


cdef class SSERelay:
    """Passes an OpenAI-shaped SSE stream through event by event, re-framed.

    ``feed`` returns the bytes of every event completed by this read, each ending ``\\n\\n``
    (the upstream may use CRLF or CR); an unfinished event stays buffered so a client never sees
    half of one. ``done`` turns true once ``data: [DONE]`` has been relayed, after which input is
    ignored: nothing may follow the terminator.
    """

    cdef bytes _tail
    cdef readonly bint done
    cdef readonly Py_ssize_t events

    def __cinit__(self):
        self._tail = _EMPTY
        self.done = False
        self.events = 0

    def feed(self, bytes chunk):
        if self.done:
            return _EMPTY
        # Only the current unfinished event is kept, so rescanning it is cheap; a CR that ended
        # the previous read and the LF that starts this one then meet again as one CRLF.
        cdef bytes buf = self._tail + chunk if self._tail else chunk
        cdef char* p
        cdef Py_ssize_t n, i = 0, ev_start = 0, line_start = 0, ev_end = -1
        # Events already framed as they go out (LF-terminated lines, one blank line after) are
        # passed on as one stretch of the input, ``p[run_start:run_end]``, not copied one by one.
        cdef Py_ssize_t run_start = 0, run_end = 0
        cdef bytearray out = None
        cdef char c
        cdef bint saw_done = False
        PyBytes_AsStringAndSize(buf, &p, &n)
        while True:
            i = _line_break(p, i, n)
            if i == n:
                break
            c = p[i]
            if c == b"\r" and i + 1 == n and i != line_start:
                # A CR ending a non-blank line may be half of a CRLF whose LF would otherwise read
                # as a blank line next time: rescan it with the next read. A CR ending a blank line
                # dispatches now; a stray LF after it is an empty line outside any event.
                break
            if i == line_start:
                if ev_end >= 0:
                    if p[ev_end] == b"\n" and i == ev_end + 1 and c == b"\n" and (
                        run_end == run_start or run_end == ev_start
                    ):
                        if run_end == run_start:
                            run_start = ev_start
                        run_end = i + 1
                    else:
                        if out is None:
                            out = bytearray()
                        if run_end > run_start:
                            out += p[run_start:run_end]
                            run_start = run_end = 0
                        out += p[ev_start:ev_end]
                        out += _BLANK
                    self.events += 1
                    if saw_done:
                        self.done = True
                        self._tail = _EMPTY
                        return _relayed(buf, out, run_start, run_end)
                ev_end = -1
                saw_done = False
            else:
                if ((i - line_start == 12 and memcmp(p + line_start, b"data: [DONE]", 12) == 0)
                        or (i - line_start == 11 and memcmp(p + line_start, b"data:[DONE]", 11) == 0)):
                    saw_done = True
                ev_end = i
            if c == b"\r" and i + 1 < n and p[i + 1] == b"\n":
                i += 1
            i += 1
            line_start = i
            if ev_end < 0:
                ev_start = i
        self._tail = _slice(p, ev_start, n) if ev_start < n else _EMPTY
        return _relayed(buf, out, run_start, run_end)
