"""The mock in Google's Gemini format: Gemini API (v1beta) and Vertex AI (v1) paths, and a token endpoint.

Answers follow the REST reference (https://ai.google.dev/api/generate-content): candidates with
``content.parts``, ``finishReason``, ``usageMetadata``, ``promptFeedback`` for a blocked prompt
(directive ``block``), ``functionCall`` parts (directive ``tool_call``), thought parts when the
request asks ``thinkingConfig.includeThoughts``. ``streamGenerateContent?alt=sse`` streams SSE
events separated by CRLF pairs, as Google does; without ``alt=sse`` it streams one JSON array.
Errors are ``google.rpc.Status`` JSON. Auth is checked the way Google does: the Gemini API wants an
API key (403 without one), Vertex a Bearer token (401 without one). Inline data must be base64 of a
MIME type Gemini reads (image, audio, video, PDF and text types of its guides). ``:predict`` on an
``imagen-*`` model generates images (``provider_images.py``), on another embeds.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import msgspec
from aiohttp import web

from fastgate.mock.directives import Directives, last_user_text
from fastgate.mock.engine import MockPlan
from fastgate.mock.openai_format import embedding_vector, reply_text, split_chunks
from fastgate.mock.playback import play
from fastgate.mock.provider_images import Refusal, imagen
from fastgate.mock.tool_arguments import arguments_for

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any])
_ids = itertools.count(1)
_tokens = itertools.count(1)

#: HTTP status -> google.rpc.Code name (https://cloud.google.com/apis/design/errors#http_mapping).
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_SAFETY = [
    {"category": c, "probability": "NEGLIGIBLE"}
    for c in (
        "HARM_CATEGORY_HATE_SPEECH",
        "HARM_CATEGORY_DANGEROUS_CONTENT",
        "HARM_CATEGORY_HARASSMENT",
        "HARM_CATEGORY_SEXUALLY_EXPLICIT",
    )
]


#: MIME types Gemini reads as inline data (image, audio, video and document understanding guides).
INLINE_TYPES = frozenset(
    {
        *("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"),
        *("audio/wav", "audio/mp3", "audio/aiff", "audio/aac", "audio/ogg", "audio/flac"),
        *("video/mp4", "video/mpeg", "video/mov", "video/avi", "video/webm", "video/wmv", "video/3gpp"),
        *("application/pdf", "text/plain"),
    }
)


def inline_data_problem(request: dict[str, Any]) -> str | None:
    """Why Google would refuse an ``inlineData`` part: a MIME type it does not read, or data
    that is not base64."""
    for i, content in enumerate(request.get("contents") or ()):
        for j, part in enumerate(content.get("parts") or () if isinstance(content, dict) else ()):
            blob = part.get("inlineData") if isinstance(part, dict) else None
            if not isinstance(blob, dict):
                continue
            where = f"contents[{i}].parts[{j}].inline_data"
            if blob.get("mimeType") not in INLINE_TYPES:
                return f"Unsupported MIME type: {blob.get('mimeType')} ({where}.mime_type)"
            try:
                base64.b64decode(str(blob.get("data", "")), validate=True)
            except ValueError:
                return f"Invalid value at '{where}.data' (TYPE_BYTES), Base64 decoding failed"
    return None


def error(status: int, message: str) -> bytes:
    name = STATUS_NAMES.get(status, "UNKNOWN" if status >= 500 else "FAILED_PRECONDITION")
    return _encode({"error": {"code": status, "message": message, "status": name}})


def _words(text: str) -> int:
    return len(text.split())


def _part_texts(content: Any) -> str:
    parts = content.get("parts") if isinstance(content, dict) else None
    return " ".join(p["text"] for p in parts or () if isinstance(p, dict) and isinstance(p.get("text"), str))


def as_messages(request: dict[str, Any]) -> list[dict[str, str]]:
    """The request's text as OpenAI-like messages, for the shared directive reader."""
    messages = []
    system = request.get("systemInstruction")
    if system:
        messages.append({"role": "system", "content": _part_texts(system)})
    for content in request.get("contents") or ():
        role = "assistant" if content.get("role") == "model" else "user"
        messages.append({"role": role, "content": _part_texts(content)})
    return messages


def _prompt_tokens(request: dict[str, Any]) -> int:
    return max(1, sum(_words(m["content"]) for m in request.get("messages") or ()))


