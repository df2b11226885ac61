"""OpenAI-format answers of the mock: chat (audio output included), completions, embeddings,
models, images, moderations, rerank, errors, SSE."""

from __future__ import annotations

import base64
import hashlib
import itertools
import struct
import time
from typing import Any

import msgspec

from fastgate.mock.directives import Directives, last_user_text, request_texts
from fastgate.mock.engine import MockPlan
from fastgate.mock.images import images_answer
from fastgate.mock.media import PCM16, WAV
from fastgate.mock.moderations import moderation_answer
from fastgate.mock.openai_validation import images, invalid_request
from fastgate.mock.rerank import rerank_answer, rerank_invalid
from fastgate.mock.tool_arguments import arguments_for

_encode = msgspec.json.Encoder().encode
_ids = itertools.count(1)
MOCK_MODELS = ("mock-small", "mock-large", "mock-embed")


def reply_text(request: dict[str, Any], d: Directives) -> str:
    if d.content is not None:
        return d.content
    said = last_user_text(request)
    return f"Mock reply to: {said[:200]}" if said else "Mock reply."


def _count_tokens(texts: list[str]) -> int:
    return max(1, sum(len(t.split()) for t in texts))


def prompt_tokens(request: dict[str, Any]) -> int:
    return _count_tokens(request_texts(request))


def split_chunks(text: str, n: int) -> list[str]:
    """``text`` in ``n`` consecutive pieces (words kept whole where possible)."""
    n = max(1, n)
    words = text.split(" ")
    if len(words) >= n:
        size, extra = divmod(len(words), n)
        out, i = [], 0
        for k in range(n):
            j = i + size + (1 if k < extra else 0)
            out.append(" ".join(words[i:j]) + (" " if j < len(words) else ""))
            i = j
        return out
    return [text] + [""] * (n - 1) if n > 1 else [text]


def answered_a_tool(request: dict[str, Any]) -> bool:
    """The conversation ends with a tool's result: an agent loop wants the answer now."""
    messages = request.get("messages") or [{}]
    last = messages[-1]
    return isinstance(last, dict) and last.get("role") in ("tool", "function")


def tool_call_for(request: dict[str, Any], d: Directives) -> dict[str, Any] | None:
    """The call the mock makes: when scripted (``tool_call``) or when ``tool_choice`` forces one
    (``required`` or a named function, as OpenAI's models must), unless the conversation ends
    with a tool's result; its arguments validate against the tool's parameters."""
    choice = request.get("tool_choice")
    forced = choice in ("required", "any") or isinstance(choice, dict)
    if not (d.tool_call or forced) or choice == "none" or answered_a_tool(request):
        return None
    functions = [
        t["function"]
        for t in request.get("tools") or ()
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        named = choice["function"].get("name")
        functions = [f for f in functions if f.get("name") == named] or [{"name": named}]
    if not functions:
        return None
    function = functions[0]
    args = _encode(arguments_for(function.get("parameters"), last_user_text(request))).decode()
    return {
        "id": f"call_mock{next(_ids)}",
        "type": "function",
        "function": {"name": function["name"], "arguments": args},
    }


def _usage(request: dict[str, Any], completion: str) -> dict[str, int]:
    p = prompt_tokens(request)
    c = max(1, len(completion.split()))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def speaks(request: dict[str, Any]) -> bool:
    """Audio output was asked for (``modalities`` with ``audio``)."""
    modalities = request.get("modalities")
    return isinstance(modalities, list) and "audio" in modalities


def _audio_data(request: dict[str, Any]) -> str:
    """The spoken answer, base64: raw PCM for ``pcm16``, else the mock's WAV (it encodes no
    other format)."""
    pcm = (request.get("audio") or {}).get("format") == "pcm16"
    return base64.b64encode(PCM16 if pcm else WAV).decode()


def _audio_usage(request: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    """Usage with the audio tokens of ``input_audio`` parts and of a spoken answer (OpenAI's
    ``prompt_tokens_details`` / ``completion_tokens_details``)."""
    heard = sum(
        1
        for m in request.get("messages") or ()
        if isinstance(m, dict) and isinstance(m.get("content"), list)
        for p in m["content"]
        if isinstance(p, dict) and p.get("type") == "input_audio"
    )
    if heard:
        usage["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": heard * 10}
    if speaks(request):
        usage["completion_tokens_details"] = {"reasoning_tokens": 0, "audio_tokens": 10}
    return usage


def chat_completion(request: dict[str, Any], d: Directives) -> bytes:
    model = request.get("model") or MOCK_MODELS[0]
    call = tool_call_for(request, d)
    text = reply_text(request, d)
    message: dict[str, Any] = {"role": "assistant", "content": None if call else text, "refusal": None}
    if call:
        message["tool_calls"] = [call]
    elif speaks(request):
        # Spoken: the text is the audio's transcript, not content (OpenAI audio guide).
        message["content"] = None
        message["audio"] = {
            "id": f"audio_mock{next(_ids)}",
            "data": _audio_data(request),
            "expires_at": int(time.time()) + 3600,
            "transcript": text,
        }
    return _encode(
        {
            "id": f"chatcmpl-mock{next(_ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": "tool_calls" if call else "stop",
                }
            ],
            "usage": _audio_usage(request, _usage(request, call["function"]["arguments"] if call else text)),
            "system_fingerprint": "fp_mock",
        }
    )


