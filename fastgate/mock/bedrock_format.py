"""The mock in AWS Bedrock Runtime's wire format: Converse, ConverseStream, InvokeModel embeddings.

Answers as the Bedrock Runtime API reference shows them: Converse JSON, ConverseStream as real
binary event-stream frames (``application/vnd.amazon.eventstream``, CRCs computed), Titan and
Cohere embedding bodies, and errors as ``{"message"}`` with ``x-amzn-ErrorType``. Every request
must carry a valid SigV4 signature by the shared test credentials below (or the test API key
as a bearer token); a wrong one gets AWS's 403 ``InvalidSignatureException``. The Converse body
is checked the way Bedrock checks it (alternating roles, no blank text, toolConfig present when
tool blocks are), so a mapping bug is a 400 here as it would be there.

Scripting, as for every mock format: ``[mock k=v]`` in the message text. Bedrock extras:
``fail=exception:<name>`` sends that exception event (``throttlingException``,
``modelStreamErrorException``, ...) halfway through a stream; ``inferenceConfig.maxTokens`` and
``stopSequences`` cut the reply (``max_tokens`` / ``stop_sequence``); a ``cachePoint`` makes the
prefix before it a cache write the first time and a cache read afterwards. Claude's extended
thinking (``additionalModelRequestFields.thinking``) answers with a signed ``reasoningContent``
block first, and, as Claude on Bedrock does, then wants the last assistant turn that used a tool
to begin with its thinking.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import itertools
import struct
import uuid
import zlib
from typing import Any

import msgspec
from aiohttp import web

from fastgate.mock.directives import Directives, last_user_text
from fastgate.mock.engine import MockPlan
from fastgate.mock.openai_format import embedding_vector, reply_text, split_chunks
from fastgate.mock.playback import play
from fastgate.mock.provider_images import Refusal, bedrock_sdxl, bedrock_stability, titan
from fastgate.mock.tool_arguments import arguments_for
from fastgate.providers.aws_sigv4 import ALGORITHM, canonical_request, compute_signature

#: The shared test credentials the mock accepts (never real ones).
MOCK_AWS_ACCESS_KEY_ID = "AKIAMOCKFASTGATE0001"
MOCK_AWS_SECRET_ACCESS_KEY = "mock/FastgateSecretKey/0123456789abcdefEXAMPLE"
MOCK_BEDROCK_API_KEY = "ABSKmockfastgatebedrockapikey"

EVENTSTREAM = "application/vnd.amazon.eventstream"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any])
_ids = itertools.count(1)
# Exception shapes of service-2.json by HTTP status (the error type travels in x-amzn-ErrorType).
_ERROR_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_BLOCK_KEYS = frozenset(
    {"text", "image", "document", "toolUse", "toolResult", "cachePoint", "video", "reasoningContent"}
)
_IMAGE_FORMATS = frozenset({"png", "jpeg", "gif", "webp"})
_TITAN_DIMENSIONS = frozenset({256, 512, 1024})

# ---- event-stream encoding (header value types as in the AWS event-stream spec) ----------------


def _header(name: str, value: Any) -> bytes:
    """One header; ``(type code, value)`` picks a type explicitly (byte, short, long, timestamp)."""
    raw_name = name.encode()
    out = bytes([len(raw_name)]) + raw_name
    kind, val = value if isinstance(value, tuple) else (None, value)
    if kind is None:
        if isinstance(val, bool):
            kind = 0 if val else 1
        elif isinstance(val, int):
            kind = 4
        elif isinstance(val, bytes):
            kind = 6
        elif isinstance(val, str):
            kind = 7
        elif isinstance(val, datetime.datetime):
            kind = 8
        elif isinstance(val, uuid.UUID):
            kind = 9
        else:
            raise TypeError(f"no event-stream header type for {type(val).__name__}")
    out += bytes([kind])
    if kind in (0, 1):
        return out
    if kind == 2:
        return out + struct.pack(">b", val)
    if kind == 3:
        return out + struct.pack(">h", val)
    if kind == 4:
        return out + struct.pack(">i", val)
    if kind == 5:
        return out + struct.pack(">q", val)
    if kind in (6, 7):
        data = val.encode() if isinstance(val, str) else val
        return out + struct.pack(">H", len(data)) + data
    if kind == 8:
        millis = int(val.timestamp() * 1000) if isinstance(val, datetime.datetime) else int(val)
        return out + struct.pack(">q", millis)
    return out + (val.bytes if isinstance(val, uuid.UUID) else bytes(val))


def encode_message(headers: dict[str, Any], payload: bytes) -> bytes:
    """One event-stream message: prelude, prelude CRC, headers, payload, message CRC."""
    raw_headers = b"".join(_header(k, v) for k, v in headers.items())
    prelude = struct.pack(">II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event(event_type: str, body: dict[str, Any]) -> bytes:
    """A ConverseStream event; Bedrock pads payloads with a ``p`` field of varying length."""
    padded = {**body, "p": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"[: 4 + next(_ids) % 30]}
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_message(headers, _encode(padded))


def exception(name: str, message: str) -> bytes:
    headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, _encode({"message": message}))


# ---- SigV4 check ------------------------------------------------------------------------------


def _auth_failure(request: web.Request, body: bytes) -> tuple[str, str] | None:
    """(error type, message) when the request is not signed by the test credentials."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        if auth[7:] == MOCK_BEDROCK_API_KEY:
            return None
        return "UnrecognizedClientException", "Invalid API Key format: Must start with pre-defined prefix"
    if not auth.startswith(ALGORITHM + " "):
        return "MissingAuthenticationTokenException", "Missing Authentication Token"
    fields = dict(part.strip().partition("=")[::2] for part in auth[len(ALGORITHM) + 1 :].split(","))
    access_key, _, scope = fields.get("Credential", "").partition("/")
    date, region, service, _ = [*scope.split("/"), "", "", "", ""][:4]
    if access_key != MOCK_AWS_ACCESS_KEY_ID:
        return "UnrecognizedClientException", "The security token included in the request is invalid."
    names = fields.get("SignedHeaders", "").split(";")
    timestamp = request.headers.get("X-Amz-Date", "")
    if "host" not in names or "x-amz-date" not in names or not timestamp.startswith(date):
        return "IncompleteSignatureException", "host and x-amz-date must be signed"
    if "X-Amz-Security-Token" in request.headers and "x-amz-security-token" not in names:
        return "IncompleteSignatureException", "x-amz-security-token must be signed"
    headers = {name: request.headers.get(name, "") for name in names}
    path, _, query = request.raw_path.partition("?")
    canonical, _ = canonical_request(request.method, path, query, headers, hashlib.sha256(body).hexdigest())
    expected = compute_signature(MOCK_AWS_SECRET_ACCESS_KEY, timestamp, region, service, canonical)
    if service != "bedrock" or not hmac.compare_digest(expected, fields.get("Signature", "")):
        return (
            "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your "
            "AWS Secret Access Key and signing method. Consult the service documentation for details.",
        )
    return None


