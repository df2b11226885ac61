# The upstream pool's per-request bookkeeping (``fastgate/upstream/pool.py`` subclasses it): an
# idle connection taken for a request, the busy one filed for the watchdog, put back or forgotten
# when its answer is done. In Python these were ~170 bytecodes a request, called from the
# connection's own compiled work; here they are C calls on struct fields. Opening connections,
# sending a request and waiting for its head stay in the Python subclass.

from libc.math cimport ceil as _pl_ceil, floor as _pl_floor


cdef class UpstreamPoolCore:
    """Idle connections per origin, busy ones watched for read timeouts: one watchdog for the
    pool, each connection filed under the tick by which it could first time out."""

    cdef public double read_timeout
    cdef public double idle_timeout
    cdef public double max_stream_seconds
    cdef public Py_ssize_t max_body
    cdef public Py_ssize_t max_idle
    #: Seconds between two watchdog rounds.
    cdef public double _watch_every
    #: Idle connections by origin key, the most recently put back last.
    cdef public dict _idle
    #: Connections with a request in flight, watched for read timeouts.
    cdef public set busy
    #: Watched connections by the watchdog tick (monotonic time / ``_watch_every``, rounded up)
    #: by which each could first time out, and each one's tick.
    cdef public dict _ticks
    cdef public dict _filed
    #: The server's poller (``busy_poll.py``): waits on fast origins are polled through it.
    cdef public object busy_poll
    cdef public object _watch_handle
    cdef public object _sweep_handle

    def __init__(
        self,
        double read_timeout,
        double idle_timeout,
        double max_stream_seconds,
        Py_ssize_t max_body,
        Py_ssize_t max_idle,
        double watch_every,
    ):
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self.max_stream_seconds = max_stream_seconds
        self.max_body = max_body
        self.max_idle = max_idle
        self._watch_every = watch_every
        self._idle = {}
        self.busy = set()
        self._ticks = {}
        self._filed = {}

    cpdef void watch(self, UpstreamProtocol conn) except *:
        """A request was sent on ``conn``: watch it until it is put back or forgotten. A
        kept-alive connection stays filed between its requests; its tick comes, it is looked at
        again."""
        self.busy.add(conn)
        if conn not in self._filed:
            self._file(conn, _ob_now())
        if self._watch_handle is None:
            self._watch_handle = _up_asyncio.get_running_loop().call_later(self._watch_every, self._watchdog)

    cdef void _file(self, UpstreamProtocol conn, double now) except *:
        """File ``conn`` under the first tick at which it could have timed out: its last byte's
        time plus the read timeout, or its stream's deadline (a stream not begun yet has one no
        sooner than ``max_stream_seconds`` from now); never the tick now running."""
        cdef double every = self._watch_every
        cdef double deadline = conn.stream_deadline or now + self.max_stream_seconds
        cdef double due = min(conn.last_io + self.read_timeout, deadline)
        tick = <long long>max(_pl_ceil(due / every), _pl_floor(now / every) + 1)
        self._filed[conn] = tick
        filed = self._ticks.get(tick)
        if filed is None:
            self._ticks[tick] = {conn}
        else:
            (<set>filed).add(conn)

    def _watchdog(self):
        cdef UpstreamProtocol conn
        self._watch_handle = None
        cdef double now = _ob_now()
        cdef double current = now / self._watch_every
        for tick in [t for t in self._ticks if t <= current]:
            for conn in self._ticks.pop(tick):
                del self._filed[conn]
                if conn in self.busy:
                    conn.timed_out(now, self.read_timeout)  # failed: forgotten; else filed again
                    if conn in self.busy:
                        self._file(conn, now)
        if self.busy:
            self._watch_handle = _up_asyncio.get_running_loop().call_later(
                self._watch_every, self._watchdog
            )

    cpdef void forget(self, UpstreamProtocol conn) except *:
        """The connection is closed: not watched any more."""
        self.busy.discard(conn)
        tick = self._filed.pop(conn, None)
        if tick is not None:
            filed = <set>self._ticks[tick]
            filed.discard(conn)
            if not filed:
                del self._ticks[tick]

    cpdef void put(self, UpstreamProtocol conn) except *:
        """A connection whose answer was read to its end, back among the idle (or closed, when
        its origin has enough of them)."""
        self.busy.discard(conn)
        key = conn.origin.key
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = []
        if len(<list>idle) >= self.max_idle:
            conn.abort()
            return
        conn.idle_since = _ob_now()
        (<list>idle).append(conn)
        if self._sweep_handle is None:
            self._sweep_handle = _up_asyncio.get_running_loop().call_later(self.idle_timeout, self._sweep)

    cpdef object _take(self, object origin):
        """An idle connection still fit to write to: open, not idle too long, and not closed
        (or spoken on) by the upstream while it waited; None when there is none."""
        cdef UpstreamProtocol conn
        idle = self._idle.get(origin.key)
        if not idle:
            return None
        cdef double now = _ob_now()
        while idle:
            conn = (<list>idle).pop()
            if now - conn.idle_since < self.idle_timeout and not conn._is_stale():
                return conn
            conn.abort()
        return None
