"""Azure OpenAI through the gateway to the mock's Azure routes: URLs, auth variants, streaming."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastgate.providers.azure_openai import AzureOpenAI
from fastgate.providers.base import Call, Endpoint, Target
from fastgate.schema.openai import RequestView
from tests.conftest import Gateway, Upstream
from tests.support.replay import sdk

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello azure"}]}


def azure_headers(upstream: Upstream, api_version: str = "2024-10-21", **extra: str) -> dict[str, str]:
    return {
        "x-portkey-provider": "azure-openai",
        # Portkey's base for azure-openai includes /openai; a custom host takes its place.
        "x-portkey-custom-host": str(upstream.server.make_url("/openai")),
        "x-portkey-azure-resource-name": "my-resource",
        "x-portkey-azure-deployment-id": "gpt4o-dep",
        "x-portkey-azure-api-version": api_version,
        **extra,
    }


async def test_chat_goes_to_the_deployment_with_api_key(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, azure_headers(upstream), api_key="az-key")
    answer = await client.chat.completions.create(model="gpt-4o", messages=CHAT["messages"])  # type: ignore[arg-type]
    [record] = upstream.requests
    assert record["path"] == "/openai/deployments/gpt4o-dep/chat/completions"
    assert record["query"] == "api-version=2024-10-21"
    assert record["headers"]["api-key"] == "az-key"
    assert "Authorization" not in record["headers"]
    assert msgspec.json.decode(record["body"]) == CHAT
    assert answer.choices[0].message.content == "Mock reply to: hello azure"
    extra = answer.model_extra or {}
    assert extra["provider"] == "azure-openai"
    assert extra["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
    assert (answer.choices[0].model_extra or {})["content_filter_results"]["violence"]["severity"] == "safe"
    await client.close()


async def test_config_keys_work_like_headers(gateway: Gateway, upstream: Upstream) -> None:
    config = {
        "provider": "azure-openai",
        "api_key": "az-config",
        "custom_host": str(upstream.server.make_url("/openai")),
        "resource_name": "my-resource",
        "deployment_id": "emb-dep",
        "api_version": "2024-06-01",
    }
    resp = await gateway.post(
        "/v1/embeddings", {"input": "x"}, {"x-portkey-config": msgspec.json.encode(config).decode()}
    )
    assert resp.status == 200
    [record] = upstream.requests
    assert (record["path"], record["query"]) == (
        "/openai/deployments/emb-dep/embeddings",
        "api-version=2024-06-01",
    )
    assert record["headers"]["api-key"] == "az-config"


async def test_completions_path(gateway: Gateway, upstream: Upstream) -> None:
    headers = {**azure_headers(upstream), "Authorization": "Bearer az-key"}
    resp = await gateway.post("/v1/completions", {"prompt": "hi"}, headers)
    assert resp.status == 200
    assert upstream.requests[0]["path"] == "/openai/deployments/gpt4o-dep/completions"


async def test_v1_api_has_no_deployment_and_no_api_version(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, azure_headers(upstream, api_version="v1"), api_key="az-key")
    await client.chat.completions.create(model="gpt4o-dep", messages=CHAT["messages"])  # type: ignore[arg-type]
    [record] = upstream.requests
    assert (record["path"], record["query"]) == ("/openai/v1/chat/completions", "")
    assert record["headers"]["api-key"] == "az-key"
    await client.close()


@pytest.mark.parametrize(
    ("extra", "api_key", "expected"),
    [
        ({"x-portkey-azure-ad-token": "entra-tok"}, "az-key", {"Authorization": "Bearer entra-tok"}),
        ({"x-portkey-azure-ad-token": "Bearer entra-tok"}, None, {"Authorization": "Bearer entra-tok"}),
        ({"x-portkey-azure-auth-mode": "entra"}, "entra-as-key", {"Authorization": "Bearer entra-as-key"}),
        ({}, "az-key", {"api-key": "az-key"}),
    ],
)
async def test_auth_variants(
    gateway: Gateway, upstream: Upstream, extra: dict[str, str], api_key: str | None, expected: dict[str, str]
) -> None:
    headers = azure_headers(upstream, **extra)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 200
    got = upstream.requests[0]["headers"]
    for name, value in expected.items():
        assert got[name] == value
    assert ("api-key" in got) == ("api-key" in expected)
    assert ("Authorization" in got) == ("Authorization" in expected)


async def test_identity_modes_that_need_token_fetching_are_refused(
    gateway: Gateway, upstream: Upstream
) -> None:
    headers = azure_headers(upstream, **{"x-portkey-azure-auth-mode": "managed"})
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 400
    assert "azure_ad_token" in (await resp.json())["error"]["message"]
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("missing", "fragment"),
    [("x-portkey-azure-deployment-id", "deployment_id"), ("x-portkey-azure-api-version", "api_version")],
)
async def test_missing_options_are_400(
    gateway: Gateway, upstream: Upstream, missing: str, fragment: str
) -> None:
    headers = {k: v for k, v in azure_headers(upstream).items() if k != missing}
    resp = await gateway.post("/v1/chat/completions", CHAT, {**headers, "Authorization": "Bearer k"})
    assert resp.status == 400
    assert fragment in (await resp.json())["error"]["message"]
    assert upstream.requests == []


async def test_stream_passes_azure_chunks_through(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, azure_headers(upstream), api_key="az-key")
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=CHAT["messages"],  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    # Azure's opening chunk: no choices, only the prompt's filter results; the SDK takes it.
    assert chunks[0].choices == [] and chunks[0].id == ""
    assert (chunks[0].model_extra or {})["prompt_filter_results"][0]["prompt_index"] == 0
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Mock reply to: hello azure"
    )
    assert chunks[-1].usage is not None
    await client.close()


async def test_stream_bytes_are_relayed_untouched(gateway: Gateway, upstream: Upstream) -> None:
    headers = {**azure_headers(upstream), "Authorization": "Bearer az-key"}
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "stream": True}, headers)
    raw = await resp.read()
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[0].startswith(b'data: {"choices":[],"created":0,"id":"","model":"","object":""')
    assert sum(b'"content_filter_results"' in e for e in events) >= 4
    assert events[-1] == b"data: [DONE]"


async def test_azure_error_keeps_status(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/chat/completions", CHAT, azure_headers(upstream))  # no key at all
    assert resp.status == 401
    data = await resp.json()
    assert data["error"]["message"].startswith("azure-openai error: Access denied")
    assert (data["error"]["code"], data["provider"]) == ("401", "azure-openai")


def _call(options: dict[str, Any], endpoint: Endpoint = Endpoint.CHAT, **call: Any) -> Call:
    target = Target(provider="azure-openai", api_key="k", options=options)
    return Call(endpoint=endpoint, target=target, body=b"{}", view=RequestView(), **call)


@pytest.mark.parametrize(
    ("options", "endpoint", "call", "url"),
    [
        (
            {"resource_name": "res", "deployment_id": "dep", "api_version": "2024-10-21"},
            Endpoint.CHAT,
            {},
            "https://res.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-10-21",
        ),
        (
            {"azure_resource_name": "res", "api_version": "v1"},
            Endpoint.EMBEDDINGS,
            {},
            "https://res.openai.azure.com/openai/v1/embeddings",
        ),
        (
            {"resource_name": "res", "api_version": "2025-04-01-preview"},
            Endpoint.PROXY,
            {"method": "GET", "path": "/batches", "query": "limit=2"},
            "https://res.openai.azure.com/openai/batches?limit=2&api-version=2025-04-01-preview",
        ),
    ],
)
def test_urls_on_azure_hosts(
    options: dict[str, Any], endpoint: Endpoint, call: dict[str, Any], url: str
) -> None:
    assert AzureOpenAI().request(_call(options, endpoint, **call)).url == url
