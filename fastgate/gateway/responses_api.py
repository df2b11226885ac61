"""``/v1/responses``: OpenAI's Responses API in front of every provider (docs/responses.md).

``POST`` decodes the request once, finds the stored conversation its ``previous_response_id``
continues, and hands the exchange to the gateway; the Responses stage (``stages/responses.py``)
reaches each target in its own form and maps the answer back. The stored responses' routes answer
from the store, or relay to the provider when the caller's target keeps its own (OpenAI).
"""

from __future__ import annotations

import msgspec

from fastgate.errors import GatewayError, bad_request
from fastgate.gateway.handlers import Gateway, body_error
from fastgate.gateway.pipeline import Exchange
from fastgate.gateway.stages.responses import RESPONSES, Ingress, ResponsesStage, owner
from fastgate.gateway.stored_responses import StoredResponses, not_found, unavailable
from fastgate.jsontext import check_duplicate_keys, check_text
from fastgate.providers.base import Endpoint
from fastgate.providers.registry import get_provider
from fastgate.routing.plan import Leaf
from fastgate.schema.openai import RequestView
from fastgate.schema.responses import ResponsesRequest, request_decoder
from fastgate.server.messages import Request, Response
from fastgate.server.router import Router
from fastgate.store.base import StoreUnavailable
from fastgate.store.responses import ResponseStore

_JSON_TYPES = ("", "application/json")
_NO_VIEW = RequestView()


class ResponsesAPI:
    """The routes, and the stage the gateway's pipeline runs their exchanges through."""

    def __init__(self, gateway: Gateway, store: ResponseStore) -> None:
        self.gateway = gateway
        self.store = store
        self.stage = ResponsesStage(store)
        self.stored = StoredResponses(store, owner_of=self._caller, on_miss=self._provider_side)

    def add_routes(self, router: Router) -> None:
        """Before the passthrough's catch-all (patterns match in the order they were added)."""
        router.add("POST", "/v1/responses", self.create)
        router.add("GET", "/v1/responses/{id}", self.stored.retrieve)
        router.add("DELETE", "/v1/responses/{id}", self.stored.delete)
        router.add("GET", "/v1/responses/{id}/input_items", self.stored.input_items)

    async def create(self, request: Request) -> Response | None:
        req = _decoded(request)
        ingress = Ingress(request=req)
        if req.previous_response_id is not None:
            try:
                record = await self.store.get(req.previous_response_id)
            except StoreUnavailable as exc:
                raise unavailable(exc) from None
            if record is not None:
                ingress.history, ingress.history_owner = bytes(record.conversation), record.owner
        ex = Exchange(
            request=request,
            endpoint=Endpoint.CHAT,
            headers=request.headers,
            body=request.body,
            view=RequestView(model=req.model, stream=req.stream),
            stream=bool(req.stream),
            ingress=RESPONSES,
        )
        ex.note(self.stage, ingress)
        return await self.gateway.routed(ex)

    def _caller(self, request: Request) -> str:
        """The caller of a stored-response route, authenticated as any request is."""
        ex = Exchange(request=request, endpoint=Endpoint.PROXY, headers=request.headers, view=_NO_VIEW)
        self.gateway.pipeline.arrive(ex)
        return owner(ex)

    async def _provider_side(self, request: Request) -> Response | None:
        """A response this server does not hold: the provider's own, when the caller's one
        target speaks the Responses API (it keeps what it answered); else a 404."""
        reader = self.gateway.reader
        opts = reader.read(request.headers)
        root = (opts.plan or reader.plan_for_model(None, opts)).root
        if (
            not isinstance(root, Leaf)
            or Endpoint.RESPONSES not in get_provider(root.target.provider).endpoints
        ):
            raise not_found(request.match_info["id"])
        request.match_info["tail"] = request.decoded_path[len("/v1/") :]
        return await self.gateway.proxy(request)


def _decoded(request: Request) -> ResponsesRequest:
    """The request body, decoded once; what is wrong with it, a 400 (415: not JSON)."""
    body = request.body
    if request.content_type not in _JSON_TYPES:
        raise GatewayError(415, f"Unsupported content type {request.content_type!r}: send application/json")
    if not body:
        raise bad_request("Request body is empty: send a JSON object")
    check_text(body)
    try:
        req = request_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise body_error(exc) from None
    check_duplicate_keys(body)
    return req
