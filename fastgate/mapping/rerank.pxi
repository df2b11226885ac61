# Rerank: Cohere's request shape (what /v1/rerank takes) → Cohere v2 /v2/rerank and Voyage AI's
# /v1/rerank, and their answers → Cohere's shape. Names carry an ``_rr`` prefix.
#
# References: https://docs.cohere.com/reference/rerank (v2: documents are strings; structured
# data "should be formatted as YAML strings"), the cohere SDK's v1 ``rerank`` (documents as
# objects ranked by ``rank_fields`` or their ``text``, echoed back with ``return_documents``) and
# ``V2RerankResponse``; https://docs.voyageai.com/reference/reranker-api (``top_k``, ``data``).
# v1's ``max_chunks_per_doc`` has no v2 counterpart (v2 truncates by ``max_tokens_per_doc``) and
# is dropped. ``return_documents`` is answered by the gateway from the request's own documents,
# as v1 answered it: v2 and Voyage are not asked to send them back.

import os as _rr_os
import itertools as _rr_itertools

from fastgate.errors import GatewayError as _rr_GatewayError
from fastgate.schema import rerank as _rr

cdef object _rr_request_decoder = _msgspec.json.Decoder(_rr.RerankRequest)
cdef object _rr_params_decoder = _msgspec.json.Decoder(dict)
cdef object _rr_answer_decoder = _msgspec.json.Decoder(_rr.RerankAnswer)
cdef object _rr_voyage_decoder = _msgspec.json.Decoder(_rr.VoyageRerankAnswer)
cdef str _rr_id_prefix = _rr_os.urandom(6).hex()
cdef object _rr_ids = _rr_itertools.count(1)


cdef object _rr_read(bytes body, object overrides, str provider):
    try:
        if overrides:
            params = _rr_params_decoder.decode(body)
            params.update(overrides)
            return _msgspec.convert(params, _rr.RerankRequest)
        return _rr_request_decoder.decode(body)
    except (_msgspec.ValidationError, _msgspec.DecodeError) as exc:
        raise _rr_GatewayError(400, f"Invalid request body for {provider}: {exc}",
                               code="invalid_request") from None


cdef str _rr_field(object value):
    return value if isinstance(value, str) else _chunk_encode_json(value).decode()


cdef list _rr_texts(object req):
    """Each document as the string that is ranked: a string as it is; an object by its
    ``rank_fields`` as YAML lines (``title: ...``), else by its ``text``."""
    cdef list texts = []
    rank_fields = req.rank_fields
    for i, doc in enumerate(req.documents):
        if isinstance(doc, str):
            texts.append(doc)
        elif rank_fields:
            lines = [f"{name}: {_rr_field(doc[name])}" for name in rank_fields if name in doc]
            if not lines:
                raise _rr_GatewayError(400, f"documents[{i}] has none of the rank_fields {rank_fields}",
                                       param=f"documents[{i}]", code="invalid_request")
            texts.append("\n".join(lines))
        else:
            text = doc.get("text")
            if not isinstance(text, str):
                raise _rr_GatewayError(400, f"documents[{i}] needs a text field (or send rank_fields)",
                                       param=f"documents[{i}]", code="invalid_request")
            texts.append(text)
    return texts


def cohere_rerank_request(bytes body, object overrides=None):
    """Cohere-shaped rerank body (v1 or v2) → Cohere ``/v2/rerank`` body bytes."""
    req = _rr_read(body, overrides, "cohere")
    out = _rr.CohereRerankRequest(req.query, _rr_texts(req))
    if req.model is not None:
        out.model = req.model
    if req.top_n is not None:
        out.top_n = req.top_n
    if req.max_tokens_per_doc is not None:
        out.max_tokens_per_doc = req.max_tokens_per_doc
    if req.priority is not None:
        out.priority = req.priority
    if req.relevant_spans is not None:
        out.relevant_spans = req.relevant_spans
    return _chunk_encode_json(out)


def voyage_rerank_request(bytes body, object overrides=None):
    """Cohere-shaped rerank body → Voyage ``/v1/rerank`` body bytes (``top_n`` is ``top_k``)."""
    req = _rr_read(body, overrides, "voyage")
    out = _rr.VoyageRerankRequest(req.query, _rr_texts(req))
    if req.model is not None:
        out.model = req.model
    if req.top_n is not None:
        out.top_k = req.top_n
    return _chunk_encode_json(out)


cdef inline bint _rr_may_return_documents(bytes request, object overrides):
    """Whether the request may ask for its documents back: a substring test keeps the whole
    request from being decoded again for every answer that does not."""
    return request.find(b'"return_documents"') >= 0 or bool(overrides and "return_documents" in overrides)


cdef void _rr_documents(list results, bytes request, object overrides) except *:
    """``return_documents``: each result gets the document it ranks, as v1 echoed it."""
    if not _rr_may_return_documents(request, overrides):
        return
    req = _rr_read(request, overrides, "rerank")
    if not req.return_documents:
        return
    documents = req.documents
    for result in results:
        if 0 <= result.index < len(documents):
            doc = documents[result.index]
            result.document = {"text": doc} if isinstance(doc, str) else doc


def cohere_rerank_response(bytes body, bytes request, object overrides=None):
    """Cohere's v2 answer (its shape checked), with documents when the request asked for them."""
    answer = _rr_answer_decoder.decode(body)
    if not _rr_may_return_documents(request, overrides):
        return body  # already Cohere's shape: nothing to add
    _rr_documents(answer.results, request, overrides)
    return _chunk_encode_json(answer)


def voyage_rerank_response(bytes body, bytes request, object overrides=None):
    """Voyage's answer in Cohere's shape: ``data`` → ``results``, tokens → ``meta``."""
    answer = _rr_voyage_decoder.decode(body)
    results = [_rr.RerankResult(r.index, r.relevance_score) for r in answer.data]
    _rr_documents(results, request, overrides)
    tokens = answer.usage.total_tokens if answer.usage is not None else 0
    meta = {"billed_units": {"input_tokens": tokens}, "tokens": {"input_tokens": tokens}}
    rid = f"rerank-{_rr_id_prefix}{next(_rr_ids):x}"
    return _chunk_encode_json(_rr.RerankAnswer(results, rid, meta))
