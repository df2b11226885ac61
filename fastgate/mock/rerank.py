"""Rerank answers of the mock: Cohere's shape (Cohere's ``/v2/rerank``, and ``/v1/rerank`` as
Jina, Together, SiliconFlow and vLLM answer it) and Voyage's (``voyage_format.py`` serves it), each
document scored by the share of the query's words it has, best first.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

_ids = itertools.count(1)

_WORD = re.compile(r"\w+")


def relevance(query: str, document: str) -> float:
    """The share of the query's words the document has, in [0, 1]; ties broken by length."""
    wanted = set(_WORD.findall(query.lower()))
    words = _WORD.findall(document.lower())
    if not wanted or not words:
        return 0.0
    shared = len(wanted & set(words)) / len(wanted)
    return round(min(1.0, 0.9 * shared + 0.1 / (1 + len(words))), 6)


def document_text(document: Any, rank_fields: list[str] | None = None) -> str:
    if isinstance(document, str):
        return document
    if isinstance(document, dict):
        fields = rank_fields or ["text"]
        return " ".join(str(document[f]) for f in fields if f in document)
    return ""


def ranking(query: str, documents: list[Any], top_n: Any, rank_fields: Any = None) -> list[tuple[int, float]]:
    """``(index, score)`` best first (ties in input order), cut to ``top_n``."""
    fields = rank_fields if isinstance(rank_fields, list) else None
    scored = [(i, relevance(query, document_text(doc, fields))) for i, doc in enumerate(documents)]
    scored.sort(key=lambda pair: -pair[1])
    return scored[:top_n] if isinstance(top_n, int) and top_n > 0 else scored


def rerank_invalid(request: dict[str, Any], *, strings_only: bool) -> str | None:
    """What Cohere (or a compatible reranker) refuses in a rerank request."""
    if not isinstance(request.get("query"), str) or not request["query"]:
        return "invalid request: query must be a non-empty string"
    documents = request.get("documents")
    if not isinstance(documents, list) or not documents:
        return "invalid request: documents must be a non-empty list"
    if strings_only and not all(isinstance(doc, str) for doc in documents):
        return "invalid request: documents must be a list of strings"
    top_n = request.get("top_n")
    if top_n is not None and (not isinstance(top_n, int) or top_n < 1):
        return "invalid request: top_n must be a positive integer"
    return None


def rerank_answer(request: dict[str, Any]) -> dict[str, Any]:
    """Cohere's rerank answer (v2's, with v1's documents when ``return_documents`` asks)."""
    documents = request["documents"]
    results = []
    for index, score in ranking(
        request["query"], documents, request.get("top_n"), request.get("rank_fields")
    ):
        result: dict[str, Any] = {"index": index, "relevance_score": score}
        if request.get("return_documents"):
            doc = documents[index]
            result["document"] = {"text": doc} if isinstance(doc, str) else doc
        results.append(result)
    return {
        "id": f"rerank-mock{next(_ids)}",
        "results": results,
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }


def voyage_answer(request: dict[str, Any]) -> dict[str, Any]:
    """Voyage's rerank answer: ``data`` best first, ``top_k`` for ``top_n``, tokens counted."""
    documents = request["documents"]
    data = []
    for index, score in ranking(request["query"], documents, request.get("top_k")):
        item: dict[str, Any] = {"index": index, "relevance_score": score}
        if request.get("return_documents"):
            item["document"] = documents[index]
        data.append(item)
    tokens = sum(len(str(t).split()) for t in [request["query"], *documents])
    return {"object": "list", "data": data, "model": request.get("model"), "usage": {"total_tokens": tokens}}