# ---- Converse ---------------------------------------------------------------------------------


def _validation_error(request: dict[str, Any]) -> str | None:
    """The first rule of Converse's request validation this body breaks, if any."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return "A conversation must start with a user message."
    uses_tools = False
    previous = None
    for i, message in enumerate(messages):
        role = message.get("role")
        if i == 0 and role != "user":
            return "A conversation must start with a user message."
        if role == previous:
            return "A conversation must alternate between user and assistant roles."
        previous = role
        for block in message.get("content") or ():
            keys = set(block) & _BLOCK_KEYS
            if len(keys) != 1 or len(block) != 1:
                return (
                    f"messages.{i}.content: a content block must have exactly one member, got {sorted(block)}"
                )
            if "text" in block and not str(block["text"]).strip():
                return (
                    "The text field in the ContentBlock object is blank. "
                    "Add text to the text field, and try again."
                )
            if "image" in block and block["image"].get("format") not in _IMAGE_FORMATS:
                return f"messages.{i}: image format must be one of png, jpeg, gif, webp"
            uses_tools = uses_tools or "toolUse" in block or "toolResult" in block
    if uses_tools and not request.get("toolConfig"):
        return "The toolConfig field must be defined when using toolUse and toolResult content blocks."
    # Claude's rule (extended thinking with tool use): the last tool-using turn's thinking comes
    # back first in it.
    last = ([m.get("content") or [] for m in messages if m.get("role") == "assistant"] or [[]])[-1]
    if _thinks(request) and any("toolUse" in b for b in last) and "reasoningContent" not in last[0]:
        return (
            "Expected `thinking` or `redacted_thinking`, but found `tool_use`. When `thinking` is "
            "enabled, a final `assistant` message must start with a thinking block."
        )
    return None


def _thinks(request: dict[str, Any]) -> bool:
    """Whether Claude's extended thinking is on (``additionalModelRequestFields.thinking``)."""
    thinking = (request.get("additionalModelRequestFields") or {}).get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") == "enabled"


def _reasoning() -> dict[str, Any]:
    """A ReasoningContentBlock's text and signature."""
    return {"text": "Mock thinking.", "signature": f"sig-mock{next(_ids)}"}


def _texts(request: dict[str, Any]) -> list[str]:
    texts = [str(b.get("text", "")) for b in request.get("system") or () if "text" in b]
    for message in request.get("messages") or ():
        texts.extend(str(b["text"]) for b in message.get("content") or () if "text" in b)
    return texts


