"""OpenAI's Responses API in front of every provider (``POST /v1/responses``).

A target that speaks Responses itself (``openai``, ``azure-openai``, ``mock``) gets the request as
the client sent it, and its answer is relayed as it comes. Any other target is reached through
the chat pivot: the request becomes an OpenAI chat request once per exchange, when the first such
target is tried (``responses_to_chat``, ``mapping/responses_ingress.pxi``), goes through that
provider's own mapping, and its answer or stream comes back as a Response (errors are OpenAI's
shape already), kept when ``store`` asks. A fallback across both kinds answers a Response every
time.

The stage sits after the keys stage (a virtual key decides the provider) and before the others,
so they see the call as it will be made, and its answer last, once they have seen it as chat
(usage for limits, the chat answer for the cache).
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from fastgate._transforms import ResponsesStream, ResponsesTurn, responses_to_chat
from fastgate.errors import GatewayError
from fastgate.gateway.pipeline import Attempt, Exchange, Stage
from fastgate.gateway.relay import Outcome
from fastgate.providers.base import Endpoint
from fastgate.providers.registry import get_provider
from fastgate.schema.responses import ResponsesRequest
from fastgate.store.base import StoreUnavailable
from fastgate.store.responses import ResponseStore

log = logging.getLogger("fastgate")

#: The exchange's ingress format (``Exchange.ingress``) this stage serves.
RESPONSES = "responses"


class Ingress(msgspec.Struct, kw_only=True):
    """One Responses exchange: the request, and its chat form once a target needed it."""

    request: ResponsesRequest
    #: The conversation ``previous_response_id`` continues, when this server keeps it, and the
    #: gateway key that made it (only its owner may continue it).
    history: bytes | None = None
    history_owner: str = ""
    turn: ResponsesTurn | None = None


def owner(ex: Exchange) -> str:
    """Whose responses the exchange makes and reads: its gateway key's (none: the server's)."""
    return ex.key.id if ex.key is not None else ""


def previous_not_found(response_id: str) -> GatewayError:
    return GatewayError(
        400,
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def _thinks(req: ResponsesRequest, overrides: dict[str, Any] | None) -> bool:
    """Whether the provider may think: asked through ``reasoning`` or a config's ``thinking``."""
    reasoning = req.reasoning
    if reasoning is not None and reasoning.effort not in (None, "none", "minimal"):
        return True
    return bool(overrides and overrides.get("thinking"))


class ResponsesStage(Stage):
    def __init__(self, store: ResponseStore) -> None:
        self.store = store

    def arrive(self, ex: Exchange) -> bool:
        return ex.ingress == RESPONSES

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        ingress: Ingress = ex.noted(self)
        call = at.call
        target = call.target
        if get_provider(target.provider).speaks(Endpoint.RESPONSES, ex.view.model or ""):
            call.endpoint, call.path = Endpoint.RESPONSES, "/responses"
            return False
        turn = ingress.turn
        if turn is None:  # the first target that needs the pivot: mapped once per exchange
            req = ingress.request
            if req.previous_response_id is not None and (
                ingress.history is None or ingress.history_owner != owner(ex)
            ):
                raise previous_not_found(req.previous_response_id)
            turn = ingress.turn = responses_to_chat(req, ingress.history)
        call.endpoint, call.body, call.view = Endpoint.CHAT, turn.body, turn.request
        if target.strict_open_ai_compliance and _thinks(ingress.request, target.override_params):
            # Thinking comes back only in a non-strict answer (Portkey's content_blocks).
            call.target = msgspec.structs.replace(target, strict_open_ai_compliance=False)
        at.notes[self] = turn
        return True

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        turn: ResponsesTurn = at.notes[self]
        if outcome.body is None or not 200 <= outcome.status < 300:
            return outcome  # an error is OpenAI's shape already; a stream is watched
        try:
            outcome.body = turn.answer(outcome.body)
        except GatewayError as exc:
            outcome.status, outcome.body = exc.status, exc.body()
            return outcome
        await self.keep(turn, owner(ex))
        return outcome

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> _ResponsesEvents | None:
        if outcome.mapper is None:
            return None
        return _ResponsesEvents(self, at.notes[self], owner(ex))

    async def keep(self, turn: ResponsesTurn, owner: str) -> None:
        """Store the answered turn (``store``); a store that cannot be reached costs the client
        nothing but the record."""
        record = turn.record()
        if not turn.store or record is None:
            return
        record.owner = owner
        try:
            await self.store.put(turn.id, record)
        except StoreUnavailable as exc:
            log.warning("response %s not stored: %s", turn.id, exc)


class _ResponsesEvents:
    """The chat stream the pivot gives, as Responses' events; kept once it ended."""

    __slots__ = ("owner", "stage", "stream", "turn")

    def __init__(self, stage: ResponsesStage, turn: ResponsesTurn, owner: str) -> None:
        self.stage = stage
        self.turn = turn
        self.owner = owner
        self.stream: ResponsesStream = turn.stream_mapper()

    def feed(self, out: bytes) -> bytes:
        return self.stream.feed(out)

    async def end(self) -> bytes:
        tail = self.stream.finish()
        await self.stage.keep(self.turn, self.owner)
        return tail
