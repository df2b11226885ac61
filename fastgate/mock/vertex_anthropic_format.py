"""The mock's Claude on Vertex AI: ``.../publishers/anthropic/models/{model}:rawPredict`` and
``:streamRawPredict``, answered in Anthropic's wire format by ``anthropic_format``, and token
counts at ``.../models/count-tokens:rawPredict``.

It refuses what Vertex refuses (https://cloud.google.com/vertex-ai/generative-ai/docs/
partner-models/claude/use-claude, https://docs.anthropic.com/en/api/claude-on-vertex-ai): no Bearer
token (401 from Vertex's front door, google.rpc.Status), a body without ``anthropic_version`` or
with a ``model`` (400, Anthropic's error shape: the model is named by the URL alone; a token
count, whose URL names no model, needs it in the body instead:
https://cloud.google.com/vertex-ai/generative-ai/docs/partner-models/claude/count-tokens), and
every body Anthropic itself would refuse.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from fastgate.mock import anthropic_format, gemini_format
from fastgate.mock.anthropic_format import AnthropicFormat
from fastgate.mock.playback import MockServer, play

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any])
METHODS = {"rawPredict": False, "streamRawPredict": True}


#: The model of the URL that counts tokens for the model named in the body.
COUNT_TOKENS = "count-tokens"


def _refusal(request: dict[str, Any], counting: bool) -> str | None:
    if counting and not isinstance(request.get("model"), str):
        return "model: Field required"
    if not counting and "model" in request:
        return "model: Extra inputs are not permitted"
    if not isinstance(request.get("anthropic_version"), str):
        return "anthropic_version: Field required"
    return None


def _reply(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json")


def add_routes(app: web.Application, server: MockServer) -> None:
    fmt = AnthropicFormat()

    async def predict(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        model, _, method = request.match_info["call"].partition(":")
        if method not in METHODS:
            return _reply(404, gemini_format.error(404, f"Method {method} not found."))
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _reply(
                401, gemini_format.error(401, "Request is missing required authentication credential.")
            )
        try:
            parsed = _decode.decode(body)
        except msgspec.DecodeError:
            return _reply(400, anthropic_format.error(400, "There was an error parsing the body"))
        counting = model == COUNT_TOKENS
        reason = _refusal(parsed, counting)
        if reason is not None:
            return _reply(400, anthropic_format.error(400, reason))
        if counting:
            if method != "rawPredict":
                return _reply(404, gemini_format.error(404, f"Method {method} not found."))
            plan = server.engine.plan("messages/count_tokens", body, fmt)
            return await play(request, plan)
        # The answer names the model of the URL, as Vertex's do.
        parsed["model"] = model
        plan = server.engine.plan("messages", _encode(parsed), fmt, stream=METHODS[method])
        return await play(request, plan)

    app.router.add_post(
        "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{call}", predict
    )
