"""The Responses API as an ingress format: two stages around the chat path.

A ``POST /v1/responses`` exchange (``gateway/responses_api.py`` notes its decoded request and
engages these stages for it alone) is routed like a chat request, and each target decides how it
is reached. A provider that speaks
the Responses API itself gets the request as it came, and its answer is relayed as it is (the
passthrough). Any other gets the request mapped to chat (``responses_to_chat``, made once per
exchange, when the first such target is tried), through its own mapping, and its chat answer or
stream is mapped back to a Response, then kept when ``store`` asks.

Two stages because the work sits at both ends of the pipeline: the request is chosen after the
keys stage resolved the target (a virtual key names its provider) and before the limits and
cache stages read the call; the answer is mapped after every other stage saw it as chat (usage
for limits, the chat answer for the cache, the text for guardrails).
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
from fastgate.schema.responses import ResponsesRequest
from fastgate.store.base import StoreUnavailable
from fastgate.store.responses import ResponseStore

log = logging.getLogger("fastgate")

#: Providers that speak the Responses API themselves (OpenAI's API reference; Azure OpenAI's
#: ``/openai/v1/responses``; the mock).
NATIVE = frozenset({"openai", "azure-openai", "mock"})


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


class ResponsesRequestStage(Stage):
    """Picks each attempt's form: the request as it came to a provider that speaks Responses,
    or its chat form to any other (non-strict when the provider may think, as non-strict answers
    carry the thinking)."""

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        ingress: Ingress = ex.noted(self)
        call = at.call
        if call.target.provider in NATIVE:
            call.endpoint, call.path = Endpoint.PROXY, "/responses"
            return False
        turn = ingress.turn
        if turn is None:
            req = ingress.request
            if req.previous_response_id is not None and (
                ingress.history is None or ingress.history_owner != owner(ex)
            ):
                raise previous_not_found(req.previous_response_id)
            turn = ingress.turn = responses_to_chat(req, ingress.history)
        call.endpoint, call.body, call.view = Endpoint.CHAT, turn.body, turn.request
        target = call.target
        if target.strict_open_ai_compliance and _thinks(ingress.request, target.override_params):
            # Thinking comes back only in a non-strict answer (Portkey's content_blocks).
            call.target = msgspec.structs.replace(target, strict_open_ai_compliance=False)
        at.notes[self] = turn
        return True


class ResponsesAnswerStage(Stage):
    """Maps a chat answer (or stream) of a translated attempt back to a Response, and keeps it."""

    def __init__(self, request_stage: ResponsesRequestStage, store: ResponseStore) -> None:
        self.request_stage = request_stage
        self.store = store

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        return self.request_stage in at.notes

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        turn: ResponsesTurn = at.notes[self.request_stage]
        if outcome.body is None or not 200 <= outcome.status < 300:
            return outcome  # an error is OpenAI's shape already; a stream is watched
        try:
            outcome.body = turn.answer(outcome.body)
        except GatewayError as exc:
            outcome.status, outcome.body = exc.status, exc.body()
            return outcome
        await self.keep(turn, owner(ex))
        return outcome

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> _Translated:
        return _Translated(self, at.notes[self.request_stage], owner(ex))

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


class _Translated:
    """The chat stream as Responses' events; kept once it ended."""

    __slots__ = ("owner", "stage", "stream", "turn")

    def __init__(self, stage: ResponsesAnswerStage, turn: ResponsesTurn, owner: str) -> None:
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
