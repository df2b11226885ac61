# cython: language_level=3
"""fastgate's compiled hot path: byte kernels and provider mappings.

One extension module. ``kernels/`` holds the byte work that is not a provider mapping (the HTTP/1.1
parsers and head writers, the SSE splitter, the AWS event-stream decoder, JSON text checks,
vectors, and the output buffer they share); ``mapping/`` holds one include per provider mapping
(and per ingress format), so one provider's mapping reads in one place. House rules: internal
helpers are ``cdef inline``, Python entry points ``def``; raw bytes through
``PyBytes_AsStringAndSize``; output built in one buffer (``kernels/out.pxi``); module-level Python
objects bound once at import. Includes share one namespace, so each file's private names carry
its own prefix (``_<prefix>_name``, constants ``_<PREFIX>_NAME``); the prefix is listed where
the file is included below.
"""

cimport cython

# The byte kernels
include "kernels/fields.pxi"       # _fd_: msgspec Struct fields read by slot
include "kernels/out.pxi"          # _out_: the output buffer (_Out, _out_put*)
include "kernels/sse.pxi"          # _sse_: SSE events split and relayed
include "kernels/body.pxi"         # _body_: BodyBuffer, a body collected in pieces in one bytes object
include "kernels/http_syntax.pxi"  # _hs_: the HTTP/1.1 grammar both parsers check
include "kernels/http1.pxi"        # _h1_: the upstream response parser
include "kernels/http_server.pxi"  # _sv_: the client request parser, request and response heads
include "kernels/eventstream.pxi"  # _es_: AWS event-stream frames
include "kernels/jsontext.pxi"     # _js_: JSON text checks
include "kernels/jsonread.pxi"     # _jr_: a few members of a JSON object read from its bytes
include "kernels/vectors.pxi"      # _vec_: embeddings: dot products, best match
include "kernels/observe.pxi"      # _ob_: a request's record, metrics sums, log line
include "kernels/text.pxi"         # _tx_: guardrail text measures
include "kernels/upstream.pxi"     # _up_: the upstream connection's protocol and state
include "kernels/pool.pxi"         # _pl_: the upstream pool's idle and busy connections
include "kernels/serving.pxi"      # _sp_: the client connection's protocol and state

# The mappings
include "mapping/chunks.pxi"       # _chunk_: OpenAI chat.completion.chunk frames
include "mapping/completions.pxi"  # _cx_: chat <-> legacy completions
include "mapping/answer.pxi"       # _answer_: OpenAI chat.completion answers
include "mapping/cohere.pxi"       # _co_: Cohere v2
include "mapping/anthropic.pxi"    # _an_: Anthropic Messages (provider side)
include "mapping/bedrock.pxi"      # _br_: Bedrock Converse
include "mapping/gemini.pxi"       # _gm_: Gemini / Vertex
include "mapping/messages_ingress.pxi"  # _mi_: Anthropic Messages as an ingress format
include "mapping/images.pxi"       # _im_: image generation (Stability, Bedrock, Imagen)
include "mapping/rerank.pxi"       # _rr_: rerank (Cohere v2, Voyage)
include "mapping/responses_ingress.pxi"  # _rs_: OpenAI Responses as an ingress format
