"""Azure OpenAI answers of the mock: OpenAI's bodies at Azure's deployment and v1 routes.

Like Azure (REST reference and content-filter docs, learn.microsoft.com/azure/ai-foundry/openai),
a deployment (or files, uploads, batches) route without ``api-version`` is a 404, a request
without ``api-key`` or a bearer token a 401, chat answers carry ``prompt_filter_results`` and per-choice
``content_filter_results``, and a stream opens with a chunk whose ``choices`` is empty and
which holds only the prompt's filter results.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from fastgate.mock.directives import Directives
from fastgate.mock.engine import MockPlan
from fastgate.mock.openai_format import OPENAI
from fastgate.mock.playback import OPERATION_ROOTS, MockServer, play
from fastgate.mock.responses_format import ResponsesFormat

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any])
_SAFE = {"filtered": False, "severity": "safe"}
CONTENT_FILTER_RESULTS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTER_RESULTS = [{"prompt_index": 0, "content_filter_results": CONTENT_FILTER_RESULTS}]


def error(status: int, message: str) -> bytes:
    """Azure's error body: OpenAI's envelope with the status as a string ``code``."""
    return _encode({"error": {"code": str(status), "message": message}})


def _filtered_frame(frame: bytes) -> bytes:
    if not frame.startswith(b"data: {"):
        return frame
    chunk = _decode.decode(frame[6:].strip())
    for choice in chunk.get("choices") or ():
        if choice.get("delta"):
            choice["content_filter_results"] = CONTENT_FILTER_RESULTS
    return b"data: " + _encode(chunk) + b"\n\n"


class AzureFormat:
    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        # A deployment URL names the model: Azure's bodies may leave ``model`` out.
        plan = OPENAI.answer(endpoint, {"model": "deployment", **request}, d)
        if endpoint != "chat/completions" or plan.status != 200:
            return plan
        if plan.frames is not None:
            opening = {
                "choices": [],
                "created": 0,
                "id": "",
                "model": "",
                "object": "",
                "prompt_filter_results": PROMPT_FILTER_RESULTS,
            }
            plan.frames = [b"data: " + _encode(opening) + b"\n\n", *map(_filtered_frame, plan.frames)]
            return plan
        body = _decode.decode(plan.body)
        body["prompt_filter_results"] = PROMPT_FILTER_RESULTS
        for choice in body["choices"]:
            choice["content_filter_results"] = CONTENT_FILTER_RESULTS
        plan.body = _encode(body)
        return plan

    def error(self, status: int, message: str) -> bytes:
        return error(status, message)


AZURE = AzureFormat()


def add_routes(app: web.Application, server: MockServer) -> None:
    responses = ResponsesFormat()  # Azure's Responses API: OpenAI's, under /openai

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        if not request.path.startswith("/openai/v1/") and "api-version" not in request.query:
            return web.Response(
                status=404, body=error(404, "Resource not found"), content_type="application/json"
            )
        if not request.headers.get("api-key") and not request.headers.get("Authorization", "").startswith(
            "Bearer "
        ):
            message = "Access denied due to invalid subscription key or wrong API endpoint."
            return web.Response(status=401, body=error(401, message), content_type="application/json")
        tail = request.match_info["tail"]
        root = tail.partition("/")[0]
        if root in OPERATION_ROOTS:
            plan = server.operation(request, tail, body)
        elif root == "responses" and "deployment" not in request.match_info:
            plan = responses.plan(server.engine, request.method, tail, body)
        else:
            plan = server.engine.plan(tail, body, AZURE)
        return await play(request, plan)

    app.router.add_route("*", "/openai/deployments/{deployment}/{tail:.+}", handle)
    app.router.add_route("*", "/openai/v1/{tail:.+}", handle)
    # Files, uploads, batches and responses are the resource's (REST reference:
    # /openai/files?api-version=).
    app.router.add_route("*", "/openai/{tail:(?:files|uploads|batches).*}", handle)
    app.router.add_route("*", "/openai/{tail:responses(/[^/]+){0,2}}", handle)
