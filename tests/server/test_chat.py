"""Chat, completions, embeddings and models through the gateway to the mock over real HTTP."""

from __future__ import annotations

import msgspec

from tests.conftest import Gateway, Upstream, openai_headers

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello gateway"}]}


async def test_chat_relays_body_untouched_and_sets_portkey_headers(
    gateway: Gateway, upstream: Upstream
) -> None:
    body = {**CHAT, "brand_new_openai_param": {"nested": [1, 2]}, "temperature": 0.2}
    resp = await gateway.post("/v1/chat/completions", body, openai_headers(upstream))
    assert resp.status == 200
    data = await resp.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "Mock reply to: hello gateway"
    assert resp.headers["x-portkey-provider"] == "openai"
    assert resp.headers["x-portkey-last-used-option-index"] == "config"
    assert resp.headers["x-portkey-retry-attempt-count"] == "0"
    assert resp.headers["x-portkey-trace-id"]
    [received] = upstream.requests
    assert received["path"] == "/v1/chat/completions"
    assert msgspec.json.decode(received["body"]) == body
    assert received["headers"]["Authorization"] == "Bearer sk-test-123"
    assert not any(k.lower().startswith("x-portkey-") for k in received["headers"])


async def test_trace_id_is_echoed_when_given(gateway: Gateway, upstream: Upstream) -> None:
    headers = {**openai_headers(upstream), "x-portkey-trace-id": "trace-abc"}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.headers["x-portkey-trace-id"] == "trace-abc"


async def test_custom_host_with_and_without_trailing_slash(gateway: Gateway, upstream: Upstream) -> None:
    for host in (upstream.url, upstream.url + "/"):
        headers = {**openai_headers(upstream), "x-portkey-custom-host": host}
        resp = await gateway.post("/v1/chat/completions", CHAT, headers)
        assert resp.status == 200
    assert [r["path"] for r in upstream.requests] == ["/v1/chat/completions"] * 2


async def test_compatible_provider_gets_provider_field(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream, "groq"))
    data = await resp.json()
    assert data["provider"] == "groq"
    assert resp.headers["x-portkey-provider"] == "groq"


async def test_config_header_single_target(gateway: Gateway, upstream: Upstream) -> None:
    config = {
        "provider": "openai",
        "api_key": "sk-from-config",
        "custom_host": upstream.url,
        "override_params": {"temperature": 0.9, "max_tokens": 7},
    }
    headers = {"x-portkey-config": msgspec.json.encode(config).decode()}
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "temperature": 0.1}, headers)
    assert resp.status == 200
    [received] = upstream.requests
    assert received["headers"]["Authorization"] == "Bearer sk-from-config"
    sent = msgspec.json.decode(received["body"])
    assert sent["temperature"] == 0.9 and sent["max_tokens"] == 7


async def test_forward_headers(gateway: Gateway, upstream: Upstream) -> None:
    headers = {
        **openai_headers(upstream),
        "x-portkey-forward-headers": "x-team, x-user",
        "x-team": "blue",
        "x-user": "u1",
        "x-secret": "no",
    }
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 200
    got = upstream.requests[0]["headers"]
    assert got["x-team"] == "blue" and got["x-user"] == "u1"
    assert "x-secret" not in got


async def test_completions_and_embeddings(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/completions", {"model": "m", "prompt": "say hi"}, openai_headers(upstream))
    data = await resp.json()
    assert data["object"] == "text_completion" and data["choices"][0]["text"] == "Mock reply to: say hi"
    resp = await gateway.post(
        "/v1/embeddings", {"model": "e", "input": ["a", "b"], "dimensions": 4}, openai_headers(upstream)
    )
    data = await resp.json()
    assert [len(d["embedding"]) for d in data["data"]] == [4, 4]


async def test_models_through_provider(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.get("/v1/models", openai_headers(upstream))
    assert resp.status == 200
    data = await resp.json()
    assert {m["id"] for m in data["data"]} >= {"mock-small"}
    assert upstream.requests[0]["method"] == "GET"


async def test_in_process_mock_provider_answers_without_network(gateway: Gateway) -> None:
    resp = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-provider": "mock"})
    assert resp.status == 200
    assert (await resp.json())["choices"][0]["message"]["content"] == "Mock reply to: hello gateway"


async def test_upstream_error_keeps_status_and_adds_provider(gateway: Gateway, upstream: Upstream) -> None:
    body = {**CHAT, "mock": {"status": 429}}
    resp = await gateway.post("/v1/chat/completions", body, openai_headers(upstream))
    assert resp.status == 429
    data = await resp.json()
    assert data["provider"] == "openai"
    assert data["error"]["type"] == "rate_limit_error"
    assert data["error"]["message"].startswith("openai error: ")


async def test_html_error_page_becomes_json(gateway: Gateway, upstream: Upstream) -> None:
    body = {**CHAT, "mock": {"status": 503, "fail": "html"}}
    resp = await gateway.post("/v1/chat/completions", body, openai_headers(upstream))
    assert resp.status == 503
    data = await resp.json()
    assert "502 Bad Gateway" in data["error"]["message"]
