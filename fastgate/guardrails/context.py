"""The hook context: the request and answer a check reads, and where each request type keeps
its text.

Text follows Portkey's ``getCurrentContentPart`` (``plugins/utils.ts``): before the request, the
last message's text parts (chat, Messages), the prompt (completions), the input (embeddings);
after it, the first choice's content (chat), its text (completions), the text blocks (Messages).
Responses (Portkey runs no hooks on them) read the last input item and the answer's
``output_text`` parts; image generations (Portkey runs none on them either) their ``prompt``,
before the request only: the answer is images. A transformed text is written back to the same
places on a shallow copy, so the JSON the gateway holds is never changed under it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BEFORE = "beforeRequestHook"
AFTER = "afterRequestHook"

#: Portkey's endpoint names, which checks (``allowedRequestTypes``) and webhooks see.
CHAT = "chatComplete"
COMPLETE = "complete"
EMBED = "embed"
MESSAGES = "messages"
RESPONSES = "createModelResponse"
IMAGE_GENERATE = "imageGenerate"
#: The request types hooks run on (Portkey: chat, completions, embeddings, Messages; and ours,
#: Responses and image generations). Embeddings and images run before-request guardrails only.
HOOKED_TYPES = frozenset({CHAT, COMPLETE, EMBED, MESSAGES, RESPONSES, IMAGE_GENERATE})
#: Request types without a text answer: no after-request guardrails.
BEFORE_ONLY = frozenset({EMBED, IMAGE_GENERATE})

Content = tuple[Any, list[Any]]
_NOTHING: Content = (None, [])


class HookContext:
    """One request's view for its checks. Built once per leaf attempt; the engine replaces
    ``request`` / ``response`` when a check transforms them."""

    __slots__ = (
        "_texts",
        "headers",
        "is_streaming",
        "metadata",
        "provider",
        "request",
        "request_transformed",
        "request_type",
        "response",
        "response_transformed",
        "status",
    )

    def __init__(
        self,
        request: dict[str, Any],
        request_type: str,
        provider: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        is_streaming: bool = False,
    ) -> None:
        self.request = request
        self.request_type = request_type
        self.provider = provider
        self.metadata: Mapping[str, Any] = metadata or {}
        #: The client's headers, lower-case names: only the ``jwt`` check reads them; they are
        #: never sent to a webhook or a log URL (they carry the provider key).
        self.headers: Mapping[str, str] = headers or {}
        self.is_streaming = is_streaming
        self.response: dict[str, Any] | None = None
        self.status: int | None = None
        self.request_transformed = False
        self.response_transformed = False
        #: The joined text of the request and of the answer, read once by however many checks.
        self._texts: list[str | None] = [None, None]

    @property
    def model(self) -> Any:
        return self.request.get("model")

    def set_response(self, answer: dict[str, Any] | None, status: int) -> None:
        self.response = answer
        self.status = status
        self._texts[1] = None

    def replace(self, request: dict[str, Any] | None, response: dict[str, Any] | None) -> None:
        """A check's transformed request or answer becomes what the next checks read."""
        if request is not None:
            self.request = request
            self.request_transformed = True
            self._texts[0] = None
        if response is not None:
            self.response = response
            self.response_transformed = True
            self._texts[1] = None

    def content(self, event: str) -> Content:
        """The raw content and its list of texts (Portkey's ``getCurrentContentPart``)."""
        if event == BEFORE:
            return request_content(self.request, self.request_type)
        return response_content(self.response, self.request_type)

    def text(self, event: str) -> str:
        """The non-empty texts joined by newlines (Portkey's ``getText``)."""
        slot = 0 if event == BEFORE else 1
        text = self._texts[slot]
        if text is None:
            parts = self.content(event)[1]
            if len(parts) == 1 and isinstance(parts[0], str):
                text = parts[0]  # a string content: the common case
            else:
                text = "\n".join(p if isinstance(p, str) else str(p) for p in parts if p)
            self._texts[slot] = text
        return text

    def with_texts(self, event: str, texts: list[str | None]) -> dict[str, Any] | None:
        """The request (or answer) JSON with its texts replaced; a None text keeps the old one."""
        if event == BEFORE:
            return set_request_texts(self.request, self.request_type, texts)
        if self.response is None:
            return None
        return set_response_texts(self.response, self.request_type, texts)

    def webhook_body(self, event: str) -> dict[str, Any]:
        """The context as Portkey posts it to webhooks and log URLs, without the headers."""
        return {
            "request": {
                "json": self.request,
                "text": self.text(BEFORE),
                "isStreamingRequest": self.is_streaming,
                "isTransformed": self.request_transformed,
            },
            "response": {
                "json": self.response if self.response is not None else {},
                "text": self.text(AFTER) if self.response is not None else "",
                "statusCode": self.status,
                "isTransformed": self.response_transformed,
            },
            "provider": self.provider,
            "requestType": self.request_type,
            "metadata": dict(self.metadata),
            "eventType": event,
        }


def _part_texts(content: list[Any]) -> list[Any]:
    return [(item.get("text") or "") if isinstance(item, dict) else "" for item in content]


