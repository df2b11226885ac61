"""Anthropic's Messages API in front of every provider (``POST /v1/messages``).

A target that speaks Messages natively (``anthropic``; Claude on ``vertex-ai``) gets the request as
the client sent it, body and ``anthropic-*`` headers untouched, and its answer is relayed as it
comes. Any other target is reached through the chat pivot: the request becomes an OpenAI chat
request once per exchange (``mapping/messages_ingress.pxi``), goes through that provider's own
mapping, and its answer, stream or error comes back in Anthropic's shape. A fallback across both
kinds answers in Anthropic's shape every time.

``count_tokens`` is counted natively where the provider can (``anthropic``, Claude on
``vertex-ai``), and estimated elsewhere (``estimate_messages_tokens``: a documented estimate, not a
tokenizer's count), never a 404.

The stage sits after the keys stage (a virtual key decides the provider) and before the others,
so they see the call as it will be made, and its answer last, once they have seen it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate._transforms import (
    ChatToMessagesStream,
    chat_error_to_messages,
    chat_to_messages_answer,
    estimate_messages_tokens,
    messages_to_chat_request,
)
from fastgate.errors import error_body
from fastgate.gateway.pipeline import Attempt, Exchange, Stage
from fastgate.gateway.relay import Outcome
from fastgate.gateway.stages.relayed_events import WholeEvents, relayed_stream
from fastgate.providers.base import Endpoint
from fastgate.providers.registry import get_provider
from fastgate.schema.openai import RawContentChatRequest, json_encoder

#: The exchange's ingress format (``Exchange.ingress``) this stage serves.
MESSAGES = "messages"
#: An attempt's note: a token count this target cannot make, estimated here.
_ESTIMATE = object()
_ERROR_EVENT = b"event: error\ndata: "


class MessagesStage(Stage):
    def arrive(self, ex: Exchange) -> bool:
        return ex.ingress == MESSAGES

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        call = at.call
        model = ex.view.model or ""
        native = Endpoint.MESSAGES_COUNT if ex.endpoint is Endpoint.MESSAGES_COUNT else Endpoint.MESSAGES
        provider = get_provider(call.target.provider)
        if provider.speaks(native, model):
            call.endpoint, call.path = native, "/" + native.value
            at.notes[self] = None
            return True
        if native is Endpoint.MESSAGES_COUNT:
            at.notes[self] = _ESTIMATE  # no way to count here: ``before`` answers with an estimate
            return True
        pivot: _Pivot | None = ex.noted(self)
        if pivot is None:  # the first target that needs the pivot: mapped once per exchange
            pivot = _Pivot(*messages_to_chat_request(ex.body))
            ex.note(self, pivot)
        call.endpoint = Endpoint.CHAT
        call.body = pivot.extended() if provider.chat_extensions else pivot.body
        call.view = pivot.view
        # The client never sees the chat answer, so it is asked for in the provider's own words
        # (Portkey's non-strict mode): thinking blocks with their signatures, a stop sequence's
        # stop reason, both of which OpenAI's strict shape has no room for.
        call.target = msgspec.structs.replace(call.target, strict_open_ai_compliance=False)
        at.notes[self] = _Mapped(model, pivot.stop)
        return True

    def remap(self, ex: Exchange, at: Attempt, request: dict[str, Any]) -> None:
        """A later stage changed the request (a guardrail's transformation): through the pivot,
        the attempt sends its chat form."""
        if isinstance(at.notes[self], _Mapped):
            call = at.call
            pivot = _Pivot(*messages_to_chat_request(msgspec.json.encode(request)))
            call.body = pivot.extended() if get_provider(call.target.provider).chat_extensions else pivot.body
            call.view = pivot.view

    async def before(self, ex: Exchange, at: Attempt) -> Outcome | None:
        if at.notes[self] is not _ESTIMATE:
            return None
        return Outcome(status=200, provider=at.provider, call=at.call, body=estimate_messages_tokens(ex.body))

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        body = outcome.body
        if body is None:
            # Relayed as it comes (native), or a stream (the watcher maps it). A native stream
            # that breaks off ends with Anthropic's error event, as the pivot's streams do.
            if relayed_stream(outcome):
                outcome.on_break = _error_event
            return outcome
        if outcome.status >= 300:
            # The provider's error through the pivot, or the gateway's own (a timeout, no
            # connection) on either kind of target.
            outcome.body = chat_error_to_messages(outcome.status, body)
        elif isinstance(mapped := at.notes[self], _Mapped):
            outcome.body = chat_to_messages_answer(body, mapped.model, mapped.stop)
        return outcome

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> _MessagesEvents | WholeEvents | None:
        mapped = at.notes[self]
        if isinstance(mapped, _Mapped) and outcome.mapper is not None:
            return _MessagesEvents(mapped)
        return WholeEvents() if relayed_stream(outcome) else None


class _Pivot:
    """The request as the chat pivot: the body in OpenAI's own fields, the decoded request with
    fastgate's extensions, and the body with them for the mappings that read them (made once)."""

    __slots__ = ("_extended", "body", "stop", "view")

    def __init__(self, body: bytes, view: RawContentChatRequest) -> None:
        self.body = body
        self.view = view
        self._extended: bytes | None = None
        stop = view.stop
        #: The one stop sequence, if the request had exactly one: an answer that says a stop
        #: sequence ended it, but not which, names this one.
        self.stop = stop if isinstance(stop, str) else stop[0] if stop and len(stop) == 1 else None

    def extended(self) -> bytes:
        if self._extended is None:
            self._extended = json_encoder.encode(self.view)
        return self._extended


class _Mapped:
    """An attempt through the pivot: what its answer is mapped back with."""

    __slots__ = ("model", "stop")

    def __init__(self, model: str, stop: str | None) -> None:
        self.model = model
        self.stop = stop


def _error_event(message: str) -> bytes:
    """Anthropic's ``error`` event (https://docs.anthropic.com/en/docs/build-with-claude/streaming#error-events)."""
    return _ERROR_EVENT + chat_error_to_messages(502, error_body(502, message, type="api_error")) + b"\n\n"


class _MessagesEvents:
    """The chat stream the pivot gives, as Anthropic's events."""

    __slots__ = ("stream",)

    def __init__(self, mapped: _Mapped) -> None:
        self.stream = ChatToMessagesStream(mapped.model, mapped.stop)

    def feed(self, out: bytes) -> bytes:
        return self.stream.feed(out) if out else out

    async def end(self) -> bytes:
        return self.stream.finish()
