"""Cohere API v2 answers of the mock: ``POST /v2/chat`` (JSON and SSE), ``POST /v2/embed`` and
``POST /v2/rerank`` (strings only, no documents echoed: ``rerank.py`` scores them).

Shapes follow Cohere's API reference (chat, chat-stream, embed) and the cohere-python v2 types:
the stream is ``event: <type>`` + ``data: <json>`` pairs, message-start → content or tool-call
events → message-end with the finish reason and usage. Like Cohere, the mock stops at a stop
sequence (``STOP_SEQUENCE``) or at ``max_tokens`` words (``MAX_TOKENS``), and refuses a request
without ``model`` or an embed without ``input_type``/``embedding_types``. With the ``tool_call``
directive it calls every tool offered (Cohere calls tools in parallel); ``fail=finish_error``
ends the generation with Cohere's ``ERROR`` finish reason.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import msgspec
from aiohttp import web

from fastgate.mock.directives import Directives, last_user_text
from fastgate.mock.engine import MockPlan
from fastgate.mock.openai_format import embedding_vector, prompt_tokens, reply_text, split_chunks
from fastgate.mock.playback import MockServer, play
from fastgate.mock.rerank import rerank_answer, rerank_invalid
from fastgate.mock.tool_arguments import arguments_for

_encode = msgspec.json.Encoder().encode
_ids = itertools.count(1)
#: Cohere counts the prompt template's tokens in ``usage.tokens`` but bills only the user's.
TEMPLATE_TOKENS = 7


def error(status: int, message: str) -> bytes:
    """Cohere's error body: ``{"id": ..., "message": ...}``."""
    return _encode({"id": str(uuid.uuid4()), "message": message})


