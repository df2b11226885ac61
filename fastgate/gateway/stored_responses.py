"""The stored Responses' routes, for the responses fastgate answered through the chat translation:
``GET /v1/responses/{id}``, ``DELETE /v1/responses/{id}`` and ``GET /v1/responses/{id}/input_items``
(https://platform.openai.com/docs/api-reference/responses/get, .../delete, .../input-items).

A response is its owner's (the gateway key that made it, ``owner_of`` the request; a server
without keys has one owner). One the store does not hold for the caller may be the provider's own
(OpenAI keeps what it answered through the passthrough): ``on_miss`` relays the request there;
without it, a 404 in OpenAI's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

import msgspec

from fastgate.errors import GatewayError, bad_request
from fastgate.schema.responses import StoredResponse
from fastgate.server.messages import Request, Response
from fastgate.server.router import Handler
from fastgate.store.base import StoreUnavailable
from fastgate.store.responses import ResponseStore

#: The caller's identity, for a response's owner (raises when the caller may not call at all).
Owner = Callable[[Request], str]
_encode = msgspec.json.Encoder().encode
_decode_items = msgspec.json.Decoder(list[dict[str, Any]]).decode


class ItemList(msgspec.Struct):
    data: list[dict[str, Any]]
    first_id: str | None
    last_id: str | None
    has_more: bool
    object: str = "list"


class Deleted(msgspec.Struct):
    id: str
    object: str = "response"
    deleted: bool = True


def not_found(response_id: str) -> GatewayError:
    return GatewayError(404, f"Response with id '{response_id}' not found.")


def unavailable(exc: StoreUnavailable) -> GatewayError:
    return GatewayError(503, f"stored responses are unavailable: {exc}", type="api_error")


def _page(items: list[dict[str, Any]], query: str) -> ItemList:
    """``limit`` (1-100, default 20), ``order`` (``desc`` by default, as OpenAI's) and ``after``."""
    params = {k: v[-1] for k, v in parse_qs(query).items()}
    try:
        limit = int(params.get("limit", 20))
    except ValueError:
        raise bad_request("limit must be an integer", param="limit") from None
    if not 1 <= limit <= 100:
        raise bad_request("limit must be between 1 and 100", param="limit")
    order = params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request("order must be asc or desc", param="order")
    if order == "desc":
        items = items[::-1]
    after = params.get("after")
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    first = page[0].get("id") if page else None
    last = page[-1].get("id") if page else None
    return ItemList(page, first, last, len(items) > limit)


class StoredResponses:
    """Route handlers over a response store."""

    def __init__(
        self, store: ResponseStore, owner_of: Owner | None = None, on_miss: Handler | None = None
    ) -> None:
        self.store = store
        self.owner_of = owner_of
        self.on_miss = on_miss

    async def _miss(self, request: Request, response_id: str) -> Response | None:
        if self.on_miss is None:
            raise not_found(response_id)
        return await self.on_miss(request)

    async def _record(self, request: Request) -> StoredResponse | None:
        """The caller's record of the response the path names."""
        owner = self.owner_of(request) if self.owner_of is not None else ""
        try:
            record = await self.store.get(request.match_info["id"])
        except StoreUnavailable as exc:
            raise unavailable(exc) from None
        return record if record is not None and record.owner == owner else None

    async def retrieve(self, request: Request) -> Response | None:
        record = await self._record(request)
        if record is None:
            return await self._miss(request, request.match_info["id"])
        return Response(200, bytes(record.response))

    async def delete(self, request: Request) -> Response | None:
        response_id = request.match_info["id"]
        if await self._record(request) is None:
            return await self._miss(request, response_id)
        try:
            await self.store.delete(response_id)
        except StoreUnavailable as exc:
            raise unavailable(exc) from None
        return Response(200, _encode(Deleted(response_id)))

    async def input_items(self, request: Request) -> Response | None:
        record = await self._record(request)
        if record is None:
            return await self._miss(request, request.match_info["id"])
        return Response(200, _encode(_page(_decode_items(record.input_items), request.query)))