def _frame(obj: dict[str, Any]) -> bytes:
    return b"data: " + _encode(obj) + b"\n\n"


def chat_stream(request: dict[str, Any], d: Directives) -> list[bytes]:
    """The whole stream as SSE frames: role, content pieces, finish, usage if asked, ``[DONE]``."""
    model = request.get("model") or MOCK_MODELS[0]
    base = {
        "id": f"chatcmpl-mock{next(_ids)}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_mock",
    }
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    extra = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _frame(
            {
                **base,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
                **extra,
            }
        )

    call = tool_call_for(request, d)
    text = reply_text(request, d)
    frames = [chunk({"role": "assistant", "content": "" if not call else None})]
    if call:
        args = call["function"]["arguments"]
        pieces = split_chunks(args, d.chunks) if d.chunks > 1 else [args]
        frames.append(
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
        )
        frames.extend(
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in pieces if p
        )
        frames.append(chunk({}, "tool_calls"))
    elif speaks(request):
        # The transcript in pieces (the first with the audio's id), the audio, then its expiry.
        audio_id = f"audio_mock{next(_ids)}"
        pieces = split_chunks(text, d.chunks)
        frames.append(chunk({"audio": {"id": audio_id, "transcript": pieces[0]}}))
        frames.extend(chunk({"audio": {"transcript": piece}}) for piece in pieces[1:])
        frames.append(chunk({"audio": {"data": _audio_data(request)}}))
        frames.append(chunk({"audio": {"expires_at": int(time.time()) + 3600}}))
        frames.append(chunk({}, "stop"))
    else:
        frames.extend(chunk({"content": piece}) for piece in split_chunks(text, d.chunks))
        frames.append(chunk({}, "stop"))
    if include_usage:
        frames.append(_frame({**base, "choices": [], "usage": _audio_usage(request, _usage(request, text))}))
    frames.append(b"data: [DONE]\n\n")
    return frames


def text_completion(request: dict[str, Any], d: Directives) -> bytes:
    text = reply_text(request, d)
    return _encode(
        {
            "id": f"cmpl-mock{next(_ids)}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": request.get("model") or MOCK_MODELS[0],
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": "stop"}],
            "usage": _usage(request, text),
        }
    )


def completion_stream(request: dict[str, Any], d: Directives) -> list[bytes]:
    base = {
        "id": f"cmpl-mock{next(_ids)}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": request.get("model") or MOCK_MODELS[0],
    }
    text = reply_text(request, d)
    frames = [
        _frame({**base, "choices": [{"text": p, "index": 0, "logprobs": None, "finish_reason": None}]})
        for p in split_chunks(text, d.chunks)
    ]
    frames.append(
        _frame({**base, "choices": [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]})
    )
    frames.append(b"data: [DONE]\n\n")
    return frames


