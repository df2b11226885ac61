"""Every provider by slug, built once at import."""

from __future__ import annotations

from fastgate.errors import bad_request
from fastgate.providers.anthropic import AnthropicProvider
from fastgate.providers.azure_openai import AzureOpenAI
from fastgate.providers.base import Provider
from fastgate.providers.bedrock import BedrockProvider
from fastgate.providers.cohere import CohereProvider
from fastgate.providers.compatible import compatible_providers
from fastgate.providers.google import GoogleProvider
from fastgate.providers.mistral import MistralAI
from fastgate.providers.mock import MockProvider
from fastgate.providers.stability import StabilityAI
from fastgate.providers.vertex import VertexProvider


def _build() -> dict[str, Provider]:
    providers: list[Provider] = [
        *compatible_providers(),
        MockProvider(),
        CohereProvider(),
        AzureOpenAI(),
        MistralAI(),
        AnthropicProvider(),
        BedrockProvider(),
        GoogleProvider(),
        VertexProvider(),
        StabilityAI(),
    ]
    return {p.name: p for p in providers}


PROVIDERS: dict[str, Provider] = _build()


def get_provider(slug: str) -> Provider:
    provider = PROVIDERS.get(slug)
    if provider is None:
        raise bad_request(f"Invalid provider passed: {slug!r}", param="provider", code="invalid_provider")
    return provider
