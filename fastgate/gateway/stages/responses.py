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
from fastgate.gateway.stages.relayed_events import WholeEvents, relayed_stream
from fastgate.providers.base import Endpoint
from fastgate.providers.registry import get_provider
from fastgate.schema.responses import ResponseFailed, ResponsesRequest, StreamError
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
            at.notes[self] = None
            return ex.stream  # a relayed stream is watched (a break midway), nothing else is
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

    def remap(self, ex: Exchange, at: Attempt, request: dict[str, Any]) -> None:
        """A later stage changed the request (a guardrail's transformation): through the pivot,
        the attempt sends its chat form, and the Response tells of that turn."""
        turn = at.notes.get(self)
        if turn is None:
            return  # a target that speaks Responses: the request goes as it is
        try:
            req = msgspec.convert(request, ResponsesRequest)
        except msgspec.ValidationError as exc:
            raise GatewayError(400, f"Invalid request after guardrails: {exc}") from None
        turn = at.notes[self] = responses_to_chat(req, ex.noted(self).history)
        at.call.body, at.call.view = turn.body, turn.request

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        turn: ResponsesTurn | None = at.notes[self]
        if turn is None or outcome.body is None or not 200 <= outcome.status < 300:
            return outcome  # an error is OpenAI's shape already; a stream is watched
        try:
            outcome.body = turn.answer(outcome.body)
        except GatewayError as exc:
            outcome.status, outcome.body = exc.status, exc.body()
            return outcome
        await self.keep(turn, owner(ex))
        return outcome

    def watch(
        self, ex: Exchange, at: Attempt, outcome: Outcome
    ) -> _ResponsesEvents | _RelayedResponseEvents | None:
        turn: ResponsesTurn | None = at.notes[self]
        if turn is not None and outcome.mapper is not None:
            return _ResponsesEvents(self, turn, owner(ex))
        if turn is None and relayed_stream(outcome):
            # A native stream that breaks off ends with ``error`` and ``response.failed``, as
            # the pivot's streams do.
            relayed = _RelayedResponseEvents()
            outcome.on_break = relayed.failed
            return relayed
        return None

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


class _RelayedResponseEvents(WholeEvents):
    """A native Responses stream passed on in whole events, minding what ending it after a break
    takes: the Response as ``response.created`` opened it, and the next ``sequence_number``
    (https://platform.openai.com/docs/api-reference/responses-streaming)."""

    __slots__ = ("opened", "sequence", "started")

    def __init__(self) -> None:
        super().__init__()
        self.started = False
        self.opened: dict[str, Any] | None = None
        self.sequence = 0

    def feed(self, out: bytes) -> bytes:
        events = super().feed(out)
        if events:
            if not self.started:
                self.started, self.opened = True, _opened(events)
            at = events.rfind(_SEQUENCE)
            if at >= 0:
                start = at + len(_SEQUENCE)
                digits = events[start : start + 24].lstrip()
                end = len(digits) - len(digits.lstrip(b"0123456789"))
                if end:
                    self.sequence = int(digits[:end]) + 1
        return events

    def failed(self, message: str) -> bytes:
        """``error``, then ``response.failed`` with the Response as it was opened."""
        out = _event(StreamError(self.sequence, message, code="server_error"))
        if self.opened is not None:
            response = {
                **self.opened,
                "status": "failed",
                "error": {"code": "server_error", "message": message},
            }
            out += _event(ResponseFailed(self.sequence + 1, msgspec.Raw(msgspec.json.encode(response))))
        return out


_SEQUENCE = b'"sequence_number":'


def _opened(events: bytes) -> dict[str, Any] | None:
    """The Response of the stream's first event, ``response.created`` (decoded once a stream)."""
    first = events.split(b"\n\n", 1)[0]
    for line in first.splitlines():
        if line.startswith(b"data:"):
            try:
                data = msgspec.json.decode(line[5:])
            except msgspec.DecodeError:
                return None
            response = data.get("response") if isinstance(data, dict) else None
            return response if isinstance(response, dict) else None
    return None


def _event(event: StreamError | ResponseFailed) -> bytes:
    data = msgspec.json.encode(event)
    name = event.__struct_config__.tag
    return b"event: " + str(name).encode() + b"\ndata: " + data + b"\n\n"
