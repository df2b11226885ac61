"""``custom_host`` means what it means on Portkey, for every provider slug fastgate knows.

Portkey sends ``custom_host + getEndpoint()``: the custom host replaces exactly what the
provider's ``getBaseURL`` returns (``src/providers/<slug>/api.ts``). The rows below are those
two halves per provider, copied from Portkey's ``api.ts`` files (gateway 1.15.2): where the API
version belongs to the endpoint (``google``, ``vertex-ai``, ``together-ai``, ``deepseek`` ...),
a custom host is the server's root and gets the version appended. A trailing slash, or the
version given again at the end of the host, must still make the same URL.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastgate.errors import GatewayError
from fastgate.providers.base import Call, Endpoint, Target
from fastgate.providers.registry import PROVIDERS
from fastgate.schema.openai import view_decoder
from tests.conftest import Gateway, Upstream
from tests.support.sdk import portkey

HOST = "http://proxy.example:9000"
BODY = msgspec.json.encode({"model": "m1", "messages": [{"role": "user", "content": "hi"}]})
CHAT = "/chat/completions"
V1_CHAT = "/v1/chat/completions"

#: slug: (URL without a custom host (None: one is required), what Portkey appends to the custom
#: host, the version segment a user may repeat at the end of the host ("" when Portkey's base
#: already ends with it, so the custom host is given with it anyway)).
ROWS: dict[str, tuple[str | None, str, str]] = {
    "openai": ("https://api.openai.com/v1" + CHAT, CHAT, ""),
    "groq": ("https://api.groq.com/openai/v1" + CHAT, CHAT, ""),
    "together-ai": ("https://api.together.xyz" + V1_CHAT, V1_CHAT, "/v1"),
    "fireworks-ai": ("https://api.fireworks.ai/inference/v1" + CHAT, CHAT, ""),
    "deepseek": ("https://api.deepseek.com" + V1_CHAT, V1_CHAT, "/v1"),
    "x-ai": ("https://api.x.ai/v1" + CHAT, CHAT, ""),
    "perplexity-ai": ("https://api.perplexity.ai" + CHAT, CHAT, ""),
    "openrouter": ("https://openrouter.ai/api" + V1_CHAT, V1_CHAT, "/v1"),
    "deepinfra": ("https://api.deepinfra.com/v1/openai" + CHAT, CHAT, ""),
    "cerebras": ("https://api.cerebras.ai/v1" + CHAT, CHAT, ""),
    "sambanova": ("https://api.sambanova.ai" + V1_CHAT, V1_CHAT, "/v1"),
    "nebius": ("https://api.studio.nebius.ai/v1" + CHAT, CHAT, ""),
    # Novita's documented URL; Portkey's endpoint puts /v1 after its base.
    "novita-ai": ("https://api.novita.ai/v3/openai" + CHAT, V1_CHAT, "/v1"),
    "lambda": ("https://api.lambdalabs.com/v1" + CHAT, CHAT, ""),
    "hyperbolic": ("https://api.hyperbolic.xyz" + V1_CHAT, V1_CHAT, "/v1"),
    "anyscale": ("https://api.endpoints.anyscale.com/v1" + CHAT, CHAT, ""),
    "moonshot": ("https://api.moonshot.cn" + V1_CHAT, V1_CHAT, "/v1"),
    "lingyi": ("https://api.lingyiwanwu.com" + V1_CHAT, V1_CHAT, "/v1"),
    "zhipu": ("https://open.bigmodel.cn/api/paas/v4" + CHAT, CHAT, ""),
    "z-ai": ("https://api.z.ai/api/paas/v4" + CHAT, CHAT, ""),
    "dashscope": ("https://dashscope-intl.aliyuncs.com/compatible-mode/v1" + CHAT, CHAT, ""),
    "siliconflow": ("https://api.siliconflow.cn/v1" + CHAT, CHAT, ""),
    "deepbricks": ("https://api.deepbricks.ai/v1" + CHAT, CHAT, ""),
    "inference-net": ("https://api.inference.net/v1" + CHAT, CHAT, ""),
    "lemonfox-ai": ("https://api.lemonfox.ai/v1" + CHAT, CHAT, ""),
    "upstage": ("https://api.upstage.ai/v1/solar" + CHAT, CHAT, ""),
    "kluster-ai": ("https://api.kluster.ai/v1" + CHAT, CHAT, ""),
    "nscale": ("https://inference.api.nscale.com/v1" + CHAT, CHAT, ""),
    "featherless-ai": ("https://api.featherless.ai/v1" + CHAT, CHAT, ""),
    "krutrim": ("https://cloud.olakrutrim.com/v1" + CHAT, CHAT, ""),
    "302ai": ("https://api.302.ai" + V1_CHAT, V1_CHAT, "/v1"),
    "cometapi": ("https://api.cometapi.com/v1" + CHAT, CHAT, ""),
    "github": ("https://models.inference.ai.azure.com" + CHAT, CHAT, ""),
    "lepton": ("https://api.lepton.ai/api/v1" + CHAT, "/api/v1" + CHAT, "/api/v1"),
    "modal": ("https://api.modal.com/v1" + CHAT, CHAT, ""),
    "huggingface": (
        "https://api-inference.huggingface.co/models/m1/v1/chat/completions",
        "/models/m1/v1/chat/completions",
        "",
    ),
    "ollama": (None, V1_CHAT, "/v1"),
    # Not Portkey providers: their servers serve OpenAI's API under /v1 of the root, as Ollama's.
    "vllm": (None, V1_CHAT, "/v1"),
    "lm-studio": (None, V1_CHAT, "/v1"),
    "llamacpp": (None, V1_CHAT, "/v1"),
    "mistral-ai": ("https://api.mistral.ai/v1" + CHAT, CHAT, ""),
    "anthropic": ("https://api.anthropic.com/v1/messages", "/messages", ""),
    "cohere": ("https://api.cohere.com/v2/chat", "/v2/chat", "/v2"),
    "google": (
        "https://generativelanguage.googleapis.com/v1beta/models/m1:generateContent",
        "/v1beta/models/m1:generateContent",
        "/v1beta",
    ),
    "vertex-ai": (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/proj/locations/europe-west4"
        "/publishers/google/models/m1:generateContent",
        "/v1/projects/proj/locations/europe-west4/publishers/google/models/m1:generateContent",
        "/v1",
    ),
    # Portkey's base includes /openai: a custom host takes its place, /openai and all.
    "azure-openai": (
        "https://res.openai.azure.com/openai/deployments/dep/chat/completions?api-version=2024-10-21",
        "/deployments/dep/chat/completions?api-version=2024-10-21",
        "",
    ),
    "bedrock": (
        "https://bedrock-runtime.us-west-2.amazonaws.com/model/m1/converse",
        "/model/m1/converse",
        "",
    ),
    # Providers without chat, by the route they serve (``NOT_CHAT``).
    "stability-ai": (
        "https://api.stability.ai/v2beta/stable-image/generate/core",
        "/v2beta/stable-image/generate/core",
        "",
    ),
    "jina": ("https://api.jina.ai/v1/rerank", "/rerank", ""),
    "voyage": ("https://api.voyageai.com/v1/rerank", "/rerank", ""),
}
#: Providers that serve no chat: the endpoint and body their row's URL is built from.
RERANK = msgspec.json.encode({"model": "m1", "query": "q", "documents": ["a"]})
NOT_CHAT: dict[str, tuple[Endpoint, bytes]] = {
    "stability-ai": (Endpoint.IMAGES, msgspec.json.encode({"model": "core", "prompt": "hi"})),
    "jina": (Endpoint.RERANK, RERANK),
    "voyage": (Endpoint.RERANK, RERANK),
}

#: What each provider needs besides a host to build a chat request.
OPTIONS: dict[str, dict[str, Any]] = {
    "vertex-ai": {"vertex_project_id": "proj", "vertex_region": "europe-west4"},
    "azure-openai": {"resource_name": "res", "deployment_id": "dep", "api_version": "2024-10-21"},
    "bedrock": {
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
        "aws_region": "us-west-2",
    },
}


def chat_url(slug: str, custom_host: str | None) -> str:
    provider = PROVIDERS[slug]
    target = Target(provider=slug, api_key="k-123", custom_host=custom_host, options=OPTIONS.get(slug, {}))
    endpoint, body = NOT_CHAT.get(slug, (Endpoint.CHAT, BODY))
    view = (provider.chat_request_decoder or view_decoder).decode(body)
    call = Call(endpoint=endpoint, target=target, body=body, view=view)
    return provider.request(call).url


def test_every_provider_has_a_row() -> None:
    # A provider added without deciding what its custom host means fails here.
    assert set(ROWS) == set(PROVIDERS) - {"mock"}
    assert PROVIDERS["mock"].local  # answers in-process: no URL at all


@pytest.mark.parametrize("slug", sorted(ROWS))
def test_base_url_without_a_custom_host(slug: str) -> None:
    default, _, _ = ROWS[slug]
    if default is None:
        with pytest.raises(GatewayError) as caught:
            chat_url(slug, None)
        assert caught.value.status == 400 and caught.value.param == "custom_host"
    else:
        assert chat_url(slug, None) == default


@pytest.mark.parametrize("slug", sorted(ROWS))
@pytest.mark.parametrize("host", [HOST, HOST + "/"], ids=["bare", "trailing-slash"])
def test_custom_host_replaces_portkeys_base(slug: str, host: str) -> None:
    _, endpoint, _ = ROWS[slug]
    assert chat_url(slug, host) == HOST + endpoint


@pytest.mark.parametrize("slug", sorted(s for s, row in ROWS.items() if row[2]))
@pytest.mark.parametrize("suffix", ["", "/"], ids=["bare", "trailing-slash"])
def test_a_version_given_in_the_custom_host_is_not_doubled(slug: str, suffix: str) -> None:
    _, endpoint, version = ROWS[slug]
    assert chat_url(slug, HOST + version + suffix) == HOST + endpoint


def test_azure_custom_host_with_openai_is_not_doubled() -> None:
    # The example: Portkey users give the resource's /openai path as the custom host.
    url = chat_url("azure-openai", "http://proxy/openai")
    assert url == "http://proxy/openai/deployments/dep/chat/completions?api-version=2024-10-21"


def test_huggingface_dedicated_endpoint_drops_the_model_path() -> None:
    provider = PROVIDERS["huggingface"]
    options = {"huggingface_base_url": "https://xyz.endpoints.huggingface.cloud"}
    call = Call(
        endpoint=Endpoint.CHAT,
        target=Target(provider="huggingface", options=options),
        body=BODY,
        view=view_decoder.decode(BODY),
    )
    assert provider.request(call).url == "https://xyz.endpoints.huggingface.cloud/v1/chat/completions"


def mock_root(upstream: Upstream) -> str:
    return str(upstream.server.make_url("")).rstrip("/")


@pytest.mark.parametrize(
    ("provider", "model", "suffix", "path"),
    [
        ("google", "gemini-1.5-flash", "", "/v1beta/models/gemini-1.5-flash:generateContent"),
        ("google", "gemini-1.5-flash", "/v1beta/", "/v1beta/models/gemini-1.5-flash:generateContent"),
        ("together-ai", "meta-llama/Llama-3.3-70B", "", "/v1/chat/completions"),
        ("deepseek", "deepseek-chat", "/v1", "/v1/chat/completions"),
        ("openai", "gpt-4o-mini", "/v1/", "/v1/chat/completions"),
    ],
)
async def test_portkey_sdk_custom_host_reaches_the_same_path_as_on_portkey(
    gateway: Gateway, upstream: Upstream, provider: str, model: str, suffix: str, path: str
) -> None:
    async with portkey(
        base_url=gateway.url + "/v1",
        provider=provider,
        custom_host=mock_root(upstream) + suffix,
        Authorization="sk-client",
        max_retries=0,
    ) as client:
        answer = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "where do I go?"}]
        )
    assert "where do I go?" in (answer.choices[0].message.content or "")
    assert [r["path"] for r in upstream.requests] == [path]
