"""Provider ``huggingface``: OpenAI's wire format on Hugging Face's Inference API, per model.

Portkey's ``src/providers/huggingface/api.ts``: the base is the ``huggingface_base_url`` option
(a dedicated Inference Endpoint) or ``https://api-inference.huggingface.co``, and the endpoint
is ``/models/{model}/v1/chat/completions`` (``/v1/completions``), without ``/models/{model}``
when the option names an endpoint of its own. A custom host replaces the base, as everywhere.
"""

from __future__ import annotations

import re

from fastgate.errors import bad_request
from fastgate.providers.base import Call, Endpoint
from fastgate.providers.openai import OpenAICompatible
from fastgate.providers.urls import under_host

BASE_URL = "https://api-inference.huggingface.co"
#: A Hub model id (``meta-llama/Llama-3.1-8B-Instruct``) as path segments: nothing that could
#: leave the path (``..``, ``?``, ``#``, ``%``).
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")


class HuggingFace(OpenAICompatible):
    def __init__(self) -> None:
        super().__init__(
            "huggingface",
            BASE_URL,
            version="/v1",
            endpoints=frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.PROXY}),
        )

    def url(self, call: Call, path: str) -> str:
        dedicated = call.target.options.get("huggingface_base_url")
        host = call.target.custom_host or (str(dedicated) if dedicated else BASE_URL)
        if call.endpoint is not Endpoint.PROXY:
            path = "/v1" + path
            if not dedicated:
                path = f"/models/{self._model(call)}{path}"
        return under_host(host, path)

    @staticmethod
    def _model(call: Call) -> str:
        overrides = call.target.override_params
        model = overrides.get("model") if overrides else None
        model = str(model or call.view.model or "")
        if not _MODEL.fullmatch(model) or ".." in model:
            raise bad_request(f"Invalid model name {model[:100]!r} for huggingface", param="model")
        return model
