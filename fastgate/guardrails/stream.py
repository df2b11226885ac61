"""A streamed answer put back together, for the after-request hooks to read at its end.

Fed the ``data`` of each event the client is sent (already in the ingress format), it keeps only
what the hooks read: the first choice's text (chat, completions), the text blocks (Messages), the
output text (Responses). It exists only for a request whose leaf has after-request hooks.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate.guardrails.context import CHAT, COMPLETE, MESSAGES, RESPONSES

_decode = msgspec.json.Decoder().decode


class StreamAnswer:
    __slots__ = ("_blocks", "_final", "_parts", "id", "model", "request_type")

    def __init__(self, request_type: str) -> None:
        self.request_type = request_type
        self.id: Any = None
        self.model: Any = None
        self._parts: list[str] = []
        self._blocks: dict[int, list[str]] = {}
        self._final: dict[str, Any] | None = None

    def feed(self, data: bytes) -> None:
        """One event's data (``[DONE]`` and anything not JSON are ignored)."""
        if data.startswith(b"[DONE]"):
            return
        try:
            event = _decode(data)
        except msgspec.DecodeError:
            return
        if isinstance(event, dict):
            self._take(event)

    def _take(self, event: dict[str, Any]) -> None:
        kind = self.request_type
        if kind in (CHAT, COMPLETE):
            self.id = self.id or event.get("id")
            self.model = self.model or event.get("model")
            for choice in event.get("choices") or ():
                if isinstance(choice, dict) and choice.get("index", 0) == 0:
                    if kind == CHAT:
                        delta = choice.get("delta")
                        text = delta.get("content") if isinstance(delta, dict) else None
                    else:
                        text = choice.get("text")
                    if isinstance(text, str):
                        self._parts.append(text)
        elif kind == MESSAGES:
            kind_of = event.get("type")
            if kind_of == "message_start" and isinstance(event.get("message"), dict):
                self.id, self.model = event["message"].get("id"), event["message"].get("model")
            elif kind_of == "content_block_start":
                block = event.get("content_block")
                if isinstance(block, dict) and block.get("type") == "text":
                    self._blocks[event.get("index", 0)] = [block.get("text") or ""]
            elif kind_of == "content_block_delta":
                delta = event.get("delta")
                texts = self._blocks.get(event.get("index", 0))
                if texts is not None and isinstance(delta, dict) and delta.get("type") == "text_delta":
                    texts.append(delta.get("text") or "")
        elif kind == RESPONSES:
            kind_of = event.get("type")
            if kind_of == "response.output_text.delta" and isinstance(event.get("delta"), str):
                self._parts.append(event["delta"])
            elif kind_of in ("response.completed", "response.incomplete") and isinstance(
                event.get("response"), dict
            ):
                self._final = event["response"]

    def answer(self) -> dict[str, Any]:
        """The answer as the JSON the non-streamed request would have had (what hooks read)."""
        kind = self.request_type
        text = "".join(self._parts)
        if kind == CHAT:
            message = {"role": "assistant", "content": text}
            return {
                "id": self.id,
                "object": "chat.completion",
                "model": self.model,
                "choices": [{"index": 0, "message": message}],
            }
        if kind == COMPLETE:
            return {
                "id": self.id,
                "object": "text_completion",
                "model": self.model,
                "choices": [{"index": 0, "text": text}],
            }
        if kind == MESSAGES:
            blocks = [{"type": "text", "text": "".join(self._blocks[i])} for i in sorted(self._blocks)]
            return {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": blocks,
            }
        if self._final is not None:
            return self._final
        part = {"type": "output_text", "text": text, "annotations": []}
        return {"object": "response", "output": [{"type": "message", "role": "assistant", "content": [part]}]}
