"""Anthropic-format answers of the mock: ``POST /v1/messages`` (JSON and SSE),
``POST /v1/messages/count_tokens``, ``GET /v1/models``.

Faithful to Anthropic's API reference (https://docs.anthropic.com/en/api/messages, .../streaming,
.../messages-count-tokens, .../errors): the Message object, the event-typed stream
(``message_start``, ``content_block_*``, ``ping``, ``message_delta``, ``message_stop``,
``error``), ``tool_use`` blocks, usage with prompt caching, and error bodies. It also refuses what
Anthropic refuses (no key, no ``anthropic-version``, no ``max_tokens``, a role other than user,
assistant or system, temperature above 1, empty text), so a test that passes here sent a request
Anthropic would take; and it takes what current clients send (Claude Code, the ``anthropic``
SDK): ``system`` turns in ``messages`` (SystemMessageParam), ``thinking`` (enabled, adaptive or
disabled), ``output_config``, ``context_management``, top-level and per-block ``cache_control``,
server tools, ``anthropic-beta`` headers, a bearer token in place of ``x-api-key``.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import msgspec
from aiohttp import web

from fastgate.mock.directives import Directives, last_user_text
from fastgate.mock.engine import MockPlan
from fastgate.mock.openai_format import reply_text, split_chunks
from fastgate.mock.playback import MockServer, play
from fastgate.mock.tool_arguments import arguments_for
from fastgate.schema.messages import error_type

_encode = msgspec.json.Encoder().encode
_ids = itertools.count(1)
MOCK_MODELS = ("claude-mock-1", "claude-mock-2")
#: Roles of MessageParam: user, assistant, and system turns in the conversation.
ROLES = ("user", "assistant", "system")
#: Thinking types that answer with a thinking block (ThinkingConfigParam).
THINKING = ("enabled", "adaptive")


def error(status: int, message: str) -> bytes:
    return _encode(
        {
            "type": "error",
            "error": {"type": error_type(status), "message": message},
            "request_id": f"req_mock{next(_ids)}",
        }
    )


def _words(text: str) -> int:
    return len(text.split())


def _block_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for block in content if isinstance(content, list) else ():
        if isinstance(block, dict):
            if isinstance(block.get("text"), str):
                out.append(block["text"])
            out.extend(_block_texts(block.get("content")))
    return out


def _blocks(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Every cacheable block in Anthropic's cache order: tools, system, messages. A top-level
    ``cache_control`` marks the last of them (automatic caching)."""
    out: list[dict[str, Any]] = [t for t in request.get("tools") or () if isinstance(t, dict)]
    system = request.get("system")
    if isinstance(system, str):
        out.append({"type": "text", "text": system})
    elif isinstance(system, list):
        out.extend(b for b in system if isinstance(b, dict))
    for message in request.get("messages") or ():
        content = message.get("content")
        if isinstance(content, str):
            out.append({"type": "text", "text": content})
        elif isinstance(content, list):
            out.extend(b for b in content if isinstance(b, dict))
    if out and isinstance(request.get("cache_control"), dict):
        out[-1] = {**out[-1], "cache_control": request["cache_control"]}
    return out


def _tokens(blocks: list[dict[str, Any]]) -> list[int]:
    """The mock's token count of each block: its words, at least one."""
    return [sum(_words(t) for t in _block_texts([b])) or 1 for b in blocks]


def _system_invalid(content: Any, where: str) -> str | None:
    """SystemMessageParam: a string or text blocks."""
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or any(
        not isinstance(b, dict) or b.get("type") != "text" for b in content
    ):
        return f"{where}.content: a system turn holds a string or text blocks"
    return None


def _invalid(request: dict[str, Any]) -> str | None:
    """Why Anthropic would refuse this body, or None."""
    if not isinstance(request.get("max_tokens"), int):
        return "max_tokens: Field required"
    if not isinstance(request.get("model"), str):
        return "model: Field required"
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            return f"messages.{i}.role: Input should be 'user', 'assistant' or 'system'"
        content = message.get("content")
        if message["role"] == "system" and (reason := _system_invalid(content, f"messages.{i}")):
            return reason
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "text" and not block.get("text"):
                    return f"messages.{i}: text content blocks must be non-empty"
    temperature = request.get("temperature")
    if isinstance(temperature, int | float) and not 0 <= temperature <= 1:
        return "temperature: Input should be less than or equal to 1"
    if "tool_choice" in request and not request.get("tools"):
        return "tool_choice may only be specified while providing tools"
    return None


