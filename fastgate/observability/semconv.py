"""The OpenTelemetry GenAI semantic conventions' names for fastgate's routes and providers
(``gen_ai.operation.name`` and ``gen_ai.provider.name``, registry/attributes/gen-ai.md)."""

from __future__ import annotations

#: Route pattern → ``gen_ai.operation.name`` (its well-known values; others as they are).
_OPERATIONS = {
    "/v1/chat/completions": "chat",
    "/v1/messages": "chat",
    "/v1/responses": "chat",
    "/v1/completions": "text_completion",
    "/v1/embeddings": "embeddings",
}
#: fastgate's provider slug → ``gen_ai.provider.name`` where the conventions name the provider.
_PROVIDERS = {
    "openai": "openai",
    "azure-openai": "azure.ai.openai",
    "anthropic": "anthropic",
    "vertex-anthropic": "gcp.vertex_ai",
    "google": "gcp.gemini",
    "vertex-ai": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "mistral-ai": "mistral_ai",
    "cohere": "cohere",
    "groq": "groq",
    "deepseek": "deepseek",
    "perplexity-ai": "perplexity",
    "x-ai": "x_ai",
}


def operation_name(route: str) -> str:
    return _OPERATIONS.get(route, "other")


def provider_name(provider: str) -> str:
    return _PROVIDERS.get(provider, provider)


#: The routes a request is labelled by when its path is one of them; any other path under /v1
#: went through the passthrough (its path is the client's: unbounded).
ROUTES = frozenset({*_OPERATIONS, "/v1/models"})
PASSTHROUGH_ROUTE = "/v1/{tail}"


def route_of(path: str, endpoint: str) -> str:
    """The route pattern of a request (a metric label and the log's ``route``): its path when
    that is a route's, else its endpoint's (``chat/completions``, or "" or ``proxy`` for the
    passthrough)."""
    if path in ROUTES:
        return path
    return f"/v1/{endpoint}" if endpoint and endpoint != "proxy" else PASSTHROUGH_ROUTE