def _function_call(request: dict[str, Any], text: str) -> dict[str, Any] | None:
    config = (request.get("toolConfig") or {}).get("functionCallingConfig") or {}
    allowed = list(config.get("allowedFunctionNames") or ())
    declarations = [d for tool in request.get("tools") or () for d in tool.get("functionDeclarations") or ()]
    if allowed:
        declarations = [d for d in declarations if d.get("name") in allowed] or [{"name": allowed[0]}]
    if not declarations:
        return None
    # FunctionDeclaration: ``parameters`` (OpenAPI subset) or ``parametersJsonSchema``.
    declaration = declarations[0]
    schema = declaration.get("parameters") or declaration.get("parametersJsonSchema")
    return {"name": declaration["name"], "args": arguments_for(schema, text)}


class _Answer:
    """One planned generateContent answer, whole or in stream slices."""

    def __init__(self, request: dict[str, Any], d: Directives) -> None:
        config = request.get("generationConfig") or {}
        self.model = request.get("model") or "gemini-mock"
        self.response_id = f"mock-{next(_ids)}"
        self.candidates = int(config.get("candidateCount") or 1)
        self.thoughts = bool((config.get("thinkingConfig") or {}).get("includeThoughts"))
        self.text = reply_text(request, d)
        # Called when scripted, or when functionCallingConfig's mode ANY forces a call
        # (https://ai.google.dev/api/caching#FunctionCallingConfig).
        forced = ((request.get("toolConfig") or {}).get("functionCallingConfig") or {}).get("mode") == "ANY"
        self.call = _function_call(request, last_user_text(request)) if d.tool_call or forced else None
        self.finish = d.finish or "STOP"
        self.block = d.block
        self.prompt = _prompt_tokens(request)
        self.thought_text = "Considering the question."

    def usage(self, completion_text: str) -> dict[str, Any]:
        completion = max(1, _words(completion_text)) * self.candidates
        thoughts = _words(self.thought_text) if self.thoughts else 0
        usage: dict[str, Any] = {
            "promptTokenCount": self.prompt,
            "candidatesTokenCount": completion,
            "totalTokenCount": self.prompt + completion + thoughts,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt}],
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return usage

    def call_part(self) -> dict[str, Any]:
        part: dict[str, Any] = {"functionCall": self.call}
        if self.thoughts:
            # With thinking on, a function call carries the model's thought signature.
            signature = b"mock-signature:" + self.response_id.encode()
            part["thoughtSignature"] = base64.b64encode(signature).decode()
        return part

    def envelope(self, **fields: Any) -> dict[str, Any]:
        return {**fields, "modelVersion": self.model, "responseId": self.response_id}

    def blocked(self) -> dict[str, Any]:
        feedback = {"blockReason": self.block, "safetyRatings": _SAFETY}
        usage = {"promptTokenCount": self.prompt, "totalTokenCount": self.prompt}
        return self.envelope(promptFeedback=feedback, usageMetadata=usage)

    def whole(self) -> dict[str, Any]:
        if self.block:
            return self.blocked()
        parts: list[dict[str, Any]] = []
        if self.thoughts:
            parts.append({"text": self.thought_text, "thought": True})
        parts.append(self.call_part() if self.call else {"text": self.text})
        candidates = [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": self.finish,
                "index": i,
                "safetyRatings": _SAFETY,
            }
            for i in range(self.candidates)
        ]
        return self.envelope(candidates=candidates, usageMetadata=self.usage(self.text))

    def slices(self, chunks: int) -> list[dict[str, Any]]:
        if self.block:
            return [self.blocked()]
        parts: list[list[dict[str, Any]]] = []
        if self.thoughts:
            parts.append([{"text": self.thought_text, "thought": True}])
        if self.call:
            parts.append([self.call_part()])
        else:
            parts.extend([{"text": piece}] for piece in split_chunks(self.text, chunks) if piece)
        out = []
        said = ""
        for i, slice_parts in enumerate(parts):
            said += "".join(p.get("text", "") for p in slice_parts if not p.get("thought"))
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": slice_parts}, "index": 0}
            if i == len(parts) - 1:
                candidate["finishReason"] = self.finish
                candidate["safetyRatings"] = _SAFETY
            out.append(self.envelope(candidates=[candidate], usageMetadata=self.usage(said)))
        return out


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + _encode(obj) + b"\r\n\r\n"


def _json_array(objs: list[dict[str, Any]]) -> list[bytes]:
    frames = [(b"[" if i == 0 else b",\r\n") + _encode(o) for i, o in enumerate(objs)]
    return [*frames, b"]"]


def batch_embed(request: dict[str, Any]) -> bytes:
    embeddings = []
    for item in request.get("requests") or ():
        dims = int(item.get("outputDimensionality") or 8)
        embeddings.append({"values": embedding_vector(_part_texts(item.get("content")), dims)})
    return _encode({"embeddings": embeddings})