class AnthropicFormat:
    """The mock's answers in Anthropic's wire format; remembers cached prompt prefixes, so a
    repeated ``cache_control`` prefix is read from the cache the second time, as Anthropic's is."""

    def __init__(self) -> None:
        self.cache: set[str] = set()

    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        if endpoint == "models":
            return MockPlan(status=200, body=models(), directives=d)
        if endpoint == "messages/count_tokens":
            return self.count_tokens(request, d)
        if endpoint != "messages":
            return MockPlan(status=404, body=error(404, f"mock has no endpoint {endpoint}"), directives=d)
        reason = _invalid(request)
        if reason is not None:
            return MockPlan(status=400, body=error(400, reason), directives=d)
        message = self.message(request, d)
        if not request.get("stream"):
            return MockPlan(status=200, body=_encode(message), directives=d)
        frames = stream_frames(message, d)
        if d.fail == "error_mid_stream":
            # Anthropic reports a failure after the 200 as an ``error`` event, then ends the stream.
            frames = frames[: max(1, len(frames) // 2)]
            frames.append(_event("error", {"type": "error", "error": ERROR_EVENT}))
            d = msgspec.structs.replace(d, fail=None)
        return MockPlan(status=200, frames=frames, content_type="text/event-stream", directives=d)

    def error(self, status: int, message: str) -> bytes:
        return error(status, message)

    def count_tokens(self, request: dict[str, Any], d: Directives) -> MockPlan:
        """MessageTokensCount: the input the same request would be charged, cache or not."""
        if not isinstance(request.get("model"), str) or not isinstance(request.get("messages"), list):
            return MockPlan(status=400, body=error(400, "model and messages: Field required"), directives=d)
        body = _encode({"input_tokens": sum(_tokens(_blocks(request)))})
        return MockPlan(status=200, body=body, directives=d)

    def _usage(self, request: dict[str, Any]) -> dict[str, int]:
        blocks = _blocks(request)
        tokens = _tokens(blocks)
        marks = [i for i, b in enumerate(blocks) if b.get("cache_control")]
        cached = sum(tokens[: marks[-1] + 1]) if marks else 0
        created = read = 0
        if cached:
            key = hashlib.sha256(_encode(blocks[: marks[-1] + 1])).hexdigest()
            if key in self.cache:
                read = cached
            else:
                self.cache.add(key)
                created = cached
        return {
            "input_tokens": max(1, sum(tokens) - cached),
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        }

    def message(self, request: dict[str, Any], d: Directives) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        thinking = request.get("thinking")
        if isinstance(thinking, dict) and thinking.get("type") in THINKING:
            content.append(
                {"type": "thinking", "thinking": "Mock thinking.", "signature": f"sig-mock{next(_ids)}"}
            )
        text = reply_text(request, d)
        stop_reason, stop_sequence = "end_turn", None
        for seq in request.get("stop_sequences") or ():
            if seq in text:
                text, stop_reason, stop_sequence = text[: text.index(seq)], "stop_sequence", seq
                break
        words = text.split(" ")
        if len(words) > request["max_tokens"]:
            text, stop_reason = " ".join(words[: request["max_tokens"]]), "max_tokens"
        tool = _tool_name(request, d)
        if tool is not None:
            text, stop_reason = f"Calling {tool}.", "tool_use"
        if text:
            content.append({"type": "text", "text": text})
        if tool is not None:
            content.append(
                {
                    "type": "tool_use",
                    "id": f"toolu_mock{next(_ids)}",
                    "name": tool,
                    "input": arguments_for(_tool_schema(request, tool), last_user_text(request)),
                }
            )
        usage = self._usage(request)
        usage["output_tokens"] = max(1, sum(_words(t) for t in _block_texts(content)))
        return {
            "id": f"msg_mock{next(_ids)}",
            "type": "message",
            "role": "assistant",
            "model": request["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }


ERROR_EVENT = {"type": "overloaded_error", "message": "Overloaded"}


def _tool_name(request: dict[str, Any], d: Directives) -> str | None:
    """The client tool the mock calls: when told to, or when ``tool_choice`` forces one (any /
    tool). Server tools (a versioned ``type``: web search, bash, ...) are Anthropic's to run."""
    tools = [
        t["name"]
        for t in request.get("tools") or ()
        if isinstance(t, dict) and "name" in t and t.get("type") in (None, "custom")
    ]
    choice = request.get("tool_choice") or {}
    if not tools or choice.get("type") == "none":
        return None
    if choice.get("type") == "tool":
        return str(choice.get("name"))
    return tools[0] if d.tool_call or choice.get("type") == "any" else None


def _tool_schema(request: dict[str, Any], name: str) -> Any:
    """The named tool's ``input_schema`` (https://docs.anthropic.com/en/api/messages, ``tools``)."""
    tools = [t for t in request.get("tools") or () if isinstance(t, dict) and t.get("name") == name]
    return tools[0].get("input_schema") if tools else None


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"


def stream_frames(message: dict[str, Any], d: Directives) -> list[bytes]:
    """The Message as Anthropic streams it, one event per frame."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 1}
    frames = [_event("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        if kind == "text":
            opening: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": p} for p in split_chunks(block["text"], d.chunks) if p]
        elif kind == "thinking":
            opening = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        else:
            opening = {**block, "input": {}}
            args = _encode(block["input"]).decode()
            # The first input_json_delta is often empty, as Anthropic's own streams show.
            deltas = [{"type": "input_json_delta", "partial_json": ""}]
            # JSON fragments split anywhere, even inside a string, as Anthropic's do.
            size = -(-len(args) // max(1, d.chunks))
            deltas += [
                {"type": "input_json_delta", "partial_json": args[i : i + size]}
                for i in range(0, len(args), size)
            ]
        frames.append(
            _event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": opening},
            )
        )
        if index == 0:
            frames.append(_event("ping", {"type": "ping"}))
        frames.extend(
            _event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            for delta in deltas
        )
        frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": index}))
    frames.append(
        _event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
                "usage": {"output_tokens": usage["output_tokens"]},
            },
        )
    )
    frames.append(_event("message_stop", {"type": "message_stop"}))
    return frames


def models() -> bytes:
    data = [
        {
            "type": "model",
            "id": m,
            "display_name": m.replace("-", " ").title(),
            "created_at": "2025-02-19T00:00:00Z",
        }
        for m in MOCK_MODELS
    ]
    return _encode({"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]})


def _refused(request: web.Request) -> MockPlan | None:
    """Anthropic's header checks: the key in ``x-api-key`` (or a bearer token, as Claude Code
    sends with ANTHROPIC_AUTH_TOKEN), a version in ``anthropic-version``."""
    bearer = request.headers.get("authorization", "").startswith("Bearer ")
    if not request.headers.get("x-api-key") and not bearer:
        return MockPlan(status=401, body=error(401, "x-api-key header is required"), directives=Directives())
    if not request.headers.get("anthropic-version"):
        return MockPlan(
            status=400, body=error(400, "anthropic-version: header is required"), directives=Directives()
        )
    return None


def add_routes(app: web.Application, server: MockServer) -> None:
    fmt = AnthropicFormat()

    async def messages(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        plan = _refused(request) or server.engine.plan("messages", body, fmt)
        return await play(request, plan)

    async def count_tokens(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        plan = _refused(request) or server.engine.plan("messages/count_tokens", body, fmt)
        return await play(request, plan)

    async def list_models(request: web.Request) -> web.StreamResponse:
        # OpenAI's /v1/models shares the path: Anthropic's callers always name an API version.
        if "anthropic-version" not in request.headers:
            return await server.openai(request)
        server.record(request, b"")
        plan = _refused(request) or server.engine.plan("models", b"", fmt)
        return await play(request, plan)

    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_get("/v1/{tail:models}", list_models)
