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

from fastgate._transforms import (
    ChatToMessagesStream,
    chat_error_to_messages,
    chat_to_messages_answer,
    estimate_messages_tokens,
    messages_to_chat_request,
)
from fastgate.gateway.pipeline import Attempt, Exchange, Stage
from fastgate.gateway.relay import Outcome
from fastgate.providers.base import Endpoint
from fastgate.providers.registry import get_provider

#: The exchange's ingress format (``Exchange.ingress``) this stage serves.
MESSAGES = "messages"
#: An attempt's note: a token count this target cannot make, estimated here.
_ESTIMATE = object()


class MessagesStage(Stage):
    def arrive(self, ex: Exchange) -> bool:
        return ex.ingress == MESSAGES

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        call = at.call
        model = ex.view.model or ""
        native = Endpoint.MESSAGES_COUNT if ex.endpoint is Endpoint.MESSAGES_COUNT else Endpoint.MESSAGES
        if get_provider(call.target.provider).speaks(native, model):
            call.endpoint, call.path = native, "/" + native.value
            at.notes[self] = None
            return True
        if native is Endpoint.MESSAGES_COUNT:
            at.notes[self] = _ESTIMATE  # no way to count here: ``before`` answers with an estimate
            return True
        pivot = ex.noted(self)
        if pivot is None:  # the first target that needs the pivot: mapped once per exchange
            pivot = messages_to_chat_request(ex.body)
            ex.note(self, pivot)
        call.endpoint = Endpoint.CHAT
        call.body, call.view = pivot
        at.notes[self] = model
        return True

    async def before(self, ex: Exchange, at: Attempt) -> Outcome | None:
        if at.notes[self] is not _ESTIMATE:
            return None
        return Outcome(status=200, provider=at.provider, call=at.call, body=estimate_messages_tokens(ex.body))

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        body = outcome.body
        if body is None:
            return outcome  # relayed as it comes (native), or a stream (the watcher maps it)
        if outcome.status >= 300:
            # The provider's error through the pivot, or the gateway's own (a timeout, no
            # connection) on either kind of target.
            outcome.body = chat_error_to_messages(outcome.status, body)
        elif isinstance(model := at.notes[self], str):
            outcome.body = chat_to_messages_answer(body, model)
        return outcome

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> _MessagesEvents | None:
        model = at.notes[self]
        return _MessagesEvents(model) if isinstance(model, str) and outcome.mapper is not None else None


class _MessagesEvents:
    """The chat stream the pivot gives, as Anthropic's events."""

    __slots__ = ("stream",)

    def __init__(self, model: str) -> None:
        self.stream = ChatToMessagesStream(model)

    def feed(self, out: bytes) -> bytes:
        return self.stream.feed(out) if out else out

    async def end(self) -> bytes:
        return self.stream.finish()
