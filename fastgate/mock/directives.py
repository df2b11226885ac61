"""How a request scripts the mock: a ``mock`` object in the body, or ``[mock k=v ...]`` in the text.

The body field reaches the mock untouched through any OpenAI-compatible route (unknown
parameters survive); the text marker survives any provider mapping, since message text is
always carried over.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec


class Directives(msgspec.Struct, kw_only=True):
    #: HTTP status to answer with (non-2xx: an error body in the provider's format).
    status: int = 200
    #: Wait before the response headers.
    delay_ms: float = 0.0
    #: Content chunks in a stream, and the wait before each.
    chunks: int = 4
    chunk_delay_ms: float = 0.0
    #: Reply text; by default an echo of the last user message.
    content: str | None = None
    #: Failure to inject: drop, drop_mid_stream, error_mid_stream, stall_mid_stream, truncate,
    #: invalid_json, html, empty_stream.
    fail: str | None = None
    #: Fail this many attempts (with ``status``, default 503) and then succeed; counted per ``key``.
    fail_first: int = 0
    key: str = "default"
    #: ``Retry-After`` header (seconds) on failures.
    retry_after: float | None = None
    #: Answer with a call to the first (or the named) tool instead of text.
    tool_call: bool = False
    #: The provider's own finish/stop reason to answer with (``SAFETY``, ``MAX_TOKENS`` ...).
    finish: str | None = None
    #: Refuse the prompt itself with this reason (Gemini ``promptFeedback.blockReason``).
    block: str | None = None


_MARKER = re.compile(r"\[mock ([^\]]*)\]")


def _marker_fields(text: str) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for match in _MARKER.finditer(text):
        for pair in match.group(1).split():
            key, _, value = pair.partition("=")
            fields[key] = value
    return fields


def request_texts(request: dict[str, Any]) -> list[str]:
    """Every text a chat, completions, Responses, images (``prompt``, and the image APIs' own
    fields) or rerank (``query``) request carries, in order."""
    texts: list[str] = []
    items = request.get("input")
    if isinstance(items, str):
        items = [{"content": items}]
    for message in [*(request.get("messages") or ()), *(items if isinstance(items, list) else ())]:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    prompt = request.get("prompt")
    if isinstance(prompt, str):
        texts.append(prompt)
    elif isinstance(prompt, list):
        texts.extend(p for p in prompt if isinstance(p, str))
    query = request.get("query")
    if isinstance(query, str):
        texts.append(query)
    texts.extend(_image_prompts(request))
    return texts


def _image_prompts(request: dict[str, Any]) -> list[str]:
    """Prompts of Titan (``textToImageParams.text``), Stability v1 (``text_prompts``) and Imagen
    (``instances``) bodies."""
    found: list[Any] = []
    titan = request.get("textToImageParams")
    if isinstance(titan, dict):
        found.append(titan.get("text"))
    for key, field in (("text_prompts", "text"), ("instances", "prompt")):
        items = request.get(key)
        if isinstance(items, list):
            found.extend(item.get(field) for item in items if isinstance(item, dict))
    return [text for text in found if isinstance(text, str)]


def read_directives(request: dict[str, Any], defaults: Directives | None = None) -> Directives:
    fields: dict[str, Any] = msgspec.structs.asdict(defaults) if defaults else {}
    for text in request_texts(request):
        if "[mock " in text:
            fields.update(_marker_fields(text))
    body_fields = request.get("mock")
    if isinstance(body_fields, dict):
        fields.update(body_fields)
    try:
        return msgspec.convert(fields, Directives, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(f"bad mock directive: {exc}") from None


def last_user_text(request: dict[str, Any]) -> str:
    texts = request_texts(request)
    text = _MARKER.sub("", texts[-1]).strip() if texts else ""
    return text
