# Server-sent events kernels (https://html.spec.whatwg.org/multipage/server-sent-events.html).
#
# Lines end in CRLF, LF or CR; a blank line ends an event. Network reads split events, and even
# a CRLF pair, anywhere, so both classes below keep the unfinished event between feeds.

from cpython.bytearray cimport (
    PyByteArray_AS_STRING,
    PyByteArray_FromStringAndSize,
    PyByteArray_GET_SIZE,
    PyByteArray_Resize,
)
from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_AsStringAndSize,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from libc.string cimport memchr, memcmp, memcpy

cdef extern from "Python.h":
    ctypedef struct _sse_ByteArrayObject "PyByteArrayObject":
        Py_ssize_t ob_alloc

cdef bytes _SSE_DONE = b"[DONE]"
cdef bytes _SSE_EMPTY = b""
cdef bytes _SSE_BLANK = b"\n\n"


cdef inline bytes _sse_slice(const char* p, Py_ssize_t start, Py_ssize_t end):
    """``buf[start:end]`` of the buffer at ``p``, without the generic slicing call behind it."""
    return PyBytes_FromStringAndSize(p + start, end - start)


cdef inline Py_ssize_t _sse_field_value(const char* line, Py_ssize_t n, const char* name,
                                    Py_ssize_t name_len) noexcept:
    """Offset of the value of field ``name`` in ``line`` (after ``name:`` and one space), or -1.
    A line that is the bare name is the field with an empty value."""
    if n < name_len or memcmp(line, name, name_len) != 0:
        return -1
    if n == name_len:
        return n
    if line[name_len] != b":":
        return -1
    if n > name_len + 1 and line[name_len + 1] == b" ":
        return name_len + 2
    return name_len + 1


cdef inline Py_ssize_t _sse_next_break(const char* p, Py_ssize_t i, Py_ssize_t n,
                                   Py_ssize_t* cr) noexcept:
    """The next CR or LF at or after ``i``, or ``n``. ``*cr`` keeps the next CR between the
    calls of one scan (``n`` when none is left; start it at -1), so a stream without CRs, nearly
    every one, costs one search per line and one per read."""
    cdef const char* q
    if cr[0] < i:
        q = <const char*>memchr(p + i, b"\r", n - i)
        cr[0] = n if q == NULL else q - p
    q = <const char*>memchr(p + i, b"\n", cr[0] - i)
    return cr[0] if q == NULL else q - p


cdef inline Py_ssize_t _sse_two_lines(const char* p, Py_ssize_t n, Py_ssize_t* event_n,
                                   Py_ssize_t* data_at, Py_ssize_t* data_n) noexcept:
    """The length of the event at ``p`` when it is written ``event: NAME``, ``data: DATA`` and a
    blank line, each line ending in LF alone (as most servers write every event), with its name
    (from ``p + 7``) and data found; 0 for any other form, which the line parse reads to the
    same event."""
    cdef const char* q
    cdef Py_ssize_t name_end, data_end
    if n < 16 or memcmp(p, b"event: ", 7) != 0:
        return 0
    q = <const char*>memchr(p + 7, b"\n", n - 7)
    if q == NULL:
        return 0
    name_end = q - p
    if n - name_end < 9 or memcmp(q + 1, b"data: ", 6) != 0:
        return 0
    q = <const char*>memchr(q + 7, b"\n", n - name_end - 7)
    if q == NULL:
        return 0
    data_end = q - p
    if data_end + 1 >= n or q[1] != b"\n" or memchr(p, b"\r", data_end) != NULL:
        return 0
    event_n[0] = name_end - 7
    data_at[0] = name_end + 7
    data_n[0] = data_end - name_end - 7
    return data_end + 2


cdef inline int _sse_scanned_bytes(bytearray pending, bytes chunk, char** p, Py_ssize_t* n) except -1:
    """What a read is scanned in: the read itself, or the unfinished event with the read
    appended (amortised: the event is not copied again with each read)."""
    cdef Py_ssize_t size, need
    if pending is None:
        PyBytes_AsStringAndSize(chunk, p, n)
        return 0
    size = PyByteArray_GET_SIZE(pending)
    need = size + PyBytes_GET_SIZE(chunk)
    if need >= (<_sse_ByteArrayObject*>pending).ob_alloc:
        # Room for twice the event: bytearray grows by an eighth, and each growth is a realloc
        # that copies the event when the heap has no room after it (late in a long-lived
        # process), which made a 1 MB event in 4 KB reads cost 1.7x its cost in 64 KB reads.
        # The size set back just after is within the new allocation's half, which keeps it.
        PyByteArray_Resize(pending, 2 * need)
    PyByteArray_Resize(pending, need)
    memcpy(PyByteArray_AS_STRING(pending) + size, PyBytes_AS_STRING(chunk), need - size)
    p[0], n[0] = PyByteArray_AS_STRING(pending), need
    return 0


