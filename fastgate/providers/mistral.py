"""Provider ``mistral-ai``: OpenAI's wire format with Mistral's few renames.

Mistral's chat API (https://docs.mistral.ai/api/#tag/chat) names the seed ``random_seed`` and
spells a forced tool call ``tool_choice: "any"``; its finish reasons add ``model_length`` (the
context window ran out: OpenAI's ``length``) and ``error`` (generation failed after it began;
OpenAI has no such value, so strict mode reports ``stop`` as Portkey's finish-reason map does,
and non-strict mode passes Mistral's value through). Everything else, ``stop``,
``response_format`` and the penalties included (Portkey's whitelist drops them), is sent as is.

The renames live here, not in the compiled module: a byte scan decides whether the body can
need one, and only then is it decoded and re-encoded; nothing else is worth compiling.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from fastgate._transforms import (
    ChatAsCompletionStream,
    chat_as_completion_response,
    completion_as_chat_request,
)
from fastgate.providers.base import Call, Endpoint, StreamMapper, UpstreamRequest
from fastgate.providers.openai import OpenAICompatible, PassthroughStream
from fastgate.schema.openai import json_encoder, object_decoder

BASE_URL = "https://api.mistral.ai/v1"
_FINISH = re.compile(rb'("finish_reason"\s*:\s*)"(model_length|error)"')
_FINISH_MAP = {b"model_length": b'"length"', b"error": b'"stop"'}
_FINISH_NAMES = {"model_length": "length", "error": "stop"}


def _may_rename(body: bytes) -> bool:
    return body.find(b'"seed"') >= 0 or body.find(b'"required"') >= 0


def _rename(params: dict[str, Any]) -> bool:
    """OpenAI names → Mistral's, in place; whether anything changed."""
    changed = False
    if params.get("tool_choice") == "required":
        params["tool_choice"] = "any"
        changed = True
    if "seed" in params:
        seed = params.pop("seed")
        params.setdefault("random_seed", seed)
        changed = True
    return changed


def _map_finish(data: bytes) -> bytes:
    if data.find(b"model_length") < 0 and data.find(b'"error"') < 0:
        return data
    return _FINISH.sub(lambda m: m.group(1) + _FINISH_MAP[m.group(2)], data)


class MistralStream(PassthroughStream):
    """The OpenAI relay, with Mistral's finish reasons mapped in the events that carry them."""

    __slots__ = ()

    def feed(self, chunk: bytes) -> bytes:
        return _map_finish(super().feed(chunk))


class MistralAI(OpenAICompatible):
    def __init__(self) -> None:
        super().__init__(
            "mistral-ai",
            BASE_URL,
            endpoints=frozenset(
                {Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.MODELS, Endpoint.PROXY}
            ),
        )

    def request(self, call: Call) -> UpstreamRequest:
        if call.endpoint is Endpoint.COMPLETIONS:
            # Mistral has no legacy completions API: the prompt goes to chat as one user turn.
            return self.request(
                msgspec.structs.replace(
                    call, endpoint=Endpoint.CHAT, body=completion_as_chat_request(call.body)
                )
            )
        overrides = call.target.override_params
        if call.endpoint is not Endpoint.CHAT or not (overrides or _may_rename(call.body)):
            return super().request(call)
        params = object_decoder.decode(call.body)
        if overrides:
            params.update(overrides)
        if not (_rename(params) or overrides):
            return super().request(call)
        # The merged, renamed body replaces the client's; the overrides are in it already.
        target = msgspec.structs.replace(call.target, override_params=None)
        return super().request(msgspec.structs.replace(call, body=json_encoder.encode(params), target=target))

    def response(self, call: Call, body: bytes) -> bytes:
        if call.endpoint is Endpoint.COMPLETIONS:
            return chat_as_completion_response(body, self.name, self._renames(call))
        if call.target.strict_open_ai_compliance and call.endpoint is Endpoint.CHAT:
            body = _map_finish(body)
        return super().response(call, body)

    def stream(self, call: Call) -> StreamMapper:
        if call.endpoint is Endpoint.COMPLETIONS:
            return ChatAsCompletionStream(self.name, self._renames(call))
        if call.target.strict_open_ai_compliance:
            return MistralStream()
        return PassthroughStream()

    @staticmethod
    def _renames(call: Call) -> dict[str, str] | None:
        return _FINISH_NAMES if call.target.strict_open_ai_compliance else None
