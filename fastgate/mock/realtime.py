"""The mock's Realtime API session: ``session.created`` on connect, then per client event the
server events OpenAI sends for it (Realtime API reference, client and server events, GA names):

- ``session.update`` → ``session.updated``;
- ``input_audio_buffer.append`` → nothing (the audio is counted); ``.commit`` → ``.committed``
  (and the item's ``conversation.item.added`` / ``.done``); ``.clear`` → ``.cleared``;
- ``conversation.item.create`` → ``conversation.item.added``, ``conversation.item.done``;
  ``conversation.item.delete`` → ``conversation.item.deleted``;
- ``response.create`` → ``response.created``, ``response.output_item.added``,
  ``conversation.item.added``, ``response.content_part.added``, ``response.output_text.delta``
  per word of ``Mock reply to: <last user text>``, ``response.output_text.done``,
  ``response.content_part.done``, ``response.output_item.done``, ``conversation.item.done``,
  ``response.done`` with usage;
- anything else → an ``error`` event naming it.
"""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count(1)


def _id(prefix: str) -> str:
    return f"{prefix}_mock{next(_ids)}"


class RealtimeSession:
    def __init__(self, model: str) -> None:
        self.session: dict[str, Any] = {
            "type": "realtime",
            "object": "realtime.session",
            "id": _id("sess"),
            "model": model,
            "output_modalities": ["text"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
        }
        self.items: list[dict[str, Any]] = []
        self.audio_bytes = 0

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "event_id": _id("event"), **fields}

    def opening(self) -> list[dict[str, Any]]:
        return [self._event("session.created", session=self.session)]

    def reply(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        kind = event.get("type")
        if kind == "session.update" and isinstance(event.get("session"), dict):
            self.session.update({k: v for k, v in event["session"].items() if k != "type"})
            return [self._event("session.updated", session=self.session)]
        if kind == "input_audio_buffer.append":
            self.audio_bytes += len(str(event.get("audio", ""))) * 3 // 4
            return []
        if kind == "input_audio_buffer.clear":
            self.audio_bytes = 0
            return [self._event("input_audio_buffer.cleared")]
        if kind == "input_audio_buffer.commit":
            item = {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_audio", "transcript": None}],
            }
            previous = self.items[-1]["id"] if self.items else None
            self.audio_bytes = 0
            added = self._added(item)
            return [
                self._event(
                    "input_audio_buffer.committed", previous_item_id=previous, item_id=added[0]["item"]["id"]
                ),
                *added,
            ]
        if kind == "conversation.item.create" and isinstance(event.get("item"), dict):
            return self._added(dict(event["item"]))
        if kind == "conversation.item.delete":
            self.items = [i for i in self.items if i["id"] != event.get("item_id")]
            return [self._event("conversation.item.deleted", item_id=event.get("item_id"))]
        if kind == "response.create":
            return self._respond()
        if kind == "response.cancel":
            return []  # nothing in progress: a mock response is over as soon as it starts
        error = {
            "type": "invalid_request_error",
            "code": "invalid_value",
            "message": f"Invalid value: '{kind}'. Supported values are the Realtime API's client events.",
            "param": "type",
            "event_id": event.get("event_id"),
        }
        return [self._event("error", error=error)]

    def _added(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        item.setdefault("id", _id("item"))
        item.setdefault("object", "realtime.item")
        item["status"] = "completed"
        previous = self.items[-1]["id"] if self.items else None
        self.items.append(item)
        return [
            self._event("conversation.item.added", previous_item_id=previous, item=item),
            self._event("conversation.item.done", previous_item_id=previous, item=item),
        ]

    def _last_user_text(self) -> str:
        for item in reversed(self.items):
            if item.get("role") == "user":
                for part in item.get("content") or ():
                    if isinstance(part, dict) and part.get("type") == "input_text":
                        return str(part.get("text", ""))
        return ""

    def _respond(self) -> list[dict[str, Any]]:
        said = self._last_user_text()
        text = f"Mock reply to: {said}" if said else "Mock reply."
        response_id, item_id = _id("resp"), _id("item")
        response: dict[str, Any] = {
            "object": "realtime.response",
            "id": response_id,
            "status": "in_progress",
            "output": [],
            "conversation_id": "conv_mock",
            "output_modalities": ["text"],
            "usage": None,
        }
        item: dict[str, Any] = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        part = {"type": "output_text", "text": ""}
        at = {"response_id": response_id, "item_id": item_id, "output_index": 0}
        events = [
            self._event("response.created", response=dict(response)),
            self._event(
                "response.output_item.added", response_id=response_id, output_index=0, item=dict(item)
            ),
            self._event(
                "conversation.item.added",
                previous_item_id=self.items[-1]["id"] if self.items else None,
                item=dict(item),
            ),
            self._event("response.content_part.added", **at, content_index=0, part=part),
        ]
        words = text.split(" ")
        for i, word in enumerate(words):
            delta = word + (" " if i < len(words) - 1 else "")
            events.append(self._event("response.output_text.delta", **at, content_index=0, delta=delta))
        done_part = {"type": "output_text", "text": text}
        item.update(status="completed", content=[done_part])
        self.items.append(item)
        tokens_in, tokens_out = max(1, len(said.split())), len(words)
        response.update(
            status="completed",
            output=[item],
            usage={
                "total_tokens": tokens_in + tokens_out,
                "input_tokens": tokens_in,
                "output_tokens": tokens_out,
                "input_token_details": {"text_tokens": tokens_in, "audio_tokens": 0, "cached_tokens": 0},
                "output_token_details": {"text_tokens": tokens_out, "audio_tokens": 0},
            },
        )
        events += [
            self._event("response.output_text.done", **at, content_index=0, text=text),
            self._event("response.content_part.done", **at, content_index=0, part=done_part),
            self._event("response.output_item.done", response_id=response_id, output_index=0, item=item),
            self._event("conversation.item.done", previous_item_id=None, item=item),
            self._event("response.done", response=response),
        ]
        return events