cdef inline bytearray _sse_unfinished(bytearray pending, const char* p, Py_ssize_t start,
                                  Py_ssize_t n):
    """What is kept for the next read: ``p[start:n]``, the unfinished event (None: nothing)."""
    if start >= n:
        return None
    if pending is None:
        return PyByteArray_FromStringAndSize(p + start, n - start)
    if start:
        del pending[:start]
    return pending


cdef class EventSink:
    """What an SSEDecoder hands each event to as it completes (``SSEDecoder.scan``), as pointers
    into the bytes being scanned: a stream mapper that extends this makes no object for an event
    it can map from the bytes. ``event`` is NULL when the event has no ``event:`` field; the
    pointers are valid only during the call."""

    cdef int take(self, const char* event, Py_ssize_t event_n, const char* data,
                  Py_ssize_t n) except -1:
        raise NotImplementedError

    cdef Py_ssize_t whole(self, const char* p, Py_ssize_t n) except -1:
        """Offered the bytes of the read from an event's first byte, before they are parsed
        line by line: a sink that maps an event written in a form it knows from those bytes
        alone returns the event's length, blank line included, and the scan goes on after it;
        0 leaves the event to the parse (and to ``take``)."""
        return 0


cdef class _SseEventList(EventSink):
    """The sink behind ``SSEDecoder.feed``: ``(event, data)`` pairs of bytes in a list."""

    cdef list out
    cdef bytes _name  # the last event name made: a stream repeats a few, so they are shared

    def __cinit__(self):
        self.out = []
        self._name = None

    cdef int take(self, const char* event, Py_ssize_t event_n, const char* data,
                  Py_ssize_t n) except -1:
        cdef object name = None
        if event != NULL:
            if (self._name is None or PyBytes_GET_SIZE(self._name) != event_n
                    or memcmp(PyBytes_AS_STRING(self._name), event, event_n) != 0):
                self._name = PyBytes_FromStringAndSize(event, event_n)
            name = self._name
        self.out.append((name, PyBytes_FromStringAndSize(data, n)))
        return 0

    cdef list taken(self):
        cdef list out = self.out
        self.out = []
        return out


cdef class SSEDecoder:
    """Incremental SSE parser: bytes in, events out.

    ``feed`` returns ``(event, data)`` pairs: ``event`` is the ``event:`` field (``None`` when
    absent); ``data`` joins the event's ``data:`` lines with ``\\n``. Events without data
    (comments, keep-alives) are skipped, as the spec's dispatch step does.

    The unfinished event is kept whole between reads (``_pending``, with where its fields are),
    so each event is handed on as pointers into one buffer: no object per line. Reads that
    continue an event are appended to it and only their bytes are searched, so an event of
    any size costs time in proportion to its size, whatever the reads.
    """

    cdef bytearray _pending  # the unfinished event, from its first line (None: nothing)
    cdef Py_ssize_t _line_at  # where its unfinished line starts
    cdef Py_ssize_t _scanned  # how far line ends were searched for
    cdef Py_ssize_t _event_at, _event_n  # its event field's value (-1: none yet)
    cdef Py_ssize_t _data_at, _data_n  # its first data line's value (-1: none yet)
    cdef bytearray _more  # its data lines joined, from the second one on (rare)
    cdef _SseEventList _list

    def __cinit__(self):
        self._pending = None
        self._line_at = self._scanned = 0
        self._event_at = self._data_at = -1
        self._event_n = self._data_n = 0
        self._more = None
        self._list = None

    def feed(self, bytes chunk):
        if self._list is None:
            self._list = _SseEventList()
        self.scan(chunk, self._list)
        return self._list.taken()

    def close(self):
        """Events left when the stream ends without its final blank line."""
        return self.feed(_SSE_BLANK)

    cdef int close_into(self, EventSink sink) except -1:
        """``close``, the events going to ``sink.take``."""
        return self.scan(_SSE_BLANK, sink)

    cdef int scan(self, bytes chunk, EventSink sink) except -1:
        """``feed``, each event going to ``sink.take`` instead of into a list."""
        cdef bytearray pending = self._pending
        cdef char* p
        cdef Py_ssize_t n, i, start, ev_start = 0, off, cr = -1
        cdef char c
        cdef bint blank
        _sse_scanned_bytes(pending, chunk, &p, &n)
        i = self._scanned
        start = self._line_at
        while True:
            if i == ev_start and start == i and self._event_at < 0 and self._data_at < 0:
                off = sink.whole(p + i, n - i)
                if off:
                    i = start = ev_start = i + off
                    continue
            i = _sse_next_break(p, i, n, &cr)
            if i == n:
                break
            c = p[i]
            if c == b"\r" and i + 1 == n and i != start:
                # Maybe half of a CRLF, whose LF would read as a blank line: searched again with
                # the next read. A CR ending a blank line dispatches now, and an LF after it is
                # one more blank line, which dispatches nothing.
                break
            blank = i == start
            if blank:
                if self._data_at >= 0:
                    self._dispatch(p, sink)
                self._event_at = self._data_at = -1
            else:
                off = _sse_field_value(p + start, i - start, "data", 4)
                if off >= 0:
                    self._data_line(p, start + off, i)
                else:
                    off = _sse_field_value(p + start, i - start, "event", 5)
                    if off >= 0:
                        self._event_at, self._event_n = start + off, i - start - off
            if c == b"\r" and i + 1 < n and p[i + 1] == b"\n":
                i += 1
            i += 1
            start = i
            if blank:
                ev_start = i
        self._pending = _sse_unfinished(pending, p, ev_start, n)
        if self._pending is None:
            self._line_at = self._scanned = 0
            return 0
        self._line_at, self._scanned = start - ev_start, i - ev_start
        if self._event_at >= 0:
            self._event_at -= ev_start
        if self._data_at >= 0:
            self._data_at -= ev_start
        return 0

    cdef inline int _data_line(self, const char* p, Py_ssize_t at, Py_ssize_t end) except -1:
        if self._data_at < 0:
            self._data_at, self._data_n = at, end - at
            return 0
        if self._more is None:
            self._more = bytearray(p[self._data_at:self._data_at + self._data_n])
        self._more += b"\n"
        self._more += p[at:end]
        return 0

    cdef inline int _dispatch(self, const char* p, EventSink sink) except -1:
        cdef const char* event = NULL
        if self._event_at >= 0:
            event = p + self._event_at
        cdef bytearray more = self._more
        if more is None:
            return sink.take(event, self._event_n, p + self._data_at, self._data_n)
        self._more = None
        return sink.take(event, self._event_n, PyByteArray_AS_STRING(more), len(more))


