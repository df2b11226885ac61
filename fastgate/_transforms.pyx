# cython: language_level=3
"""fastgate's compiled hot path: SSE byte kernels and provider mappings.

One extension module; each concern lives in its own include file under ``mapping/`` so that
one provider's mapping reads in one place. House rules: internal helpers are ``cdef inline``,
Python entry points ``def``; raw bytes through ``PyBytes_AsStringAndSize``; output built in one
buffer; module-level Python objects bound once at import.
"""

cimport cython

include "mapping/fields.pxi"
include "mapping/sse.pxi"
include "mapping/chunks.pxi"
include "mapping/completions.pxi"
include "mapping/http1.pxi"
include "mapping/http_server.pxi"
include "mapping/answer.pxi"
include "mapping/cohere.pxi"
include "mapping/anthropic.pxi"
include "mapping/eventstream.pxi"
include "mapping/bedrock.pxi"
include "mapping/gemini.pxi"
include "mapping/vectors.pxi"
include "mapping/jsontext.pxi"
include "mapping/responses_ingress.pxi"
