# A client connection's per-request work (``fastgate/server/connection.py`` subclasses it): bytes
# fed to the request parser, the request handed to the connection's serving task, the answer's
# head and body written. In Python these were ~200 bytecodes a request; here the connection's
# state is struct fields. What waits (the serving loop, a stream's writes, an upload's body, an
# upgrade) stays in the Python subclass, which reads the same fields as attributes.

from fastgate.server import messages as _sp_messages
from fastgate.server.upload import HIGH_WATER as _SP_UPLOAD_HIGH_WATER

from cpython.unicode cimport PyUnicode_FindChar, PyUnicode_GET_LENGTH, PyUnicode_Substring

cdef object _sp_request_type = _sp_messages.Request
cdef bytes _SP_CONTINUE = _sp_messages.CONTINUE
cdef bytes _SP_LAST_CHUNK = _sp_messages.LAST_CHUNK
cdef Py_ssize_t _SP_PIPELINE_BUFFER = _sp_messages.PIPELINE_BUFFER
#: An answer's body this long or longer is written after its head, not copied onto it.
cdef Py_ssize_t _SP_JOINED = 16384


cdef class ServerProtocol:
    """One client connection's state and its hot callbacks; one request served at a time."""

    cdef public object server
    cdef public RequestParser parser
    cdef public object transport
    #: The connection's serving task: made with its first request, then waiting for each
    #: next one (a task per request would cost its creation and registration each time).
    cdef public object task
    #: A request is being served.
    cdef public bint busy
    cdef public object _next
    #: The head of a chunked answer has gone out; its end has not.
    cdef public bint streaming
    cdef public bint keep_alive
    #: Monotonic second since which nothing is in progress (0: a request is in progress).
    cdef public double idle_since
    #: When the request now being received began to arrive (0: none is).
    cdef public double head_since
    #: Monotonic second since which the transport has refused more writes (0: it takes them).
    cdef public double _writes_paused_since
    cdef public object _drain
    cdef public bint _read_paused
    #: Closed at once: the server had its limit of connections.
    cdef public bint _refused
    cdef public bint _discarding
    #: This request's 100 Continue is sent (once per request).
    cdef public bint _continued
    #: The current request: HTTP/1.0, a HEAD (the answer has no body), a chunked answer.
    cdef public bint _http10
    cdef public bint _head_only
    cdef public bint _chunked
    #: Smoothed seconds from an answer's last write to the client's next request (-1: none
    #: yet), timed while busy polling is on; whether the wait for the next one is polled.
    cdef public double _think_s
    cdef public bint _timing
    #: The poller polling through the wait for the next request, until it ends.
    cdef public object _polled
    #: The client's address, once asked for (``peer``).
    cdef public object _peer
    #: The streamed body of the request being served, until all of it has arrived.
    cdef public object _upload

    def __init__(self, server):
        self.server = server
        self.parser = RequestParser(server.max_body, server.max_upload, server.uploads)
        self.keep_alive = True
        self.idle_since = _ob_now()
        self._chunked = True
        self._think_s = -1.0

    def data_received(self, bytes data):
        if self._timing:
            self._client_returned()
        if self._discarding or self._refused:
            return
        if self._upload is not None:
            self._receive_body(data)
            return
        if self.busy:
            self.parser.feed(data)  # buffered: the next request is read when this one is done
            if self.parser.buffered > _SP_PIPELINE_BUFFER:
                self._flow()
            return
        self._receive(data)

    cpdef void _flow(self) except *:
        """Reads while the client takes its answers and its pipelined requests fit the buffer."""
        upload = self._upload
        cdef bint paused = (
            self._writes_paused_since != 0.0
            or (self.busy and self.parser.buffered > _SP_PIPELINE_BUFFER)
            or (upload is not None and (upload.held or upload.buffered > _SP_UPLOAD_HIGH_WATER))
        )
        transport = self.transport
        if paused != self._read_paused and transport is not None and not transport.is_closing():
            self._read_paused = paused
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    cdef void _receive(self, bytes data) except *:
        cdef RequestParser parser = self.parser
        cdef bint complete
        cdef str target
        cdef Py_ssize_t n, q
        try:
            complete = parser.feed(data)
        except RequestRefused as exc:
            self._refuse(exc.status, exc.message)
            return
        upload = None
        body = parser.body
        if body:  # complete, with its body (a streamed one has none here)
            pass
        elif parser.streams_body:
            upload = self._begin_upload(complete)
        elif not complete:
            if parser.head_done and parser.expect_continue and not parser.buffered and not self._continued:
                # The client waits for this before it sends the body (RFC 9110 §10.1.1).
                self._continued = True
                self._write(_SP_CONTINUE)
            if parser.started and not self.head_since:
                self.head_since = _ob_now()
            return
        self.head_since = 0.0
        self.idle_since = 0.0
        self._continued = False
        self._http10 = parser.http10
        method = parser.method
        self._head_only = method == "HEAD"
        target = parser.target
        n = PyUnicode_GET_LENGTH(target)
        q = PyUnicode_FindChar(target, 0x3F, 0, n, 1)  # "?": path, then the query
        if q < 0:
            path, query = target, ""
        else:
            path, query = PyUnicode_Substring(target, 0, q), PyUnicode_Substring(target, q + 1, n)
        request = _sp_request_type(self, method, path, query, parser.headers, body, parser.keep_alive, upload)
        self.keep_alive = parser.keep_alive
        self.busy = True
        waiting = self._next
        if waiting is not None:
            self._next = None
            waiting.set_result(request)
        else:  # its first request
            server = self.server
            server.fresh.pop(self, None)
            self.task = server.loop.create_task(self._serve_all(request))

    cdef void _client_returned(self) except *:
        self._timing = False
        self._think_s = smoothed(self._think_s, _ob_now() - self.idle_since)
        self._end_poll()

    cpdef void _end_poll(self) except *:
        poll, self._polled = self._polled, None
        if poll is not None:
            poll.arrived()

    cdef void _after(self) except *:
        """Between two requests: the next one may already be buffered (pipelining)."""
        parser = self.parser
        parser._reset()
        if parser.buffered:
            self._receive(b"")
        # Read on unless a pipelined request is being served with much more already waiting.
        if self._read_paused:
            self._flow()

    cpdef void _served(self) except *:
        """A request is answered, or failed: the connection is free for the next."""
        self.busy = False
        self._head_only = False
        upload = self._upload
        if upload is not None:  # answered before the whole body arrived
            upload.fail(400, "The request was answered before its body arrived")
            self._end_upload()

    cpdef object _next_request(self):
        """The future the next request resolves (a pipelined one may have already), or None
        when the connection is done: closed, or lingering after a refusal."""
        transport = self.transport
        server = self.server
        if transport is None or transport.is_closing() or not self.keep_alive or server.closing:
            if self._discarding:
                self._linger()
            else:
                self._close()
            return None
        self.idle_since = _ob_now()
        self._next = waiting = server.loop.create_future()
        self._after()
        poll = server.busy_poll
        if poll is not None and not waiting.done():
            self._timing = True
            self._polled = poll if poll.start(self._think_s, self.idle_since, 0) else None
        return waiting

    cpdef bint _keep(self) except -1:
        """Whether this answer keeps the connection open (it says so in its head): not when
        the request's body has not all arrived."""
        return self.keep_alive and not self.server.closing and self._upload is None

    cpdef void respond(self, response) except *:
        cdef bytes body = response.body
        cdef bint keep = self._keep()
        cdef bytes head = response_head(
            response.status,
            response.headers,
            response.content_type,
            len(body),
            keep,
            self.server.date,
            self._http10,
        )
        if not keep:
            self.keep_alive = False
        if self._head_only:
            self._write(head)  # a HEAD's answer: the head a GET would have, no body
        elif len(body) < _SP_JOINED:
            self._write(head + body)
        else:
            self._write(head, body)

    cpdef bytes _frame(self, bytes data):
        return b"%x\r\n%b\r\n" % (len(data), data) if self._chunked else data

    def write_chunk(self, bytes data):
        """``send_chunk`` without its wait, for a caller that cannot wait (a relay writing from
        its upstream's reads): True when the client takes no more writes for now, and the
        caller must await ``drained`` before the next."""
        if not data or self._head_only:
            return False
        if self.transport is None:  # connection_lost: the client went away
            raise ConnectionResetError("the client closed the connection")
        self._write(self._frame(data))
        return self._writes_paused_since != 0.0

    def end_stream(self, bytes last):
        self.streaming = False
        if self._head_only:
            return
        if not self._chunked:
            if last:
                self._write(last)
            return
        self._write(b"%x\r\n%b\r\n0\r\n\r\n" % (len(last), last) if last else _SP_LAST_CHUNK)

    cpdef void _write(self, bytes data, bytes more=None) except *:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        transport.write(data)
        if more is not None:
            transport.write(more)

    cpdef void _close(self) except *:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    def abort(self):
        """Cut the connection (a relayed body that broke midway: the client sees it incomplete)."""
        if self.transport is not None:
            self.transport.abort()
