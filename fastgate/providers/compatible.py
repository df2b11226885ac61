"""The OpenAI-compatible long tail as data: slug → base URL, and what a custom host lacks.

The base URL is the one each provider documents for its OpenAI-compatible API. The second value
is the part of it that Portkey's ``src/providers/<slug>/api.ts`` puts in ``getEndpoint`` rather
than ``getBaseURL``: a custom host replaces Portkey's base, so it is appended to the host
(``together-ai``: ``getBaseURL`` ``https://api.together.xyz``, ``getEndpoint`` ``/v1/chat/completions``).
A row here is all a new compatible provider needs.
"""

from __future__ import annotations

from fastgate.providers.base import Endpoint
from fastgate.providers.huggingface import HuggingFace
from fastgate.providers.openai import COMPATIBLE_ENDPOINTS, OpenAICompatible
from fastgate.providers.voyage import VoyageAI

#: slug: (base URL, version appended to a custom host). A base of None: the client must give
#: a custom host (a server of its own).
ROUTES: dict[str, tuple[str | None, str]] = {
    "groq": ("https://api.groq.com/openai/v1", ""),
    "together-ai": ("https://api.together.xyz/v1", "/v1"),
    "fireworks-ai": ("https://api.fireworks.ai/inference/v1", ""),
    "deepseek": ("https://api.deepseek.com/v1", "/v1"),
    "x-ai": ("https://api.x.ai/v1", ""),
    "perplexity-ai": ("https://api.perplexity.ai", ""),
    "openrouter": ("https://openrouter.ai/api/v1", "/v1"),
    "deepinfra": ("https://api.deepinfra.com/v1/openai", ""),
    "cerebras": ("https://api.cerebras.ai/v1", ""),
    "sambanova": ("https://api.sambanova.ai/v1", "/v1"),
    "nebius": ("https://api.studio.nebius.ai/v1", ""),
    # Novita documents https://api.novita.ai/v3/openai + /chat/completions; Portkey's endpoint
    # adds /v1 after its base, so that is what a custom host gets.
    "novita-ai": ("https://api.novita.ai/v3/openai", "/v1"),
    "lambda": ("https://api.lambdalabs.com/v1", ""),
    "hyperbolic": ("https://api.hyperbolic.xyz/v1", "/v1"),
    "anyscale": ("https://api.endpoints.anyscale.com/v1", ""),
    "moonshot": ("https://api.moonshot.cn/v1", "/v1"),
    "lingyi": ("https://api.lingyiwanwu.com/v1", "/v1"),
    "zhipu": ("https://open.bigmodel.cn/api/paas/v4", ""),
    "z-ai": ("https://api.z.ai/api/paas/v4", ""),
    "dashscope": ("https://dashscope-intl.aliyuncs.com/compatible-mode/v1", ""),
    "siliconflow": ("https://api.siliconflow.cn/v1", ""),
    "deepbricks": ("https://api.deepbricks.ai/v1", ""),
    "inference-net": ("https://api.inference.net/v1", ""),
    "lemonfox-ai": ("https://api.lemonfox.ai/v1", ""),
    "upstage": ("https://api.upstage.ai/v1/solar", ""),
    "kluster-ai": ("https://api.kluster.ai/v1", ""),
    "nscale": ("https://inference.api.nscale.com/v1", ""),
    "featherless-ai": ("https://api.featherless.ai/v1", ""),
    "krutrim": ("https://cloud.olakrutrim.com/v1", ""),
    "302ai": ("https://api.302.ai/v1", "/v1"),
    "cometapi": ("https://api.cometapi.com/v1", ""),
    "github": ("https://models.inference.ai.azure.com", ""),
    "lepton": ("https://api.lepton.ai/api/v1", "/api/v1"),
    "modal": ("https://api.modal.com/v1", ""),
    # Ollama's OpenAI API is under /v1 of the server root, which Portkey takes as the custom
    # host (ollama/api.ts); vLLM, LM Studio and llama.cpp's servers (not in Portkey) alike.
    "ollama": (None, "/v1"),
    "vllm": (None, "/v1"),
    "lm-studio": (None, "/v1"),
    "llamacpp": (None, "/v1"),
}


#: Rows that also serve a Cohere-shaped ``POST /rerank`` (Together's rerank API, SiliconFlow's,
#: vLLM's and llama.cpp's servers): ``/v1/rerank`` goes through to them as it is.
RERANKERS = frozenset({"together-ai", "siliconflow", "vllm", "llamacpp"})


def compatible_providers() -> list[OpenAICompatible]:
    providers = [
        OpenAICompatible(
            slug,
            url,
            version=version,
            endpoints=COMPATIBLE_ENDPOINTS | {Endpoint.RERANK} if slug in RERANKERS else COMPATIBLE_ENDPOINTS,
        )
        for slug, (url, version) in ROUTES.items()
    ]
    providers.append(HuggingFace())
    # Jina AI: OpenAI's embeddings API and a Cohere-shaped rerank, nothing else (Portkey's base).
    jina = frozenset({Endpoint.EMBEDDINGS, Endpoint.RERANK, Endpoint.PROXY})
    providers.append(OpenAICompatible("jina", "https://api.jina.ai/v1", endpoints=jina))
    providers.append(VoyageAI())
    providers.append(
        OpenAICompatible(
            "openai",
            "https://api.openai.com/v1",
            add_provider_field=False,
            option_headers={
                "openai_organization": "OpenAI-Organization",
                "openai_project": "OpenAI-Project",
                "openai_beta": "OpenAI-Beta",
            },
            endpoints=COMPATIBLE_ENDPOINTS | {Endpoint.MODERATIONS, Endpoint.RESPONSES},
        )
    )
    return providers