def predict_embeddings(request: dict[str, Any]) -> bytes:
    """Vertex text-embedding ``:predict``: one prediction per instance, with its token count."""
    dims = int((request.get("parameters") or {}).get("outputDimensionality") or 8)
    predictions = []
    characters = 0
    for instance in request.get("instances") or ():
        text = str(instance.get("content", ""))
        characters += len(text)
        statistics = {"truncated": False, "token_count": max(1, _words(text))}
        predictions.append({"embeddings": {"values": embedding_vector(text, dims), "statistics": statistics}})
    return _encode({"predictions": predictions, "metadata": {"billableCharacterCount": characters}})


class GeminiFormat:
    """The mock's answers in Gemini's wire format; ``endpoint`` is the method after the colon."""

    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        if endpoint == "generateContent":
            return MockPlan(status=200, body=_encode(_Answer(request, d).whole()), directives=d)
        if endpoint == "streamGenerateContent":
            slices = _Answer(request, d).slices(d.chunks)
            if request.get("_alt") == "sse":
                return MockPlan(
                    status=200,
                    frames=[_sse(s) for s in slices],
                    content_type="text/event-stream",
                    directives=d,
                )
            return MockPlan(status=200, frames=_json_array(slices), directives=d)
        if endpoint == "batchEmbedContents":
            return MockPlan(status=200, body=batch_embed(request), directives=d)
        if endpoint == "countTokens":
            # https://ai.google.dev/api/tokens#method:-models.counttokens
            tokens = _prompt_tokens(request)
            details = [{"modality": "TEXT", "tokenCount": tokens}]
            return MockPlan(
                status=200,
                body=_encode({"totalTokens": tokens, "promptTokensDetails": details}),
                directives=d,
            )
        if endpoint == "predict" and str(request.get("model", "")).startswith("imagen"):
            try:
                answer = imagen(request, d, vertex=bool(request.get("_vertex")))
            except Refusal as exc:
                return MockPlan(status=400, body=error(400, str(exc)), directives=d)
            return MockPlan(status=200, body=_encode(answer), directives=d)
        if endpoint == "predict":
            return MockPlan(status=200, body=predict_embeddings(request), directives=d)
        return MockPlan(status=404, body=error(404, f"Method {endpoint} not found."), directives=d)

    def error(self, status: int, message: str) -> bytes:
        return error(status, message)


GEMINI = GeminiFormat()


def _reply(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=error(status, message), content_type="application/json")


def add_routes(app: web.Application, server: Any) -> None:
    """Gemini API, Vertex AI (publisher google) and OAuth token routes on the mock app."""

    async def generate(request: web.Request, vertex: bool) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        model, _, method = request.match_info["call"].partition(":")
        if vertex and not request.headers.get("Authorization", "").startswith("Bearer "):
            return _reply(401, "Request is missing required authentication credential.")
        if not vertex and not (request.headers.get("x-goog-api-key") or request.query.get("key")):
            return _reply(403, "Method doesn't allow unregistered callers.")
        try:
            parsed = _decode.decode(body) if body else {}
        except msgspec.DecodeError:
            return _reply(400, "Invalid JSON payload received.")
        problem = inline_data_problem(parsed)
        if problem:
            return _reply(400, problem)
        # The shared directive reader looks for OpenAI messages; give it the request's text.
        parsed.update(
            messages=as_messages(parsed), model=model, _alt=request.query.get("alt"), _vertex=vertex
        )
        plan = server.engine.plan(method, _encode(parsed), GEMINI, stream=method == "streamGenerateContent")
        return await play(request, plan)

    async def gemini(request: web.Request) -> web.StreamResponse:
        return await generate(request, vertex=False)

    async def vertex(request: web.Request) -> web.StreamResponse:
        return await generate(request, vertex=True)

    async def token(request: web.Request) -> web.Response:
        """OAuth 2.0 JWT-bearer grant (RFC 7523): checks the form and the claims, not the signature
        (the mock has no public key; tests verify the recorded assertion themselves)."""
        body = await request.read()
        server.record(request, body)
        form = await request.post()
        assertion = str(form.get("assertion") or "")
        if (
            form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer"
            or assertion.count(".") != 2
        ):
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid grant."}, status=400
            )
        claims_b64 = assertion.split(".")[1]
        claims = _decode.decode(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
        if not {"iss", "aud", "iat", "exp", "scope"} <= claims.keys():
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Missing claims."}, status=400
            )
        return web.json_response(
            {"access_token": f"ya29.mock-{next(_tokens)}", "expires_in": 3599, "token_type": "Bearer"}
        )

    app.router.add_post("/v1beta/models/{call}", gemini)
    app.router.add_post("/v1/projects/{project}/locations/{region}/publishers/google/models/{call}", vertex)
    app.router.add_post("/token", token)