def _tokens(texts: list[str]) -> int:
    return sum(len(t.split()) for t in texts)


class BedrockFormat:
    """The mock's answers in Bedrock Runtime's format (``endpoint`` is ``model/{id}/{operation}``)."""

    def __init__(self) -> None:
        #: Prompt prefixes already written to the (pretend) prompt cache.
        self._cached: set[str] = set()

    def _reply(self, request: dict[str, Any], d: Directives) -> tuple[str, str]:
        """(text, stopReason): ``stopSequences`` and ``maxTokens`` (one token per word) cut it."""
        text = reply_text(request, d)
        config = request.get("inferenceConfig") or {}
        for stop in config.get("stopSequences") or ():
            if stop and stop in text:
                return text[: text.index(stop)], "stop_sequence"
        max_tokens = config.get("maxTokens")
        words = text.split(" ")
        if isinstance(max_tokens, int) and len(words) > max_tokens:
            return " ".join(words[:max_tokens]), "max_tokens"
        return text, "end_turn"

    def _tool_use(self, request: dict[str, Any]) -> dict[str, Any] | None:
        config = request.get("toolConfig") or {}
        specs = [t["toolSpec"] for t in config.get("tools") or () if "toolSpec" in t]
        forced = (config.get("toolChoice") or {}).get("tool")
        if forced:
            specs = [s for s in specs if s.get("name") == forced["name"]] or [{"name": forced["name"]}]
        if not specs:
            return None
        # Converse's ToolSpecification: the schema is ``inputSchema.json``.
        schema = (specs[0].get("inputSchema") or {}).get("json")
        return {
            "toolUseId": f"tooluse_mock{next(_ids)}",
            "name": specs[0]["name"],
            "input": arguments_for(schema, last_user_text(request)),
        }

    def _usage(self, request: dict[str, Any], output: str) -> dict[str, int]:
        prefix: list[str] = []
        cached = ""
        for block in request.get("system") or ():
            if "cachePoint" in block:
                cached = "\n".join(prefix)
            prefix.append(str(block.get("text", "")))
        for message in request.get("messages") or ():
            for block in message.get("content") or ():
                if "cachePoint" in block:
                    cached = "\n".join(prefix)
                prefix.append(str(block.get("text", "")))
        total_in = max(1, _tokens(_texts(request)))
        out = max(1, len(output.split()))
        usage = {"inputTokens": total_in, "outputTokens": out, "totalTokens": total_in + out}
        if cached:
            n = _tokens([cached])
            key = "cacheReadInputTokens" if cached in self._cached else "cacheWriteInputTokens"
            self._cached.add(cached)
            usage.update(inputTokens=total_in - n, **{key: n})
        return usage

    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        _, _, rest = endpoint.partition("/")
        model, _, operation = rest.rpartition("/")
        if operation == "invoke":
            return self._invoke(model, request, d)
        problem = _validation_error(request)
        if problem:
            return MockPlan(
                status=400,
                body=self.error(400, problem),
                headers={"x-amzn-ErrorType": _error_type(400)},
                directives=d,
            )
        tool = self._tool_use(request) if d.tool_call else None
        text, stop_reason = self._reply(request, d)
        if tool:
            stop_reason = "tool_use"
        reasoning = _reasoning() if _thinks(request) else None
        if operation == "converse-stream":
            return MockPlan(
                status=200,
                content_type=EVENTSTREAM,
                frames=self._frames(request, d, text, tool, stop_reason, reasoning),
                directives=d,
            )
        content: list[dict[str, Any]] = [{"toolUse": tool}] if tool else [{"text": text}]
        if reasoning:
            content.insert(0, {"reasoningContent": {"reasoningText": reasoning}})
        usage = self._usage(request, _encode(tool["input"]).decode() if tool else text)
        body = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop_reason,
            "usage": usage,
            "metrics": {"latencyMs": 42},
        }
        return MockPlan(status=200, body=_encode(body), directives=d)

    def _frames(
        self,
        request: dict[str, Any],
        d: Directives,
        text: str,
        tool: dict[str, Any] | None,
        stop_reason: str,
        reasoning: dict[str, Any] | None,
    ) -> list[bytes]:
        frames = [event("messageStart", {"role": "assistant"})]
        index = 0
        if reasoning:
            # ReasoningContentBlockDelta: the text, then the signature, each a delta of its own.
            frames.extend(
                event(
                    "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {key: value}}}
                )
                for key, value in reasoning.items()
            )
            frames.append(event("contentBlockStop", {"contentBlockIndex": 0}))
            index = 1
        if tool:
            args = _encode(tool["input"]).decode()
            frames.append(
                event(
                    "contentBlockStart",
                    {
                        "contentBlockIndex": index,
                        "start": {"toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"]}},
                    },
                )
            )
            pieces = [args[i : i + 7] for i in range(0, len(args), 7)] if d.chunks > 1 else [args]
            frames.extend(
                event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": p}}})
                for p in pieces
            )
        else:
            frames.extend(
                event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}})
                for piece in split_chunks(text, d.chunks)
            )
        frames.append(event("contentBlockStop", {"contentBlockIndex": index}))
        if d.fail and d.fail.startswith("exception:"):
            name = d.fail.partition(":")[2]
            cut = max(1, len(frames) // 2)
            return [*frames[:cut], exception(name, f"mock {name} mid-stream")]
        frames.append(event("messageStop", {"stopReason": stop_reason}))
        usage = self._usage(request, _encode(tool["input"]).decode() if tool else text)
        frames.append(event("metadata", {"usage": usage, "metrics": {"latencyMs": 42}}))
        return frames

    def _invoke(self, model: str, request: dict[str, Any], d: Directives) -> MockPlan:
        base = model.split(".", 1)[1] if model.startswith(("us.", "eu.", "apac.", "global.")) else model
        if base.startswith("amazon.titan-embed-text"):
            text = request.get("inputText")
            dims = request.get("dimensions", 1024)
            if not isinstance(text, str) or not text or dims not in _TITAN_DIMENSIONS:
                return self._invalid(d, "Malformed input request, please reformat your input and try again.")
            body = {"embedding": embedding_vector(text, dims), "inputTextTokenCount": len(text.split())}
            return MockPlan(status=200, body=_encode(body), directives=d)
        if base.startswith("cohere.embed"):
            texts = request.get("texts")
            if not isinstance(texts, list) or not texts or request.get("input_type") is None:
                return self._invalid(d, "Malformed input request: texts and input_type are required")
            body = {
                "embeddings": [embedding_vector(t, 1024) for t in texts],
                "id": str(uuid.uuid4()),
                "response_type": "embeddings_floats",
                "texts": texts,
            }
            return MockPlan(status=200, body=_encode(body), directives=d)
        try:
            image = _image(base, request, d)
        except Refusal as exc:
            return self._invalid(d, str(exc))
        if image is not None:
            return MockPlan(status=200, body=_encode(image), directives=d)
        return self._invalid(d, f"The provided model identifier is invalid: {model}")

    def _invalid(self, d: Directives, message: str) -> MockPlan:
        return MockPlan(
            status=400,
            body=self.error(400, message),
            headers={"x-amzn-ErrorType": _error_type(400)},
            directives=d,
        )

    def error(self, status: int, message: str) -> bytes:
        return _encode({"message": message})


def _error_type(status: int) -> str:
    """``x-amzn-ErrorType`` as AWS writes it: the shape name, then the namespace."""
    name = _ERROR_TYPES.get(status, "InternalServerException")
    return f"{name}:http://internal.amazon.com/coral/com.amazon.bedrock/"


def _image(base: str, request: dict[str, Any], d: Directives) -> dict[str, Any] | None:
    """An InvokeModel image model's answer in its own body (None: not an image model)."""
    if base.startswith(("amazon.titan-image-generator", "amazon.nova-canvas")):
        return titan(request, d, nova=base.startswith("amazon.nova-canvas"))
    if base.startswith("stability.stable-diffusion-xl"):
        return bedrock_sdxl(request, d)
    if base.startswith("stability."):
        return bedrock_stability(request, d)
    return None


BEDROCK = BedrockFormat()


def add_routes(app: web.Application, server: Any) -> None:
    """``POST /model/{modelId}/{converse|converse-stream|invoke}`` on the mock app."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        failure = _auth_failure(request, body)
        if failure is not None:
            name, message = failure
            return web.Response(
                status=403,
                body=_encode({"message": message}),
                content_type="application/json",
                headers={
                    "x-amzn-ErrorType": f"{name}:http://internal.amazon.com/coral/com.amazon.coral.service/"
                },
            )
        operation = request.match_info["operation"]
        endpoint = f"model/{request.match_info['model']}/{operation}"
        plan = server.engine.plan(endpoint, body, BEDROCK, stream=operation == "converse-stream")
        if plan.status >= 400 and "x-amzn-ErrorType" not in plan.headers:
            plan.headers = {**plan.headers, "x-amzn-ErrorType": _error_type(plan.status)}
        plan.headers = {**plan.headers, "x-amzn-RequestId": str(uuid.uuid4())}
        return await play(request, plan)

    app.router.add_post("/model/{model}/{operation:converse|converse-stream|invoke}", handle)
