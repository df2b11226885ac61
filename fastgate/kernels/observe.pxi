# The observability stage's per-request work (gateway/stages/observability.py), compiled: the
# request's record, its metrics summed into C arrays per label set (handed to prometheus-client
# at a scrape), its access-log line written into one buffer, and its Server-Timing header.
#
# In Python each of these was microseconds of attribute look-ups, bisects, a Struct of twenty
# fields and float formatting per request: metrics, log and headers cost 1.5x the CPU of a
# request with everything off. Here they are C loops over C numbers, and the line is written
# straight into the buffer the log writes out. Private names: _ob_.

from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport round as _ob_round
from libc.string cimport strlen
from posix.time cimport CLOCK_MONOTONIC, CLOCK_REALTIME, clock_gettime, timespec

import asyncio as _ob_asyncio
import time as _ob_time

import msgspec as _ob_msgspec


cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags, int* ptype) except NULL
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)


cdef object _ob_encode = _ob_msgspec.json.Encoder().encode
cdef const char* _OB_HEX = b"0123456789abcdef"
# Bytes a JSON string cannot hold as they are (RFC 8259 §7): the quote, the backslash and the
# control characters.
cdef bint _OB_ESCAPED[256]


cdef int _ob_escapes() except -1:
    cdef int i
    for i in range(256):
        _OB_ESCAPED[i] = i < 32 or i == 34 or i == 92
    return 0


_ob_escapes()


