# The upstream connection's per-request work (``fastgate/upstream/connection.py`` subclasses it):
# a request written, its answer's bytes fed to the response parser as they arrive, the whole body
# taken, the connection judged fit to be reused. In Python these were ~270 bytecodes a request,
# most of them reads and writes of the connection's own attributes; here they are struct fields.
# What waits (a streamed body written, a body read piece by piece, a relay) stays in the Python
# subclass, which reads the same fields as attributes.

import asyncio as _up_asyncio
import select as _up_select

cdef Py_ssize_t _UP_HIGH_WATER = 1024 * 1024


cpdef double smoothed(double estimate, double sample) noexcept:
    """A wait's expected length after one more sample: an eighth of the way to it, as TCP
    smooths its round-trip time (RFC 6298); the first sample (``estimate`` negative) as it is."""
    return sample if estimate < 0.0 else estimate + (sample - estimate) / 8


class UpstreamConnectionError(OSError):
    """The upstream refused, reset or broke the connection, or spoke broken HTTP."""


class NothingWritten(UpstreamConnectionError):
    """The connection was found closed as the request was written: no byte of it left."""


cdef inline object _up_copy(object exc):
    """A fresh instance of a connection's stored failure, for one raise (the stored one, raised,
    would keep the frames it went through, which hold the connection: a cycle)."""
    return type(exc)(*exc.args)


cdef class UpstreamProtocol:
    """One kept-alive connection's state and its asyncio protocol callbacks; one request at a time."""

    cdef public UpstreamPoolCore pool
    cdef public object origin
    cdef public object transport
    cdef public object loop
    cdef public ResponseParser parser
    cdef public bint closed
    cdef public double idle_since
    #: When a byte last arrived (or the request was sent), for the pool's watchdog.
    cdef public double last_io
    #: When a stream must have ended (0: no limit), for the pool's watchdog.
    cdef public double stream_deadline
    cdef public object _head
    #: Body bytes received and not yet taken, and their size.
    cdef public list _chunks
    cdef public Py_ssize_t _buffered
    cdef public object _waiter
    cdef public object _error
    cdef public bint _paused
    #: The request was written and no byte of its answer has come: time the wait.
    cdef public bint _timing
    #: The pool's poller while it polls through this wait, until the wait ends.
    cdef public object _polled
    #: Watches the socket for bytes or an EOF while the connection is idle (``stale``).
    cdef public object _readable
    #: The streamed request body being written, and whether the transport takes more.
    cdef public object _body
    cdef public bint _write_paused
    #: The answer came before all of a streamed body was sent: not reusable.
    cdef public bint _body_cut
    #: While a body is relayed (``UpstreamResponse.relay``): takes each read's body bytes,
    #: False when it wants no more for now (reading then pauses and the relay returns).
    cdef public object _sink
    cdef public bint _sink_full
    cdef object __weakref__  # the tests watch that closed connections are freed

    def __init__(self, UpstreamPoolCore pool, origin):
        self.pool = pool
        self.origin = origin
        self.parser = ResponseParser()
        self._chunks = []

    # -- asyncio.Protocol
    def connection_made(self, transport):
        self.transport = transport
        self.loop = _up_asyncio.get_running_loop()  # held: each look-up costs a getpid
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._readable = _up_select.poll()
            self._readable.register(sock.fileno(), _up_select.POLLIN)

    def data_received(self, bytes data):
        cdef double now = _ob_now()
        cdef list chunks
        cdef object chunk, head, waiter
        cdef object sink = self._sink
        cdef ResponseParser parser = self.parser
        if self._timing:
            self._first_byte(now)
        self.last_io = now
        try:
            chunks = parser.feed(data)
        except HTTPParseError as exc:
            self._fail(UpstreamConnectionError(f"invalid HTTP from upstream: {exc}"))
            return
        if chunks:
            if sink is not None:
                chunk = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                if not sink(chunk):
                    self._sink_full = True
                    self._pause()
            else:
                for chunk in chunks:
                    self._chunks.append(chunk)
                    self._buffered += len(<bytes>chunk)
                if self._buffered > _UP_HIGH_WATER:
                    self._pause()
        head = self._head
        if head is not None and parser.head_done and not head.done():
            head.set_result(None)
            if self._body is not None:  # answered while the body is still being sent
                self._body.wake()
        waiter = self._waiter
        if (
            waiter is not None
            and (parser._state == S_DONE or self._sink_full or (chunks and sink is None))
            and not waiter.done()
        ):
            waiter.set_result(None)

    def eof_received(self):
        return None  # the transport closes; connection_lost tells whether the body was whole

    def connection_lost(self, exc):
        self.closed = True
        self.pool.forget(self)
        parser = self.parser
        if parser._state == S_BODY_EOF:
            parser.feed_eof()
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)
            return
        if parser._state != S_DONE:
            reason = f" ({exc})" if exc else ""
            self._fail(UpstreamConnectionError(f"upstream closed the connection{reason}"))

    def pause_writing(self):
        self._write_paused = True
        if self._body is not None:
            self._body.throttle(True)

    def resume_writing(self):
        self._write_paused = False
        if self._body is not None:
            self._body.throttle(False)

    cdef void _pause(self) except *:
        if self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    cpdef void _resume(self) except *:
        if self._paused and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    cdef void _first_byte(self, double now) except *:
        self._timing = False
        origin = self.origin
        origin.answer_s = smoothed(origin.answer_s, now - self.last_io)
        self._end_poll()

    cpdef void _end_poll(self) except *:
        poll, self._polled = self._polled, None
        if poll is not None:
            poll.arrived()

    # -- the client side
    cpdef void _fail(self, exc) except *:
        # Kept, and raised as copies (``_up_copy``).
        self._error = exc
        for fut in (self._head, self._waiter):
            if fut is not None and not fut.done():
                fut.set_exception(_up_copy(exc))
        if self._body is not None:  # its writer has something to look at
            self._body.wake()
        self.abort()

    cpdef void abort(self) except *:
        self.closed = True
        self._end_poll()
        self._head = None  # failed or cancelled: its exception's frames hold this connection
        self.pool.forget(self)
        if self.transport is not None:
            self.transport.abort()

    @property
    def stale(self):
        """An idle connection the upstream closed, or spoke on unasked, since it was put back.

        The event loop may not have read that yet: the socket itself is asked (one ``poll``
        with no wait). Go's net/http reuses only connections its reader found still open
        (``persistConn.isBroken``); a request written to one the upstream had closed would
        fail with no way to tell whether it was processed.
        """
        return self._is_stale()

    cdef bint _is_stale(self) except -1:
        if self.closed:
            return True
        readable = self._readable
        return readable is not None and bool(readable.poll(0))

    def send(self, bytes request, bint head_request):
        """Write the request; the future resolves with the response head.

        Whoever awaits it aborts the connection when the wait ends in anything but the head.
        Raises :class:`NothingWritten` when the write could not begin (the connection was
        closing, or the first send failed at once).
        """
        cdef double now
        transport = self.transport
        if transport.is_closing():
            raise NothingWritten("upstream closed the connection before the request was written")
        self.parser._reset(head_request)
        if self._chunks:
            del self._chunks[:]
        self._buffered = 0
        self._sink_full = False
        self._resume()  # a relay that stopped at its body's last read left reading paused
        self._error = None
        self._body_cut = False
        self.stream_deadline = 0.0
        self.last_io = now = _ob_now()
        pool = self.pool
        pool.watch(self)
        transport.write(request)
        if transport.is_closing():
            # The transport's first send failed (it tries at once): nothing reached the socket.
            raise NothingWritten("upstream closed the connection before the request was written")
        head = self._head = self.loop.create_future()
        poll = pool.busy_poll
        if poll is not None:
            self._timing = True
            self._polled = poll if poll.start(self.origin.answer_s, now, 1) else None
        return head

    def failure(self):
        """A fresh copy of the connection's failure, for one raise."""
        return _up_copy(self._error)

    cpdef bytes take_received(self):
        """Everything received and not yet taken, as one piece; reading resumes if it paused."""
        cdef list chunks = self._chunks
        cdef bytes chunk = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        del chunks[:]
        self._buffered = 0
        self._resume()
        return chunk

    cdef bint _received_whole(self) except -1:
        """The whole body has arrived, within the size limit."""
        return (
            self.parser._state == S_DONE
            and self._error is None
            and self._buffered <= self.pool.max_body
        )

    cdef bint _reusable(self) except -1:
        parser = self.parser
        return (
            not self.closed
            and parser._state == S_DONE
            and parser.keep_alive
            and parser._pending is None
            and not self._body_cut
        )

    cdef object whole_body(self):
        """The whole body if it has all arrived with what was read so far, else None; the
        connection is then done with this answer and goes back to its pool (or is closed)."""
        if not self._received_whole():
            return None
        body = self.take_received()
        self.release()
        return body

    cdef void release(self) except *:
        """This answer was read to its end (or given up): back to the pool if fit, else closed."""
        if self._reusable():
            self.pool.put(self)
        else:
            self.abort()


