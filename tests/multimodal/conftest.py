"""The SDK clients of the multimodal tests: one per way of reaching the mock."""

from __future__ import annotations

from openai import AsyncOpenAI

from tests.conftest import Gateway


def headers_for(kind: str, url: str, deployment: str = "gpt-4o-mini") -> dict[str, str]:
    """Portkey headers that reach the mock as ``kind``: ``openai`` (or another OpenAI-compatible
    slug) at ``url`` (the mock's ``/v1``), ``azure-openai`` at Azure's URLs under it, or the in-process
    ``mock``."""
    if kind == "mock":
        return {"x-portkey-provider": "mock"}
    if kind == "azure-openai":
        return {
            "x-portkey-provider": "azure-openai",
            "x-portkey-azure-resource-name": "unused",
            "x-portkey-azure-deployment-id": deployment,
            "x-portkey-azure-api-version": "2025-04-01-preview",
            "x-portkey-custom-host": url.removesuffix("/v1") + "/openai",
        }
    return {"x-portkey-provider": kind, "x-portkey-custom-host": url}


def sdk_client(gateway: Gateway, headers: dict[str, str], key: str = "sk-test") -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, default_headers=headers)
