"""``/v1/rerank`` (and ``/v2/rerank``) in Cohere's shape: mapped to Cohere v2 and Voyage, passed
through to the rerankers that speak it, over real HTTP to the mock."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.conftest import Gateway, Upstream
from tests.providers.gemini_support import mock_root

DOCUMENTS = [
    "Carson City is the capital city of Nevada.",
    "Washington, D.C. is the capital of the United States.",
    "Capital gains are taxed at lower rates.",
]
QUERY = "What is the capital of the United States?"


def headers(provider: str, host: str) -> dict[str, str]:
    return {
        "x-portkey-provider": provider,
        "x-portkey-custom-host": host,
        "Authorization": "Bearer rerank-key-0123456789",
    }


async def rerank(
    gateway: Gateway, body: dict[str, Any], hdrs: dict[str, str], path: str = "/v1/rerank"
) -> Any:
    resp = await gateway.post(path, body, hdrs)
    assert resp.status == 200, await resp.text()
    return await resp.json()


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
async def test_cohere_v2(gateway: Gateway, upstream: Upstream, path: str) -> None:
    body = {
        "model": "rerank-v3.5",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 2,
        "max_tokens_per_doc": 512,
    }
    answer = await rerank(gateway, body, headers("cohere", mock_root(upstream)), path)
    assert [r["index"] for r in answer["results"]] == [1, 0]
    assert all(0 <= r["relevance_score"] <= 1 and "document" not in r for r in answer["results"])
    assert answer["meta"]["billed_units"] == {"search_units": 1} and answer["id"].startswith("rerank-")
    [received] = upstream.requests
    assert received["path"] == "/v2/rerank"
    assert msgspec.json.decode(received["body"]) == body


async def test_cohere_v1_request_shape_is_mapped(gateway: Gateway, upstream: Upstream) -> None:
    """Objects ranked by ``rank_fields`` (as YAML lines, Cohere's advice for v2), documents echoed
    back from the request with ``return_documents``, ``max_chunks_per_doc`` (v1 only) dropped."""
    documents = [
        {"title": "Nevada", "text": DOCUMENTS[0], "id": "a"},
        {"title": "United States capital", "text": DOCUMENTS[1], "id": "b"},
        "Capital gains are taxed at lower rates.",
    ]
    body = {
        "model": "rerank-v3.5",
        "query": QUERY,
        "documents": documents,
        "rank_fields": ["title", "text"],
        "return_documents": True,
        "max_chunks_per_doc": 4,
    }
    answer = await rerank(gateway, body, headers("cohere", mock_root(upstream)))
    best = answer["results"][0]
    assert best["index"] == 1 and best["document"] == documents[1]
    assert answer["results"][2]["document"] == {"text": documents[2]}
    sent = msgspec.json.decode(upstream.requests[0]["body"])
    assert sent == {
        "query": QUERY,
        "documents": [
            f"title: Nevada\ntext: {DOCUMENTS[0]}",
            f"title: United States capital\ntext: {DOCUMENTS[1]}",
            documents[2],
        ],
        "model": "rerank-v3.5",
    }


async def test_voyage_is_mapped_both_ways(gateway: Gateway, upstream: Upstream) -> None:
    body = {
        "model": "rerank-2.5",
        "query": QUERY,
        "documents": DOCUMENTS,
        "top_n": 1,
        "return_documents": True,
    }
    answer = await rerank(gateway, body, headers("voyage", mock_root(upstream) + "/voyage/v1"))
    [result] = answer["results"]
    assert result["index"] == 1 and result["document"] == {"text": DOCUMENTS[1]}
    assert answer["meta"]["tokens"]["input_tokens"] > 0
    [received] = upstream.requests
    assert received["path"] == "/voyage/v1/rerank"
    assert msgspec.json.decode(received["body"]) == {
        "query": QUERY,
        "documents": DOCUMENTS,
        "model": "rerank-2.5",
        "top_k": 1,
    }


@pytest.mark.parametrize("provider", ["together-ai", "jina", "vllm", "mock"])
async def test_passthrough_rerankers(gateway: Gateway, upstream: Upstream, provider: str) -> None:
    body = {
        "model": "BAAI/bge-reranker-v2-m3",
        "query": QUERY,
        "documents": DOCUMENTS,
        "return_documents": True,
    }
    host = upstream.url if provider != "vllm" else mock_root(upstream)
    answer = await rerank(gateway, body, headers(provider, host))
    best = answer["results"][0]
    assert best["index"] == 1 and best["document"] == {"text": DOCUMENTS[1]}
    assert [r["index"] for r in answer["results"]] == [1, 0, 2]
    if provider != "mock":
        assert upstream.requests[-1]["path"] == "/v1/rerank"
        assert msgspec.json.decode(upstream.requests[-1]["body"]) == body  # as it came


@pytest.mark.parametrize("provider", ["openai", "groq", "anthropic", "bedrock"])
async def test_refused_where_not_served(gateway: Gateway, upstream: Upstream, provider: str) -> None:
    resp = await gateway.post(
        "/v1/rerank", {"model": "m", "query": "q", "documents": ["a"]}, headers(provider, upstream.url)
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert (
        error["code"] == "unsupported_endpoint"
        and error["message"] == f"rerank is not supported by {provider}"
    )
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"query": "q", "documents": [{"title": "no text"}]}, "documents[0]"),
        ({"query": "q", "documents": [{"id": 1}], "rank_fields": ["title"]}, "documents[0]"),
        ({"documents": ["a"]}, None),
    ],
)
async def test_cohere_mapping_refuses_bad_documents(
    gateway: Gateway, upstream: Upstream, body: dict[str, Any], param: str | None
) -> None:
    resp = await gateway.post(
        "/v1/rerank", {"model": "rerank-v3.5", **body}, headers("cohere", mock_root(upstream))
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == param
    assert upstream.requests == []


async def test_cohere_error_is_relayed(gateway: Gateway, upstream: Upstream) -> None:
    body = {"model": "rerank-v3.5", "query": "[mock status=429] q", "documents": ["a"]}
    resp = await gateway.post("/v1/rerank", body, headers("cohere", mock_root(upstream)))
    assert resp.status == 429
    error = await resp.json()
    assert error["provider"] == "cohere" and error["error"]["message"] == "cohere error: mock failure 429"