cdef inline double _ob_clock(int clock) noexcept:
    cdef timespec ts
    clock_gettime(clock, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline double _ob_now() noexcept:
    """The record's clock: CLOCK_MONOTONIC, which ``time.monotonic()`` reads too (a C call
    instead of a Python one)."""
    return _ob_clock(CLOCK_MONOTONIC)

# The histograms a label set keeps (indexes into Tally's bounds and TallySeries' counts).
cdef enum:
    _OB_DURATION = 0
    _OB_OVERHEAD = 1
    _OB_TTFT = 2
    _OB_UPSTREAM = 3
    _OB_INPUT = 4
    _OB_OUTPUT = 5
    _OB_KINDS = 6
    _OB_MAX_BUCKETS = 32
# Distinct (provider, model) pairs whose label was decided, remembered before starting over.
cdef Py_ssize_t _OB_MAX_LABELS = 4096


@cython.final
@cython.no_gc
cdef class RequestRecord:
    """One request as observability sees it: a handful of numbers noted on its way (times are
    ``time.monotonic()`` seconds), the rest filled once the answer is out. Untracked by the
    garbage collector: it holds no container that could lead back to it."""

    cdef public double start
    # When the current attempt went upstream (0: none is waiting), and when the answer's first
    # byte was in hand (its head, and for a stream its first chunk; 0: none came).
    cdef public double sent
    cdef public double first_byte
    # Seconds spent waiting on upstreams: every attempt's, and a stream's body, added up.
    cdef public double upstream_s
    cdef public double end
    # Upstream attempts (targets tried, and their retries), and the retries among them.
    cdef public int attempts
    cdef public int retries
    cdef public int status
    # The body is relayed as it comes (a stream, the passthrough); the usage was read.
    cdef public bint streamed
    cdef public bint accounted
    cdef public long long input_tokens
    cdef public long long output_tokens
    cdef public long long cached_tokens
    cdef public long long reasoning_tokens
    # US dollars (a float), or None when no price is known.
    cdef public object cost
    # The route's pattern, never the raw path (bounded); the model asked for and the one the
    # answer names; x-portkey-last-used-option-index and -cache-status; OpenAI's error type.
    cdef public str route
    cdef public str provider
    cdef public str model
    cdef public str response_model
    cdef public str option
    cdef public str cache
    cdef public str error
    # The request's spans while it is traced (observability/tracing.py's TraceState).
    cdef public object trace

    def __cinit__(self, double start=0.0):
        self.start = start
        self.cost = None
        self.route = self.provider = self.model = self.response_model = ""
        self.option = self.cache = self.error = ""
        self.trace = None


@cython.final
cdef class TallySeries:
    """The pending sums of one label set: what its requests added since the last scrape."""

    cdef readonly tuple key
    # What the sums go to at a scrape (prometheus-client's children, set by the Python side).
    cdef public object children
    cdef bint dirty
    cdef long long requests, input, output, cached, reasoning, retries, fallbacks
    cdef double cost
    cdef long long counts[_OB_KINDS][_OB_MAX_BUCKETS]
    cdef double sums[_OB_KINDS]
    cdef int nbuckets[_OB_KINDS]

    def take(self):
        """The pending values, cleared: ``(requests, input, output, cached, reasoning, cost,
        retries, fallbacks)`` and, per histogram, ``(counts per bucket, sum)``."""
        cdef int k, i
        totals = (
            self.requests, self.input, self.output, self.cached, self.reasoning, self.cost,
            self.retries, self.fallbacks,
        )
        hists = []
        for k in range(_OB_KINDS):
            hists.append(([self.counts[k][i] for i in range(self.nbuckets[k])], self.sums[k]))
            for i in range(self.nbuckets[k]):
                self.counts[k][i] = 0
            self.sums[k] = 0.0
        self.requests = self.input = self.output = self.cached = self.reasoning = 0
        self.retries = self.fallbacks = 0
        self.cost = 0.0
        self.dirty = False
        return totals, hists


cdef inline int _ob_bucket(const double* bounds, int n, double value) noexcept:
    """prometheus-client's bucket: the first whose upper bound is >= the value (n: +Inf)."""
    cdef int i
    for i in range(n):
        if value <= bounds[i]:
            return i
    return n


cdef inline void _ob_count(TallySeries s, const double* bounds, int n, int kind, double value) noexcept:
    s.counts[kind][_ob_bucket(bounds, n, value)] += 1
    s.sums[kind] += value


@cython.final
cdef class Tally:
    """A worker's metrics as sums per label set (route, provider, model, status, cache, error)."""

    cdef dict _series
    cdef list _dirty
    cdef frozenset _models
    cdef dict _labels
    # Python: whether a (provider, model) is worth a label of its own; a new label set's children.
    cdef object _known
    cdef object _make
    cdef double bounds[_OB_KINDS][_OB_MAX_BUCKETS]
    cdef int nbounds[_OB_KINDS]

    def __init__(self, tuple bounds, models, known, make):
        """``bounds``: the finite upper bounds of the duration, overhead, time-to-first-token,
        upstream, input-token and output-token histograms, in that order."""
        cdef int k, i
        if len(bounds) != _OB_KINDS:
            raise ValueError(f"{_OB_KINDS} histograms' bounds expected")
        for k in range(_OB_KINDS):
            if len(bounds[k]) >= _OB_MAX_BUCKETS:
                raise ValueError(f"at most {_OB_MAX_BUCKETS - 1} buckets")
            self.nbounds[k] = len(bounds[k])
            for i in range(self.nbounds[k]):
                self.bounds[k][i] = bounds[k][i]
        self._series = {}
        self._dirty = []
        self._models = frozenset(models)
        self._labels = {}
        self._known = known
        self._make = make

    cdef str _label(self, str provider, str model):
        if model in self._models:
            return model
        pair = (provider, model)
        label = self._labels.get(pair)
        if label is None:
            label = model if model and self._known(provider, model) else "other"
            if len(self._labels) >= _OB_MAX_LABELS:
                self._labels.clear()
            self._labels[pair] = label
        return <str>label

    cpdef observe(self, RequestRecord rec):
        """Everything one finished request adds."""
        cdef TallySeries s
        cdef int k
        cdef double total = rec.end - rec.start
        cdef double upstream = rec.upstream_s
        key = (rec.route, rec.provider, self._label(rec.provider, rec.model), rec.status, rec.cache, rec.error)
        found = self._series.get(key)
        if found is None:
            s = TallySeries()
            s.key = key
            for k in range(_OB_KINDS):
                s.nbuckets[k] = self.nbounds[k] + 1
            s.children = self._make(key)
            self._series[key] = s
        else:
            s = <TallySeries>found
        if not s.dirty:
            s.dirty = True
            self._dirty.append(s)
        s.requests += 1
        _ob_count(s, self.bounds[_OB_DURATION], self.nbounds[_OB_DURATION], _OB_DURATION, total)
        _ob_count(
            s, self.bounds[_OB_OVERHEAD], self.nbounds[_OB_OVERHEAD], _OB_OVERHEAD,
            total - upstream if total > upstream else 0.0,
        )
        if rec.first_byte:
            _ob_count(s, self.bounds[_OB_TTFT], self.nbounds[_OB_TTFT], _OB_TTFT, rec.first_byte - rec.start)
            _ob_count(s, self.bounds[_OB_UPSTREAM], self.nbounds[_OB_UPSTREAM], _OB_UPSTREAM, upstream)
        if rec.input_tokens or rec.output_tokens:
            _ob_count(s, self.bounds[_OB_INPUT], self.nbounds[_OB_INPUT], _OB_INPUT, <double>rec.input_tokens)
            _ob_count(
                s, self.bounds[_OB_OUTPUT], self.nbounds[_OB_OUTPUT], _OB_OUTPUT, <double>rec.output_tokens
            )
            s.input += rec.input_tokens
            s.output += rec.output_tokens
            s.cached += rec.cached_tokens
            s.reasoning += rec.reasoning_tokens
            if rec.cost is not None:
                s.cost += <double>rec.cost
        if rec.attempts > 1:
            s.retries += rec.retries
            s.fallbacks += rec.attempts - 1 - rec.retries

    def take_dirty(self):
        """The label sets with pending sums (each then ``take()``n)."""
        dirty, self._dirty = self._dirty, []
        return dirty


cdef inline int _ob_put_ms(_Out* out, double seconds) except -1:
    """Seconds as milliseconds to the microsecond (``12.345``)."""
    cdef long long us = <long long>(seconds * 1e6) if seconds > 0 else 0
    cdef char frac[3]
    _out_put_decimal(out, us // 1000)
    us %= 1000
    frac[0] = 48 + us // 100
    frac[1] = 48 + (us // 10) % 10
    frac[2] = 48 + us % 10
    _out_put(out, ".", 1)
    return _out_put(out, frac, 3)


cdef int _ob_put_str(_Out* out, str text) except -1:
    """A JSON string: ASCII escaped here; anything else as msgspec writes it (rare)."""
    cdef const unsigned char* p
    cdef Py_ssize_t i, start = 0, n
    cdef unsigned char c
    cdef char esc[6]
    if not PyUnicode_IS_ASCII(text):
        return _out_put_bytes(out, _ob_encode(text))
    p = <const unsigned char*>PyUnicode_DATA(text)
    n = PyUnicode_GET_LENGTH(text)
    _out_put(out, '"', 1)
    for i in range(n):
        c = p[i]
        if _OB_ESCAPED[c]:
            _out_put(out, <const char*>p + start, i - start)
            if c == 34 or c == 92:
                esc[0] = 92
                esc[1] = c
                _out_put(out, esc, 2)
            else:
                esc[0] = 92
                esc[1] = 117  # \u00XX
                esc[2] = 48
                esc[3] = 48
                esc[4] = _OB_HEX[c >> 4]
                esc[5] = _OB_HEX[c & 15]
                _out_put(out, esc, 6)
            start = i + 1
    _out_put(out, <const char*>p + start, n - start)
    return _out_put(out, '"', 1)


cdef inline int _ob_field(_Out* out, const char* name, Py_ssize_t n, str value) except -1:
    _out_put(out, name, n)
    return _ob_put_str(out, value)


cdef inline int _ob_number(_Out* out, const char* name, Py_ssize_t n, long long value) except -1:
    _out_put(out, name, n)
    if value < 0:
        _out_put(out, "-", 1)
        value = -value
    return _out_put_decimal(out, value)


@cython.final
cdef class LogLines:
    """Access-log lines as JSON, written into one buffer that the log takes whole (``take``)."""

    cdef _Out out
    cdef dict _safe
    cdef object _redact
    cdef long long _second
    cdef bytes _prefix

    def __cinit__(self):
        self.out.data = <char*>PyMem_Malloc(65536)
        if self.out.data == NULL:
            raise MemoryError()
        self.out.size = 0
        self.out.cap = 65536
        self.out.heap = True

    def __dealloc__(self):
        if self.out.data != NULL:
            PyMem_Free(self.out.data)

    def __init__(self, redact):
        """``redact``: a client-chosen value made safe to log (keys cut out), called once per
        distinct value."""
        self._safe = {}
        self._redact = redact
        self._second = -1
        self._prefix = b""

    def __len__(self):
        return self.out.size

    cdef str _safe_value(self, str value):
        safe = self._safe.get(value)
        if safe is None:
            safe = self._redact(value)
            if len(self._safe) >= _OB_MAX_LABELS:
                self._safe.clear()
            self._safe[value] = safe
        return <str>safe

    cdef int _write(
        self, _Out* out, RequestRecord rec, double wall, str trace_id, bint given, str client, str key
    ) except -1:
        cdef double total = rec.end - rec.start
        cdef long long second = <long long>wall
        cdef long long ms
        cdef char frac[5]
        cdef char* text
        if second != self._second:
            self._second = second
            self._prefix = _ob_time.strftime("%Y-%m-%dT%H:%M:%S", _ob_time.gmtime(second)).encode()
        ms = <long long>((wall - second) * 1000)
        frac[0] = 46  # .
        frac[1] = 48 + ms // 100
        frac[2] = 48 + (ms // 10) % 10
        frac[3] = 48 + ms % 10
        frac[4] = 90  # Z
        _out_put(out, '{"time":"', 9)
        _out_put_bytes(out, self._prefix)
        _out_put(out, frac, 5)
        _ob_field(out, '","trace_id":', 13, self._safe_value(trace_id) if given else trace_id)
        _ob_field(out, ',"route":', 9, rec.route)
        _ob_field(out, ',"provider":', 12, rec.provider)
        _ob_field(out, ',"model":', 9, self._safe_value(rec.model) if rec.model else "")
        _ob_number(out, ',"status":', 10, rec.status)
        _ob_number(out, ',"attempts":', 12, rec.attempts)
        _ob_field(out, ',"option":', 10, rec.option)
        _ob_field(out, ',"cache":', 9, rec.cache)
        _ob_number(out, ',"input_tokens":', 16, rec.input_tokens)
        _ob_number(out, ',"output_tokens":', 17, rec.output_tokens)
        _ob_number(out, ',"cached_tokens":', 17, rec.cached_tokens)
        _out_put(out, ',"cost":', 8)
        if rec.cost is None:
            _out_put(out, "null", 4)
        else:
            text = PyOS_double_to_string(<double>rec.cost, b"r", 0, 0, NULL)
            try:
                _out_put(out, text, strlen(text))
            finally:
                PyMem_Free(text)
        _out_put(out, ',"ttfb_ms":', 11)
        _ob_put_ms(out, rec.first_byte - rec.start if rec.first_byte else 0.0)
        _out_put(out, ',"total_ms":', 12)
        _ob_put_ms(out, total)
        _out_put(out, ',"overhead_ms":', 15)
        _ob_put_ms(out, total - rec.upstream_s)
        if rec.streamed:
            _out_put(out, ',"stream":true', 14)
        else:
            _out_put(out, ',"stream":false', 15)
        _ob_field(out, ',"client":', 10, client)
        _ob_field(out, ',"key":', 7, key)
        if rec.error:
            _ob_field(out, ',"error":', 9, rec.error)
        if rec.trace is not None:
            _out_put(out, ',"otel_trace_id":"', 18)
            # Hex by bytes, as ``tracing.py`` writes it (a format spec runs the general formatter).
            _out_put_text(out, rec.trace.trace_id.to_bytes(16, "big").hex())
            _out_put(out, '"', 1)
        return _out_put(out, "}", 1)

    cpdef Py_ssize_t add(
        self, RequestRecord rec, double wall, str trace_id, bint given, str client, str key
    ) except -1:
        """One request's line into the buffer (``wall``: its end in Unix seconds; ``given``: the
        client chose the trace id, so it is redacted). Returns the buffer's size."""
        self._write(&self.out, rec, wall, trace_id, given, client, key)
        _out_put(&self.out, "\n", 1)
        return self.out.size

    def line(self, RequestRecord rec, double wall, str trace_id, bint given, str client, str key):
        """One request's entry as JSON, on its own (the console's feed)."""
        cdef char stack[1024]
        cdef _Out out
        out.data, out.size, out.cap, out.heap = stack, 0, 1024, False
        try:
            self._write(&out, rec, wall, trace_id, given, client, key)
            return PyBytes_FromStringAndSize(out.data, out.size)
        finally:
            if out.heap:
                PyMem_Free(out.data)

    def take(self):
        """The buffered lines, handed over; the buffer starts again."""
        data = PyBytes_FromStringAndSize(self.out.data, self.out.size)
        self.out.size = 0
        return data


cpdef str server_timing(double gateway_s, double upstream_s):
    """``Server-Timing`` (W3C Server Timing): the gateway's share and the upstream's, in ms."""
    cdef char stack[128]
    cdef _Out out
    out.data, out.size, out.cap, out.heap = stack, 0, 128, False
    _out_put(&out, "gateway;dur=", 12)
    _ob_put_ms(&out, gateway_s)
    _out_put(&out, ';desc="fastgate overhead", upstream;dur=', 40)
    _ob_put_ms(&out, upstream_s)
    return PyUnicode_DecodeASCII(out.data, out.size, NULL)


cdef str _OB_CACHE_STATUS = "x-portkey-cache-status"
cdef str _OB_TRACE_HEADER = "x-portkey-trace-id"
cdef str _OB_COST_HEADER = "x-fastgate-response-cost"
cdef str _OB_SERVER_TIMING = "Server-Timing"
cdef str _OB_ROOT_PATH = "config"
# The log's buffer is written out once it holds this much.
cdef Py_ssize_t _OB_LOG_BUFFER = 65536


cdef class ObservationHooks:
    """The observability stage's hooks on the request path (``arrive``, ``engage``, ``respond``,
    ``end``), compiled: ``gateway/stages/observability.py`` subclasses this with the pipeline's
    ``Stage`` and adds what is rare (a retry's answers, traces, a stream's watcher, hand-overs).

    Fields of the gateway's Structs are read by slot (``_FdStructField``): the types come from the
    subclass (``types``), so this file imports nothing of the gateway's.
    """

    cdef Tally tally
    cdef LogLines lines
    cdef object text_log
    cdef public object feed
    cdef public object tracer
    cdef bint headers
    cdef object _usage_decoder
    cdef object _decode_error
    cdef object _gateway_error
    cdef object _error_type
    cdef object _proxy
    cdef frozenset _relayed
    cdef dict _rates
    cdef object _pricing
    cdef dict _routes
    cdef _FdStructField _ex_notes, _ex_request, _ex_endpoint, _ex_view, _ex_outcome, _ex_error
    cdef _FdStructField _ex_opts, _ex_key, _ex_verdicts
    cdef _FdStructField _oc_status, _oc_provider, _oc_call, _oc_headers, _oc_body, _oc_mapper
    cdef _FdStructField _oc_upstream, _oc_from_cache, _oc_usage
    cdef _FdStructField _call_target, _call_endpoint, _call_view
    cdef _FdStructField _target_path, _request_path, _request_headers, _opts_trace_id
    cdef _FdStructField _uv_model, _uv_usage, _u_prompt, _u_completion, _u_prompt_details
    cdef _FdStructField _u_completion_details, _u_cache_read, _u_cache_write
    cdef _FdStructField _pd_cached, _cd_reasoning, _leaf_retry, _at_call, _at_leaf, _view_model
    cdef _FdStructField _request_conn
    cdef object _conn_type

    def __init__(
        self, dict types, Tally tally, LogLines lines, text_log, feed, tracer, pricing, bint headers,
        usage_decoder, gateway_error, error_type, proxy, frozenset relayed,
    ):
        """``types``: the gateway's classes by name (``Exchange``, ``Outcome``, ``Call``, ``Target``,
        ``Request``, ``RequestOptions``, ``UsageView``, ``Usage``, ``PromptTokensDetails``,
        ``CompletionTokensDetails``, ``Leaf``, ``Attempt``, ``RequestView``, the server's
        ``Connection``). ``tally``: the
        metrics (None: off); ``lines``: the JSON access log's buffer (None: off, or ``text_log``);
        ``pricing``: ``limits.prices.Pricing``; ``usage_decoder``: bytes → ``UsageView``;
        ``error_type``: OpenAI's error type of a status; ``proxy``: the passthrough's endpoint;
        ``relayed``: the endpoints whose answers are relayed as they came (their usage is read
        as they pass, by ``watch_stream``)."""
        f = _FdStructField
        ex, oc, call = types["Exchange"], types["Outcome"], types["Call"]
        self._ex_notes, self._ex_request = f(ex, "notes"), f(ex, "request")
        self._ex_endpoint, self._ex_view = f(ex, "endpoint"), f(ex, "view")
        self._ex_outcome, self._ex_error = f(ex, "outcome"), f(ex, "error")
        self._ex_opts, self._ex_key, self._ex_verdicts = f(ex, "opts"), f(ex, "key"), f(ex, "verdicts")
        self._oc_status, self._oc_provider, self._oc_call = f(oc, "status"), f(oc, "provider"), f(oc, "call")
        self._oc_headers, self._oc_body, self._oc_mapper = f(oc, "headers"), f(oc, "body"), f(oc, "mapper")
        self._oc_upstream, self._oc_from_cache = f(oc, "upstream"), f(oc, "from_cache")
        self._oc_usage = f(oc, "usage")
        self._call_target, self._call_endpoint = f(call, "target"), f(call, "endpoint")
        self._call_view = f(call, "view")
        self._target_path = f(types["Target"], "path")
        self._request_path = f(types["Request"], "path")
        self._request_headers = f(types["Request"], "headers")
        self._opts_trace_id = f(types["RequestOptions"], "trace_id")
        self._uv_model, self._uv_usage = f(types["UsageView"], "model"), f(types["UsageView"], "usage")
        usage = types["Usage"]
        self._u_prompt, self._u_completion = f(usage, "prompt_tokens"), f(usage, "completion_tokens")
        self._u_prompt_details = f(usage, "prompt_tokens_details")
        self._u_completion_details = f(usage, "completion_tokens_details")
        self._u_cache_read = f(usage, "cache_read_input_tokens")
        self._u_cache_write = f(usage, "cache_creation_input_tokens")
        self._pd_cached = f(types["PromptTokensDetails"], "cached_tokens")
        self._cd_reasoning = f(types["CompletionTokensDetails"], "reasoning_tokens")
        self._leaf_retry = f(types["Leaf"], "retry")
        self._at_call, self._at_leaf = f(types["Attempt"], "call"), f(types["Attempt"], "leaf")
        self._view_model = f(types["RequestView"], "model")
        self._conn_type = types["Connection"]
        self._request_conn = f(types["Request"], "_conn")
        self.tally = tally
        self.lines = lines
        self.text_log = text_log
        self.feed = feed
        self.tracer = tracer
        self.headers = headers
        self._usage_decoder = usage_decoder
        self._decode_error = _ob_msgspec.DecodeError
        self._gateway_error = gateway_error
        self._error_type = error_type
        self._proxy = proxy
        self._relayed = relayed
        self._pricing = pricing
        self._rates = pricing._rates
        self._routes = {}

    # ---- what the subclass provides -------------------------------------------------------------

    def log_full(self):
        """The JSON log's buffer is full: write it out now (else a timer does, once a second)."""

    def watch_stream(self, ex, outcome, RequestRecord rec):
        """A stream about to be relayed: add a watcher to it if one is needed."""

    def finished(self, ex, RequestRecord rec, str client):
        """What is rare at a request's end: guardrail verdicts, the console's feed, its trace."""

    # ---- the hooks ------------------------------------------------------------------------------

    cdef RequestRecord _record(self, ex):
        notes = self._ex_notes.of(ex)
        found = (<dict>notes).get(self) if notes is not None else None
        return <RequestRecord>found if found is not None else None

    def arrive(self, ex):
        rec = RequestRecord(_ob_now())
        notes = self._ex_notes.of(ex)
        if notes is None:
            ex.notes = {self: rec}
        else:
            (<dict>notes)[self] = rec
        if self.tracer is not None:
            request = self._ex_request.of(ex)
            trace = rec.trace = self.tracer.arrive(self._request_headers.of(request), request.method)
            if trace is not None:
                trace.wall = _ob_clock(CLOCK_REALTIME) - rec.start
                return True  # engaged for every attempt: each one's span
        return False  # each target tried is noted by ``tried``, with no attempt to engage for

    def wants(self, leaf):
        """A target that retries: each of its answers is counted (``after``)."""
        return self._leaf_retry.of(leaf) is not None

    def tried(self, ex, leaf):
        """A target is tried: its wait begins (the target before it, if any, has had its say)."""
        cdef RequestRecord rec = self._record(ex)
        cdef double now = _ob_now()
        if rec.sent:
            rec.upstream_s += now - rec.sent
        rec.sent = now
        rec.attempts += 1

    def engage(self, ex, at):
        """Traced, or at a target that retries: the attempt's span begins. Engaged further only
        to see each answer of a target that retries, or, traced, of a target that others may
        follow (a lone target's answer is the one ``respond`` sees)."""
        cdef RequestRecord rec = self._record(ex)
        call = self._at_call.of(at)
        if rec.trace is not None:
            self.tracer.attempt(rec.trace, call, rec.sent, 0)
        if self._leaf_retry.of(self._at_leaf.of(at)) is not None:
            return True
        # The plan's root leaf has the path "config" (routing/plan.py): no other target follows.
        return rec.trace is not None and self._target_path.of(self._call_target.of(call)) != _OB_ROOT_PATH

    cdef object _usage(self, outcome):
        """The usage view of a complete 2xx JSON answer, decoded once (``Outcome.answer_usage``)."""
        view = self._oc_usage.of(outcome)
        if view is not None:
            return view
        body = self._oc_body.of(outcome)
        status = self._oc_status.of(outcome)
        if body is None or not 200 <= status < 300:
            return None
        if self._call_endpoint.of(self._oc_call.of(outcome)) in self._relayed:
            return None
        try:
            view = self._usage_decoder(body)
        except self._decode_error:
            return None
        outcome.usage = view
        return view

    cdef int _account(self, RequestRecord rec, ex, outcome, view) except -1:
        cdef double cost
        usage = self._uv_usage.of(view)
        rec.accounted = True
        rec.input_tokens = prompt = self._u_prompt.of(usage)
        rec.output_tokens = output = self._u_completion.of(usage)
        details = self._u_prompt_details.of(usage)
        cached = self._pd_cached.of(details) if details else 0
        if not cached:
            cached = self._u_cache_read.of(usage) or 0
        rec.cached_tokens = cached
        completion = self._u_completion_details.of(usage)
        rec.reasoning_tokens = (self._cd_reasoning.of(completion) or 0) if completion else 0
        asked = self._view_model.of(self._ex_view.of(ex)) or ""
        model = self._uv_model.of(view) or asked
        rec.response_model = model
        provider = self._oc_provider.of(outcome).name
        rates = self._rates.get((provider, model))
        if rates is None:
            rates = self._pricing.rates(provider, model)
            if rates is None and asked and asked != model:
                rates = self._pricing.rates(provider, asked)
        if rates is None:
            rec.cost = None
            return 0
        written = self._u_cache_write.of(usage) or 0
        cached = min(cached, prompt)
        fresh = max(prompt - cached - written, 0)
        cost = (
            fresh * <double>rates[0] + cached * <double>rates[2] + written * <double>rates[3]
            + output * <double>rates[1]
        ) / 1e6
        # To a millionth of a cent: no float noise (3.2999999999999997e-06) in the log and header.
        rec.cost = _ob_round(cost * 1e12) / 1e12
        return 0

    def respond(self, ex, outcome, dict headers):
        cdef RequestRecord rec = self._record(ex)
        cdef double now = _ob_now()
        cdef char* text
        rec.first_byte = now
        if rec.sent:
            if not self._oc_from_cache.of(outcome):
                rec.upstream_s += now - rec.sent
            rec.sent = 0.0
        view = None
        if self._oc_mapper.of(outcome) is None and self._oc_upstream.of(outcome) is None:
            view = self._usage(outcome)
            if view is not None and self._uv_usage.of(view) is not None:
                self._account(rec, ex, outcome, view)
                if self.headers and rec.cost is not None:
                    text = PyOS_double_to_string(<double>rec.cost, b"g", 8, 0, NULL)  # US dollars
                    try:
                        headers[_OB_COST_HEADER] = PyUnicode_DecodeASCII(text, strlen(text), NULL)
                    finally:
                        PyMem_Free(text)
        else:
            rec.streamed = True
            self.watch_stream(ex, outcome, rec)
        if self.headers:
            headers[_OB_SERVER_TIMING] = server_timing(now - rec.start - rec.upstream_s, rec.upstream_s)
        trace = rec.trace
        if trace is not None:
            # The answer given, for an attempt no ``after`` saw (a lone target's; a retry's span
            # begun by ``after`` in case one came is not it).
            attempts = trace.attempts
            if attempts:
                last = attempts[len(attempts) - 1]  # (no negative index: wraparound is off)
                if not last.end and not last.retry:
                    self.tracer.answered(
                        trace, self._oc_status.of(outcome), now, view, self._oc_body.of(outcome)
                    )

    cdef str _route(self, ex, request):
        """The route's pattern: the request's path when it is a route's, else its endpoint's."""
        path = self._request_path.of(request)
        route = self._routes.get(path)
        if route is None:
            endpoint = self._ex_endpoint.of(ex)
            route = "/v1/{tail}" if endpoint is self._proxy else "/v1/" + endpoint.value
            if len(self._routes) < _OB_MAX_LABELS:
                self._routes[path] = route
        return <str>route

    def known_route(self, str path, str route):
        """A path that is a route's own (its label is itself)."""
        self._routes[path] = route

    def end(self, ex):
        cdef RequestRecord rec = self._record(ex)
        cdef double now = _ob_now()
        cdef Py_ssize_t size
        if rec is None:  # refused before it arrived (its content type)
            rec = RequestRecord(now)
        rec.end = now
        request = self._ex_request.of(ex)
        rec.route = self._route(ex, request)
        view = self._ex_view.of(ex)
        rec.model = (self._view_model.of(view) or "") if view is not None else ""
        outcome = self._ex_outcome.of(ex)
        if outcome is not None:
            rec.provider = self._oc_provider.of(outcome).name
            rec.option = self._target_path.of(self._call_target.of(self._oc_call.of(outcome)))
            rec.cache = (<dict>self._oc_headers.of(outcome)).get(_OB_CACHE_STATUS, "DISABLED")
            rec.status = self._oc_status.of(outcome)
            if rec.status >= 400:
                rec.error = self._error_type(rec.status)
            if rec.streamed and rec.first_byte:
                rec.upstream_s += now - rec.first_byte
                usage = self._oc_usage.of(outcome)
                if usage is not None and not rec.accounted and self._uv_usage.of(usage) is not None:
                    self._account(rec, ex, outcome, usage)
        error = self._ex_error.of(ex)
        if error is not None:
            if isinstance(error, self._gateway_error):
                rec.status, rec.error = error.status, error.type
            elif isinstance(error, (_ob_asyncio.CancelledError, ConnectionError)):
                rec.status, rec.error = 499, "client_closed_request"  # the client went away (nginx's)
            else:
                rec.status, rec.error = 500, "api_error"
        if self.tally is not None:
            self.tally.observe(rec)
        opts = self._ex_opts.of(ex)
        trace_id = self._opts_trace_id.of(opts) if opts is not None else ""
        given = _OB_TRACE_HEADER in self._request_headers.of(request)
        conn = self._request_conn.of(request)
        client = conn._peer if type(conn) is self._conn_type else None
        if client is None:
            client = request.peer  # asked of the socket once per connection
        key = self._ex_key.of(ex)
        key_name = (key.name or key.id) if key is not None else ""
        if self.lines is not None:
            wall = _ob_clock(CLOCK_REALTIME)
            if self.lines.add(rec, wall, trace_id, given, client, key_name) >= _OB_LOG_BUFFER:
                self.log_full()
        elif self.text_log is not None:
            self.text_log.write(rec, _ob_clock(CLOCK_REALTIME), trace_id, given, client, key_name)
        if self.feed.active or rec.trace is not None or self._ex_verdicts.of(ex):
            self.finished(ex, rec, client)