cdef inline bytes _sse_relayed(bytes chunk, const char* p, Py_ssize_t n, bytearray out,
                           Py_ssize_t run_start, Py_ssize_t run_end):
    """What a feed passes on: the copied events, then the stretch passed through as it came
    (``chunk`` itself when that is all of it)."""
    if out is None:
        if run_start == 0 and run_end == n and chunk is not None:
            return chunk
        return PyBytes_FromStringAndSize(p + run_start, run_end - run_start) if run_end > run_start else _SSE_EMPTY
    if run_end > run_start:
        out += p[run_start:run_end]
    return bytes(out)


cdef class SSERelay:
    """Passes an OpenAI-shaped SSE stream through event by event, re-framed.

    ``feed`` returns the bytes of every event completed by this read, each ending ``\\n\\n``
    (the upstream may use CRLF or CR); an unfinished event stays buffered so a client never sees
    half of one. ``done`` turns true once ``data: [DONE]`` has been relayed, after which input is
    ignored: nothing may follow the terminator. A read that continues an event is appended to it
    and only its own bytes are searched, as in ``SSEDecoder``.
    """

    cdef bytearray _pending  # the unfinished event, from its first line (None: nothing)
    cdef Py_ssize_t _line_at  # where its unfinished line starts
    cdef Py_ssize_t _scanned  # how far line ends were searched for
    cdef Py_ssize_t _ev_end  # where its last complete line ends (-1: no line yet)
    cdef bint _saw_done  # one of its lines is ``data: [DONE]``
    cdef readonly bint done
    cdef readonly Py_ssize_t events

    def __cinit__(self):
        self._pending = None
        self._line_at = self._scanned = 0
        self._ev_end = -1
        self._saw_done = False
        self.done = False
        self.events = 0

    def feed(self, bytes chunk):
        if self.done:
            return _SSE_EMPTY
        cdef bytearray pending = self._pending
        cdef bytes whole = None  # the read, when it is all there is to scan
        cdef char* p
        cdef Py_ssize_t n, i, ev_start = 0, line_start, ev_end, cr = -1
        # Events already framed as they go out (LF-terminated lines, one blank line after) are
        # passed on as one stretch of the input, ``p[run_start:run_end]``, not copied one by one.
        cdef Py_ssize_t run_start = 0, run_end = 0
        cdef bytearray out = None
        cdef char c
        cdef bint saw_done = self._saw_done
        if pending is None:
            whole = chunk
        _sse_scanned_bytes(pending, chunk, &p, &n)
        i = self._scanned
        line_start = self._line_at
        ev_end = self._ev_end
        while True:
            i = _sse_next_break(p, i, n, &cr)
            if i == n:
                break
            c = p[i]
            if c == b"\r" and i + 1 == n and i != line_start:
                # A CR ending a non-blank line may be half of a CRLF whose LF would otherwise read
                # as a blank line next time: searched again with the next read. A CR ending a
                # blank line dispatches now; a stray LF after it is an empty line outside any event.
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
                        out += _SSE_BLANK
                    self.events += 1
                    if saw_done:
                        self.done = True
                        self._pending = None
                        return _sse_relayed(whole, p, n, out, run_start, run_end)
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
        result = _sse_relayed(whole, p, n, out, run_start, run_end)
        self._pending = _sse_unfinished(pending, p, ev_start, n)
        if self._pending is None:
            self._line_at = self._scanned = 0
            self._ev_end = -1
            self._saw_done = False
            return result
        self._line_at, self._scanned = line_start - ev_start, i - ev_start
        self._ev_end = ev_end - ev_start if ev_end >= 0 else -1
        self._saw_done = saw_done
        return result