cdef class UpstreamHead:
    """The head of an upstream response (``fastgate/upstream/connection.py``'s
    ``UpstreamResponse`` adds the reads that wait), and its connection until it is released."""

    cdef public UpstreamProtocol _conn
    cdef public bint _released
    cdef readonly int status
    #: ``(name, value)`` pairs, the names lower-cased.
    cdef readonly list headers
    #: The media type without its parameters.
    cdef readonly str content_type

    def __init__(self, UpstreamProtocol conn):
        cdef ResponseParser parser = conn.parser
        content_type = parser.content_type
        self._conn = conn
        self.status = parser.status
        self.headers = parser.headers
        self.content_type = (
            (<str>content_type).partition(";")[0].strip() if content_type else "application/octet-stream"
        )

    def headers_except(self, frozenset dropped):
        """The headers as a dictionary, but those named in ``dropped``."""
        cdef dict kept = {}
        cdef tuple pair
        for pair in self.headers:
            name = pair[0]
            if name not in dropped:
                kept[name] = pair[1]
        return kept

    cpdef object received_body(self):
        """The whole body if it has all arrived already (then the connection is released)."""
        body = self._conn.whole_body()
        if body is not None:
            self._released = True
        return body  # None: the subclass's read() waits, raises or refuses it

    cpdef void release(self) except *:
        """Give the connection back when the response was read to its end, else close it."""
        if not self._released:
            self._released = True
            self._conn.release()
