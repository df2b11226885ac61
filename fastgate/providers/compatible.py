"""The OpenAI-compatible long tail as data: slug → base URL (and auth, where it differs).

Facts from each provider's public API docs (base URL of its OpenAI-compatible endpoint).
A row here is all a new compatible provider needs.
"""

from __future__ import annotations

from fastgate.providers.openai import OpenAICompatible

#: slug: base URL (None = the client must give a custom host).
BASE_URLS: dict[str, str | None] = {
    "groq": "https://api.groq.com/openai/v1",
    "together-ai": "https://api.together.xyz/v1",
    "fireworks-ai": "https://api.fireworks.ai/inference/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "x-ai": "https://api.x.ai/v1",
    "perplexity-ai": "https://api.perplexity.ai",
    "openrouter": "https://openrouter.ai/api/v1",
    "deepinfra": "https://api.deepinfra.com/v1/openai",
    "cerebras": "https://api.cerebras.ai/v1",
    "sambanova": "https://api.sambanova.ai/v1",
    "nebius": "https://api.studio.nebius.ai/v1",
    "novita-ai": "https://api.novita.ai/v3/openai",
    "lambda": "https://api.lambdalabs.com/v1",
    "hyperbolic": "https://api.hyperbolic.xyz/v1",
    "anyscale": "https://api.endpoints.anyscale.com/v1",
    "moonshot": "https://api.moonshot.cn/v1",
    "lingyi": "https://api.lingyiwanwu.com/v1",
    "zhipu": "https://open.bigmodel.cn/api/paas/v4",
    "z-ai": "https://api.z.ai/api/paas/v4",
    "dashscope": "https://dashscope.aliyuncs.com/compatible-mode/v1",
    "siliconflow": "https://api.siliconflow.cn/v1",
    "deepbricks": "https://api.deepbricks.ai/v1",
    "inference-net": "https://api.inference.net/v1",
    "lemonfox-ai": "https://api.lemonfox.ai/v1",
    "upstage": "https://api.upstage.ai/v1/solar",
    "kluster-ai": "https://api.kluster.ai/v1",
    "nscale": "https://inference.api.nscale.com/v1",
    "featherless-ai": "https://api.featherless.ai/v1",
    "krutrim": "https://cloud.olakrutrim.com/v1",
    "302ai": "https://api.302.ai/v1",
    "cometapi": "https://api.cometapi.com/v1",
    "github": "https://models.inference.ai.azure.com",
    "lepton": None,
    "huggingface": None,
    "modal": None,
    "vllm": None,
    "lm-studio": None,
    "llamacpp": None,
}


def compatible_providers() -> list[OpenAICompatible]:
    providers = [OpenAICompatible(slug, url) for slug, url in BASE_URLS.items()]
    # Ollama serves OpenAI's API under /v1 of its root; Portkey users give the root as custom host.
    providers.append(OpenAICompatible("ollama", None, root_suffix="/v1"))
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
        )
    )
    return providers
