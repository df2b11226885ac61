"""The /v1/* passthrough: path, query, body and headers forwarded; the answer relayed as it comes."""

from __future__ import annotations

from tests.conftest import Gateway, Upstream, openai_headers


async def test_models_route_forwards_query(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.get("/v1/models?limit=2", openai_headers(upstream))
    assert resp.status == 200
    assert upstream.requests[0]["query"] == "limit=2"


async def test_get_with_query_is_forwarded(gateway: Gateway, upstream: Upstream) -> None:
    headers = {**openai_headers(upstream), "OpenAI-Beta": "assistants=v2"}
    resp = await gateway.get("/v1/vector_stores?limit=2&order=desc", headers)
    assert resp.status == 404  # the mock has no vector stores; its answer is relayed as it is
    [received] = upstream.requests
    assert received["method"] == "GET"
    assert received["path"] == "/v1/vector_stores"
    assert received["query"] == "limit=2&order=desc"
    # Header names are case-insensitive (RFC 9110 §5.1); the gateway forwards them lower-cased.
    assert {k.lower(): v for k, v in received["headers"].items()}["openai-beta"] == "assistants=v2"
    assert not any(k.lower().startswith("x-portkey") for k in received["headers"])


async def test_post_to_unknown_openai_route_is_relayed_with_upstream_status(
    gateway: Gateway, upstream: Upstream
) -> None:
    resp = await gateway.post("/v1/threads", {"messages": []}, openai_headers(upstream))
    # The mock has no /v1/threads: its 404 body comes back as it is.
    assert resp.status == 404
    assert "mock has no endpoint threads" in (await resp.json())["error"]["message"]
    assert upstream.requests[0]["path"] == "/v1/threads"


async def test_delete_is_forwarded(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.session.delete(gateway.url + "/v1/files/file-123", headers=openai_headers(upstream))
    await resp.read()
    assert upstream.requests[0]["method"] == "DELETE"
    assert upstream.requests[0]["path"] == "/v1/files/file-123"


async def test_path_traversal_is_refused(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.session.get(
        gateway.url + "/v1/files/%2e%2e/%2e%2e/admin", headers=openai_headers(upstream)
    )
    assert resp.status in (400, 404)
    assert not upstream.requests