def _usage(request: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    billed = prompt_tokens(request)
    return {
        "billed_units": {"input_tokens": billed, "output_tokens": output_tokens},
        "tokens": {"input_tokens": billed + TEMPLATE_TOKENS, "output_tokens": output_tokens},
    }


def _tool_calls(request: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    text = last_user_text(request)
    for tool in request.get("tools") or ():
        function = (tool.get("function") or {}) if isinstance(tool, dict) else {}
        name = function.get("name")
        if name:
            arguments = arguments_for(function.get("parameters"), text)
            calls.append(
                {
                    "id": f"{name}_{next(_ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": _encode(arguments).decode()},
                }
            )
    return calls


def _generate(request: dict[str, Any], d: Directives) -> tuple[str, str]:
    """The reply text and Cohere finish reason, honouring stop sequences and ``max_tokens``."""
    text = reply_text(request, d)
    if d.fail == "finish_error":
        return text, "ERROR"
    for stop in request.get("stop_sequences") or ():
        at = text.find(stop)
        if stop and at >= 0:
            return text[:at], "STOP_SEQUENCE"
    limit = request.get("max_tokens")
    words = text.split(" ")
    if isinstance(limit, int) and len(words) > limit:
        return " ".join(words[:limit]), "MAX_TOKENS"
    return text, "COMPLETE"


def chat(request: dict[str, Any], d: Directives) -> bytes:
    calls = _tool_calls(request) if d.tool_call else []
    message: dict[str, Any] = {"role": "assistant"}
    if calls:
        message["tool_plan"] = "I will call the tools."
        message["tool_calls"] = calls
        finish, tokens = "TOOL_CALL", 5 * len(calls)
    else:
        text, finish = _generate(request, d)
        message["content"] = [{"type": "text", "text": text}]
        tokens = max(1, len(text.split()))
    return _encode(
        {
            "id": str(uuid.uuid4()),
            "message": message,
            "finish_reason": finish,
            "usage": _usage(request, tokens),
        }
    )


def _event(payload: dict[str, Any]) -> bytes:
    return b"event: " + payload["type"].encode() + b"\ndata: " + _encode(payload) + b"\n\n"


def _message(**fields: Any) -> dict[str, Any]:
    return {"message": fields}


def chat_stream(request: dict[str, Any], d: Directives) -> list[bytes]:
    start = _message(role="assistant", content=[], tool_plan="", tool_calls=[], citations=[])
    frames = [_event({"id": str(uuid.uuid4()), "type": "message-start", "delta": start})]
    calls = _tool_calls(request) if d.tool_call else []
    end: dict[str, Any]
    if calls:
        frames.append(
            _event({"type": "tool-plan-delta", "delta": _message(tool_plan="I will call the tools.")})
        )
        for i, call in enumerate(calls):
            opening = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            frames.append(
                _event({"type": "tool-call-start", "index": i, "delta": _message(tool_calls=opening)})
            )
            for piece in split_chunks(call["function"]["arguments"], max(1, d.chunks)):
                if piece:
                    delta = _message(tool_calls={"function": {"arguments": piece}})
                    frames.append(_event({"type": "tool-call-delta", "index": i, "delta": delta}))
            frames.append(_event({"type": "tool-call-end", "index": i}))
        end = {"finish_reason": "TOOL_CALL", "usage": _usage(request, 5 * len(calls))}
    else:
        text, finish = _generate(request, d)
        opening = _message(content={"type": "text", "text": ""})
        frames.append(_event({"type": "content-start", "index": 0, "delta": opening}))
        for piece in split_chunks(text, d.chunks):
            delta = _message(content={"text": piece})
            frames.append(_event({"type": "content-delta", "index": 0, "delta": delta}))
        frames.append(_event({"type": "content-end", "index": 0}))
        end = {"finish_reason": finish, "usage": _usage(request, max(1, len(text.split())))}
        if finish == "ERROR":
            end["error"] = "mock generation failed"
    frames.append(_event({"type": "message-end", "delta": end}))
    return frames


def embed(request: dict[str, Any]) -> bytes:
    texts = request.get("texts") or []
    dims = int(request.get("output_dimension") or 8)
    return _encode(
        {
            "id": str(uuid.uuid4()),
            "embeddings": {"float": [embedding_vector(str(t), dims) for t in texts]},
            "texts": texts,
            "meta": {
                "api_version": {"version": "2"},
                "billed_units": {"input_tokens": max(1, sum(len(str(t).split()) for t in texts))},
            },
            "response_type": "embeddings_by_type",
        }
    )


def _refusal(request: dict[str, Any], endpoint: str) -> str | None:
    if not request.get("model"):
        return "model is required"
    if endpoint == "rerank":
        return rerank_invalid(request, strings_only=True)  # v2 ranks strings only
    if endpoint == "embed":
        if not request.get("input_type"):
            return "input_type is required"
        if not request.get("embedding_types"):
            return "embedding_types is required"
    elif not isinstance(request.get("messages"), list):
        return "messages is required"
    return None


class CohereFormat:
    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        refusal = _refusal(request, endpoint)
        if refusal:
            return MockPlan(status=400, body=error(400, refusal), directives=d)
        if endpoint == "embed":
            return MockPlan(status=200, body=embed(request), directives=d)
        if endpoint == "rerank":
            # v2 answers no documents (the cohere SDK's V2RerankResponse): only the ranking.
            ranked = rerank_answer({k: v for k, v in request.items() if k != "return_documents"})
            return MockPlan(status=200, body=_encode(ranked), directives=d)
        if request.get("stream"):
            return MockPlan(
                status=200, frames=chat_stream(request, d), directives=d, content_type="text/event-stream"
            )
        return MockPlan(status=200, body=chat(request, d), directives=d)

    def error(self, status: int, message: str) -> bytes:
        return error(status, message)


COHERE = CohereFormat()


def add_routes(app: web.Application, server: MockServer) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return web.Response(
                status=401, body=error(401, "no api key supplied"), content_type="application/json"
            )
        plan = server.engine.plan(request.match_info["op"], body, COHERE)
        return await play(request, plan)

    app.router.add_post("/v2/{op:chat|embed|rerank}", handle)
