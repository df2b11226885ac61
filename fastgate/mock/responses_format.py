"""OpenAI Responses API answers of the mock: ``POST /v1/responses`` (JSON and SSE), and the stored
responses' ``GET`` / ``DELETE /v1/responses/{id}`` and ``GET .../input_items``.

Faithful to OpenAI's API reference (https://platform.openai.com/docs/api-reference/responses and
.../responses-streaming): the Response object, output items (``reasoning``, ``message`` with
``output_text``, ``function_call``, ``custom_tool_call``), ``status`` / ``incomplete_details``,
usage with details, the typed event stream with its ``sequence_number``, ``response.failed`` for
a failure mid-stream. Responses are kept (unless ``store`` is false) so ``previous_response_id``
and the stored-response routes work; it refuses what OpenAI refuses (no ``model``, a chat body,
an unknown previous id). Scripted by the same directives as every wire format (``[mock ...]`` in
the input, or ``mock``).
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import msgspec

from fastgate.mock.directives import Directives, last_user_text
from fastgate.mock.engine import MockEngine, MockPlan
from fastgate.mock.openai_format import error, prompt_tokens, reply_text, split_chunks

if TYPE_CHECKING:
    from aiohttp import web

    from fastgate.mock.playback import MockServer

_encode = msgspec.json.Encoder().encode
_ids = itertools.count(1)
#: Responses kept for previous_response_id and the GET / DELETE routes (oldest dropped first).
STORED_LIMIT = 1000
SSE = "text/event-stream"


def _id(prefix: str) -> str:
    return f"{prefix}_mock{next(_ids):08d}"


def _item_texts(items: list[Any]) -> list[str]:
    return [
        p.get("text", "")
        for item in items
        if isinstance(item, dict) and isinstance(item.get("content"), list)
        for p in item["content"]
        if isinstance(p, dict)
    ]


def _invalid(request: dict[str, Any]) -> tuple[str, str | None] | None:
    """Why OpenAI would refuse this body (message, param), or None."""
    if not isinstance(request.get("model"), str):
        return "Missing required parameter: 'model'.", "model"
    if "messages" in request:
        return "Unsupported parameter: 'messages'. In the Responses API, use 'input'.", "messages"
    items = request.get("input")
    if items is None:
        return "Missing required parameter: 'input'.", "input"
    for i, item in enumerate(items if isinstance(items, list) else ()):
        if not isinstance(item, dict):
            return f"Invalid type for 'input[{i}]': expected an object.", f"input[{i}]"
        if item.get("type", "message") == "message" and item.get("role") not in (
            "user",
            "assistant",
            "system",
            "developer",
        ):
            return f"Invalid value for 'input[{i}].role'.", f"input[{i}].role"
    return None


def _tools(request: dict[str, Any]) -> dict[str, str]:
    """The function and custom tools by name: their type."""
    return {
        t["name"]: t["type"]
        for t in request.get("tools") or ()
        if isinstance(t, dict) and t.get("type") in ("function", "custom") and isinstance(t.get("name"), str)
    }


def _call(name: str, kind: str, said: str) -> dict[str, Any]:
    """A call of a function (JSON arguments) or of a custom tool (free-form input)."""
    call: dict[str, Any] = {"id": _id("fc" if kind == "function" else "ctc"), "status": "completed"}
    if kind == "function":
        call.update(type="function_call", arguments=_encode({"query": said}).decode())
    else:
        call.update(type="custom_tool_call", input=said)
    return {**call, "call_id": _id("call"), "name": name}


class ResponsesFormat:
    """The mock's Responses API, keeping what it answered as OpenAI does (``store``)."""

    def __init__(self) -> None:
        self.stored: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.inputs: dict[str, list[Any]] = {}

    # ---- routes

    def plan(self, engine: MockEngine, method: str, path: str, body: bytes) -> MockPlan:
        """What the mock answers to ``method`` on ``/v1/<path>`` (``responses...``)."""
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["responses"]:
            return engine.plan("responses", body, self)
        d = Directives()
        if len(parts) in (2, 3) and parts[0] == "responses":
            stored = self.stored.get(parts[1])
            if stored is None:
                message = f"Response with id '{parts[1]}' not found."
                return MockPlan(status=404, body=error(404, message), directives=d)
            if len(parts) == 2 and method == "GET":
                return MockPlan(status=200, body=_encode(stored), directives=d)
            if len(parts) == 2 and method == "DELETE":
                del self.stored[parts[1]]
                body = _encode({"id": parts[1], "object": "response", "deleted": True})
                return MockPlan(status=200, body=body, directives=d)
            if parts[2] == "input_items" and method == "GET":
                data = self.inputs.get(parts[1], [])
                listing = {
                    "object": "list",
                    "data": data,
                    "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None,
                    "has_more": False,
                }
                return MockPlan(status=200, body=_encode(listing), directives=d)
        return MockPlan(status=404, body=error(404, f"mock has no route {method} /v1/{path}"), directives=d)

    # ---- WireFormat

    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        invalid = _invalid(request)
        if invalid is not None:
            return MockPlan(status=400, body=_error(400, *invalid), directives=d)
        previous = request.get("previous_response_id")
        if previous is not None and previous not in self.stored:
            body = _error(
                400,
                f"Previous response with id '{previous}' not found.",
                "previous_response_id",
                "previous_response_not_found",
            )
            return MockPlan(status=400, body=body, directives=d)
        response = self.response(request, d)
        if request.get("store") is not False:
            self._keep(response, request)
        if not request.get("stream"):
            return MockPlan(status=200, body=_encode(response), directives=d)
        frames = stream_frames(response, d)
        if d.fail == "error_mid_stream":
            # A failure after the 200: an ``error`` event, then ``response.failed``.
            frames = frames[: max(1, len(frames) // 2)]
            frames += failure_frames(response, len(frames))
            d = msgspec.structs.replace(d, fail=None)
        return MockPlan(status=200, frames=frames, content_type=SSE, directives=d)

    def error(self, status: int, message: str) -> bytes:
        return error(status, message)

    # ---- the answer

    def response(self, request: dict[str, Any], d: Directives) -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        reasoning = request.get("reasoning") or {}
        if reasoning.get("effort") not in (None, "none", "minimal"):
            summary = (
                [{"type": "summary_text", "text": "Mock reasoning."}] if reasoning.get("summary") else []
            )
            output.append({"id": _id("rs"), "type": "reasoning", "summary": summary})
        tools = _tools(request)
        choice = request.get("tool_choice")
        forced = choice.get("name") if isinstance(choice, dict) and choice.get("name") in tools else None
        status, incomplete = "completed", None
        if tools and choice != "none" and (d.tool_call or forced or choice == "required"):
            name = forced or next(iter(tools))
            output.append(_call(name, tools[name], last_user_text(request)))
        else:
            text = reply_text(request, d)
            limit = request.get("max_output_tokens")
            words = text.split(" ")
            if isinstance(limit, int) and len(words) > limit:
                text, status, incomplete = " ".join(words[:limit]), "incomplete", "max_output_tokens"
            if d.finish in ("length", "content_filter"):
                status = "incomplete"
                incomplete = "max_output_tokens" if d.finish == "length" else "content_filter"
            output.append(
                {
                    "id": _id("msg"),
                    "type": "message",
                    "status": status,
                    "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}],
                    "role": "assistant",
                }
            )
        said = [i.get("arguments") or i.get("text") or "" for i in output] + _item_texts(output)
        out_tokens = max(1, sum(len(t.split()) for t in said))
        in_tokens = prompt_tokens(request)
        text_config = request.get("text") or {}
        now = int(time.time())
        return {
            "id": _id("resp"),
            "object": "response",
            "created_at": now,
            "status": status,
            "background": False,
            "completed_at": now if status == "completed" else None,
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": request.get("instructions"),
            "max_output_tokens": request.get("max_output_tokens"),
            "max_tool_calls": request.get("max_tool_calls"),
            "model": request["model"],
            "output": output,
            "parallel_tool_calls": request.get("parallel_tool_calls", True),
            "previous_response_id": request.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "service_tier": "default",
            "store": request.get("store", True),
            "temperature": request.get("temperature", 1.0),
            "text": {
                "format": text_config.get("format") or {"type": "text"},
                "verbosity": text_config.get("verbosity") or "medium",
            },
            "tool_choice": choice if choice is not None else "auto",
            "tools": request.get("tools") or [],
            "top_logprobs": request.get("top_logprobs", 0),
            "top_p": request.get("top_p", 1.0),
            "truncation": request.get("truncation") or "disabled",
            "usage": {
                "input_tokens": in_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": out_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": in_tokens + out_tokens,
            },
            "user": request.get("user"),
            "metadata": request.get("metadata") or {},
        }

    def _keep(self, response: dict[str, Any], request: dict[str, Any]) -> None:
        items = request["input"]
        if isinstance(items, str):
            items = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": items}]}]
        self.stored[response["id"]] = response
        self.inputs[response["id"]] = [{"id": _id("msg"), **item} for item in items]
        while len(self.stored) > STORED_LIMIT:
            oldest, _ = self.stored.popitem(last=False)
            self.inputs.pop(oldest, None)


def _error(status: int, message: str, param: str | None, code: str | None = None) -> bytes:
    return _encode(
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    )


def _event(kind: str, sequence: int, **fields: Any) -> bytes:
    data = _encode({"type": kind, "sequence_number": sequence, **fields})
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def stream_frames(response: dict[str, Any], d: Directives) -> list[bytes]:
    """The Response as OpenAI streams it, one event per frame."""
    seq = itertools.count()
    opening = {**response, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
    opening["incomplete_details"] = None
    frames = [
        _event("response.created", next(seq), response=opening),
        _event("response.in_progress", next(seq), response=opening),
    ]
    for index, item in enumerate(response["output"]):
        kind = item["type"]
        added = dict(item)
        if "status" in item:
            added["status"] = "in_progress"
        if kind == "message":
            added["content"] = []
        elif kind == "function_call":
            added["arguments"] = ""
        elif kind == "custom_tool_call":
            added["input"] = ""
        elif kind == "reasoning":
            added["summary"] = []
        frames.append(_event("response.output_item.added", next(seq), output_index=index, item=added))
        ids = {"item_id": item["id"], "output_index": index}
        if kind == "message":
            part = item["content"][0]
            frames.append(
                _event(
                    "response.content_part.added",
                    next(seq),
                    **ids,
                    content_index=0,
                    part={**part, "text": ""},
                )
            )
            frames.extend(
                _event("response.output_text.delta", next(seq), **ids, content_index=0, delta=p, logprobs=[])
                for p in split_chunks(part["text"], d.chunks)
                if p
            )
            frames.append(
                _event(
                    "response.output_text.done",
                    next(seq),
                    **ids,
                    content_index=0,
                    text=part["text"],
                    logprobs=[],
                )
            )
            frames.append(_event("response.content_part.done", next(seq), **ids, content_index=0, part=part))
        elif kind == "function_call":
            args = item["arguments"]
            size = -(-len(args) // max(1, d.chunks))
            frames.extend(
                _event("response.function_call_arguments.delta", next(seq), **ids, delta=args[i : i + size])
                for i in range(0, len(args), size)
            )
            frames.append(_event("response.function_call_arguments.done", next(seq), **ids, arguments=args))
        elif kind == "custom_tool_call":
            frames.append(
                _event("response.custom_tool_call_input.delta", next(seq), **ids, delta=item["input"])
            )
            frames.append(
                _event("response.custom_tool_call_input.done", next(seq), **ids, input=item["input"])
            )
        elif kind == "reasoning":
            for k, summary in enumerate(item["summary"]):
                text = summary["text"]
                frames += [
                    _event(f"response.reasoning_summary_{name}", next(seq), **ids, summary_index=k, **fields)
                    for name, fields in (
                        ("part.added", {"part": {**summary, "text": ""}}),
                        ("text.delta", {"delta": text}),
                        ("text.done", {"text": text}),
                        ("part.done", {"part": summary}),
                    )
                ]
        frames.append(_event("response.output_item.done", next(seq), output_index=index, item=item))
    end = "response.completed" if response["status"] == "completed" else "response.incomplete"
    frames.append(_event(end, next(seq), response=response))
    return frames


def failure_frames(response: dict[str, Any], sequence: int) -> list[bytes]:
    message = "The server had an error while processing your request."
    failed = {
        **response,
        "status": "failed",
        "output": [],
        "usage": None,
        "completed_at": None,
        "error": {"code": "server_error", "message": message},
    }
    return [
        _event("error", sequence, code="server_error", message=message, param=None),
        _event("response.failed", sequence + 1, response=failed),
    ]


def add_routes(app: web.Application, server: MockServer) -> None:
    # Imported here: the gateway's in-process mock provider plans with ResponsesFormat and never
    # serves HTTP, so a served worker does not load aiohttp (13 MB of RSS) for it.
    from fastgate.mock.playback import play

    fmt = ResponsesFormat()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        return await play(request, fmt.plan(server.engine, request.method, request.match_info["tail"], body))

    app.router.add_route("*", "/v1/{tail:responses(/[^/]+){0,2}}", handle)