def embedding_vector(text: str, dims: int) -> list[float]:
    """A deterministic unit-free vector: the same text always embeds the same way."""
    out: list[float] = []
    seed = text.encode()
    counter = 0
    while len(out) < dims:
        digest = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        out.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    return [round(v, 6) for v in out[:dims]]


def embeddings(request: dict[str, Any]) -> bytes:
    raw = request.get("input")
    inputs = raw if isinstance(raw, list) else [raw]
    dims = int(request.get("dimensions") or 8)
    as_base64 = request.get("encoding_format") == "base64"
    data = []
    for i, item in enumerate(inputs):
        vector = embedding_vector(str(item), dims)
        value: Any = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode() if as_base64 else vector
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = _count_tokens([str(x) for x in inputs])
    return _encode(
        {
            "object": "list",
            "data": data,
            "model": request.get("model") or MOCK_MODELS[2],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def models() -> bytes:
    return _encode(
        {
            "object": "list",
            "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "fastgate-mock"} for m in MOCK_MODELS
            ],
        }
    )


def error(status: int, message: str) -> bytes:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "server_error")
    return _encode({"error": {"message": message, "type": kind, "param": None, "code": None}})


class OpenAIFormat:
    """The mock's answers in OpenAI's wire format (also every OpenAI-compatible provider's)."""

    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        refused = _refusal(invalid_request(endpoint, request))
        if refused is not None:
            return MockPlan(status=400, body=refused, directives=d)
        stream = bool(request.get("stream"))
        sse = "text/event-stream"
        if endpoint == "chat/completions":
            if stream:
                return MockPlan(status=200, frames=chat_stream(request, d), directives=d, content_type=sse)
            return MockPlan(status=200, body=chat_completion(request, d), directives=d)
        if endpoint == "completions":
            if stream:
                return MockPlan(
                    status=200, frames=completion_stream(request, d), directives=d, content_type=sse
                )
            return MockPlan(status=200, body=text_completion(request, d), directives=d)
        if endpoint == "embeddings":
            return MockPlan(status=200, body=embeddings(request), directives=d)
        if endpoint == "models":
            return MockPlan(status=200, body=models(), directives=d)
        if endpoint == "images/generations":
            return images_answer(request, d)
        if endpoint in ("images/edits", "images/variations"):
            return self._image_upload(endpoint, request, d)
        if endpoint == "moderations":
            return moderation_answer(request, d)
        if endpoint == "rerank":
            refusal = rerank_invalid(request, strings_only=False)
            if refusal:
                return MockPlan(status=400, body=error(400, refusal), directives=d)
            return MockPlan(status=200, body=_encode(rerank_answer(request)), directives=d)
        return MockPlan(status=404, body=error(404, f"mock has no endpoint {endpoint}"), directives=d)

    def _image_upload(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        """An edit or a variation, its form read into ``request`` (``forms.py``)."""
        edit = endpoint == "images/edits"
        given = request.get("image")
        problem = invalid("image", "Missing required parameter: 'image'.") if not given else None
        problem = problem or _refusal(images(request, prompt=edit))
        if problem is not None:
            return MockPlan(status=400, body=problem, directives=d)
        count = len(given) if isinstance(given, list) else 1
        return images_answer(request, d, inputs=count, kind="edit" if edit else "variation")

    def error(self, status: int, message: str) -> bytes:
        return error(status, message)


def invalid(param: str | None, message: str, code: str | None = "missing_required_parameter") -> bytes:
    """OpenAI's 400 body."""
    return _encode(
        {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    )


def _refusal(problem: Any) -> bytes | None:
    return None if problem is None else invalid(problem.param, problem.message, problem.code)


OPENAI = OpenAIFormat()