def request_content(json: Mapping[str, Any], request_type: str) -> Content:
    if request_type in (CHAT, MESSAGES):
        messages = json.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
            return _NOTHING
        content = messages[-1].get("content")
        return content, _part_texts(content) if isinstance(content, list) else [content]
    if request_type in (COMPLETE, IMAGE_GENERATE):
        prompt = json.get("prompt")
        return prompt, list(prompt) if isinstance(prompt, list) else [prompt]
    if request_type == EMBED:
        given = json.get("input")
        return given, list(given) if isinstance(given, list) else [given]
    if request_type == RESPONSES:
        given = json.get("input")
        if isinstance(given, list):
            last = given[-1] if given and isinstance(given[-1], dict) else {}
            content = last.get("content")
            return content, _part_texts(content) if isinstance(content, list) else [content]
        return given, [given]
    return _NOTHING


def _first_choice(json: Mapping[str, Any]) -> dict[str, Any] | None:
    choices = json.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        return choices[0]
    return None


def _output_parts(json: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``output_text`` parts of a Responses answer's message items, in order."""
    parts: list[dict[str, Any]] = []
    for item in json.get("output") or ():
        if isinstance(item, dict) and item.get("type") == "message":
            parts.extend(p for p in item.get("content") or () if isinstance(p, dict) and "text" in p)
    return parts


def response_content(json: Mapping[str, Any] | None, request_type: str) -> Content:
    if not json:
        return _NOTHING  # a stream's answer is not JSON (Portkey: "this can happen for streaming")
    if request_type == CHAT:
        choice = _first_choice(json)
        message = choice.get("message") if choice else None
        content = message.get("content") if isinstance(message, dict) else None
        return content, [content]
    if request_type == COMPLETE:
        choice = _first_choice(json)
        text = choice.get("text") if choice else None
        return text, [text]
    if request_type == MESSAGES:
        blocks = json.get("content")
        return (blocks, _part_texts(blocks)) if isinstance(blocks, list) else _NOTHING
    if request_type == RESPONSES:
        parts = _output_parts(json)
        return (parts or None), [p.get("text") for p in parts]
    return _NOTHING


def _merged(texts: list[str | None], old: list[Any]) -> list[Any]:
    return [texts[i] if i < len(texts) and texts[i] else item for i, item in enumerate(old)]


def _parts_with(content: list[Any], texts: list[str | None]) -> list[Any]:
    out = []
    for i, item in enumerate(content):
        new = texts[i] if i < len(texts) else None
        out.append({**item, "text": new} if new and isinstance(item, dict) else item)
    return out


def set_request_texts(json: dict[str, Any], request_type: str, texts: list[str | None]) -> dict[str, Any]:
    """Portkey's ``setRequestContentPart`` (plus embeddings and Responses input)."""
    out = dict(json)
    first = texts[0] if texts else None
    if request_type in (CHAT, MESSAGES):
        messages = list(json.get("messages") or ())
        if not messages or not isinstance(messages[-1], dict):
            return out
        last = dict(messages[-1])
        content = last.get("content")
        last["content"] = _parts_with(content, texts) if isinstance(content, list) else (first or content)
        messages[-1] = last
        out["messages"] = messages
    elif request_type in (COMPLETE, EMBED, IMAGE_GENERATE):
        key = "input" if request_type == EMBED else "prompt"
        value = json.get(key)
        out[key] = _merged(texts, value) if isinstance(value, list) else (first or value)
    elif request_type == RESPONSES:
        given = json.get("input")
        if isinstance(given, list) and given and isinstance(given[-1], dict):
            last = dict(given[-1])
            content = last.get("content")
            last["content"] = _parts_with(content, texts) if isinstance(content, list) else (first or content)
            out["input"] = [*given[:-1], last]
        elif isinstance(given, str):
            out["input"] = first or given
    return out


def set_response_texts(json: dict[str, Any], request_type: str, texts: list[str | None]) -> dict[str, Any]:
    """Portkey's ``setResponseContentPart``; Messages blocks keep their shape (Portkey replaces
    them by bare strings) and completions change the first choice, the one ``getText`` read."""
    out = dict(json)
    first = texts[0] if texts else None
    if request_type in (CHAT, COMPLETE):
        choices = list(json.get("choices") or ())
        if not choices or not isinstance(choices[0], dict):
            return out
        choice = dict(choices[0])
        if request_type == CHAT:
            message = dict(choice.get("message") or {})
            message["content"] = first or message.get("content")
            choice["message"] = message
        else:
            choice["text"] = first or choice.get("text")
        choices[0] = choice
        out["choices"] = choices
    elif request_type == MESSAGES and isinstance(json.get("content"), list):
        out["content"] = _parts_with(json["content"], texts)
    elif request_type == RESPONSES:
        remaining = list(texts)
        output = []
        for item in json.get("output") or ():
            if isinstance(item, dict) and item.get("type") == "message":
                content = []
                for part in item.get("content") or ():
                    if isinstance(part, dict) and "text" in part:
                        new = remaining.pop(0) if remaining else None
                        part = {**part, "text": new} if new else part
                    content.append(part)
                item = {**item, "content": content}
            output.append(item)
        out["output"] = output
    return out
