"""Rerank wire formats as msgspec Structs: Cohere's shape (what ``/v1/rerank`` takes and answers)
and Voyage AI's.

Cohere's request is the union LiteLLM and Portkey 2 accept: v2's fields
(https://docs.cohere.com/reference/rerank: ``model``, ``query``, ``documents`` as strings,
``top_n``, ``max_tokens_per_doc``, ``priority``, ``relevant_spans``) and v1's (documents as
objects, ``rank_fields``, ``return_documents``, ``max_chunks_per_doc``); the answer is the
``cohere`` SDK's ``V2RerankResponse`` (``id``, ``results`` of ``index`` / ``relevance_score``,
``meta``), with v1's ``document`` on each result when it was asked for. Voyage's follows
https://docs.voyageai.com/reference/reranker-api (``top_k``, ``data``, ``usage.total_tokens``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType


class RerankRequest(msgspec.Struct, kw_only=True):
    query: str
    documents: list[str | dict[str, Any]]
    model: str | None = None
    top_n: int | None = None
    rank_fields: list[str] | None = None
    return_documents: bool | None = None
    max_chunks_per_doc: int | None = None
    max_tokens_per_doc: int | None = None
    priority: int | None = None
    relevant_spans: dict[str, Any] | None = None


class CohereRerankRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v2/rerank`` body."""

    query: str
    documents: list[str]
    model: str | UnsetType = UNSET
    top_n: int | UnsetType = UNSET
    max_tokens_per_doc: int | UnsetType = UNSET
    priority: int | UnsetType = UNSET
    relevant_spans: dict[str, Any] | UnsetType = UNSET


class RerankResult(msgspec.Struct, omit_defaults=True):
    index: int
    relevance_score: float
    #: v1's echo of the document (``return_documents``): ``{"text": ...}`` or the object given.
    document: Any = UNSET
    relevant_spans: Any = UNSET


class RerankAnswer(msgspec.Struct, omit_defaults=True):
    """Cohere's rerank answer; an upstream's is read into it (``meta`` kept as it came)."""

    results: list[RerankResult]
    id: str | UnsetType = UNSET
    meta: Any = UNSET


class VoyageRerankRequest(msgspec.Struct, omit_defaults=True):
    query: str
    documents: list[str]
    model: str | UnsetType = UNSET
    top_k: int | UnsetType = UNSET
    truncation: bool | UnsetType = UNSET


class VoyageResult(msgspec.Struct):
    index: int
    relevance_score: float


class VoyageUsage(msgspec.Struct):
    total_tokens: int = 0


class VoyageRerankAnswer(msgspec.Struct):
    data: list[VoyageResult] = []
    usage: VoyageUsage | None = None
