"""The admin HTTP API: gateway keys and virtual keys, behind an admin token.

Mounted only when ``FASTGATE_ADMIN_TOKEN`` (``Settings.admin_token``) is set. Every call
carries ``Authorization: Bearer <admin token>``. Secrets go in and never come back out: a
gateway key is shown once, in the answer that creates it; a virtual key's secret never.

    GET    /admin/keys                    POST /admin/keys           DELETE /admin/keys/{id}
    GET    /admin/virtual-keys            POST /admin/virtual-keys   DELETE /admin/virtual-keys/{slug}
    GET    /admin/keys/{id}/usage         GET  /admin/virtual-keys/{slug}/usage   (tokens and cost spent)
"""

from __future__ import annotations

import hmac
from typing import TypeVar

import msgspec

from fastgate.errors import GatewayError, bad_request
from fastgate.headers import bearer_token
from fastgate.keys.manage import NewKey, NewVirtualKey, check_virtual_key, create_key, create_virtual_key
from fastgate.keys.registry import KeyRegistry
from fastgate.server.messages import Request, Response
from fastgate.server.router import Router
from fastgate.ssrf import HostPolicy
from fastgate.store.base import Store, StoreUnavailable

_encode = msgspec.json.Encoder().encode
T = TypeVar("T")


def _json(data: object, status: int = 200) -> Response:
    return Response(status, _encode(data))


def check_admin_token(request: Request, token: bytes) -> None:
    """A 401 unless the request carries ``Authorization: Bearer <token>`` (compared in constant time)."""
    given = (bearer_token(request.headers.get("authorization")) or "").encode()
    if not hmac.compare_digest(given, token):
        raise GatewayError(
            401, "Invalid admin token", type="authentication_error", code="invalid_admin_token"
        )


class AdminAPI:
    def __init__(self, registry: KeyRegistry, store: Store, token: str, policy: HostPolicy) -> None:
        self.registry = registry
        self.store = store
        self._token = token.encode()
        self.policy = policy

    def _check(self, request: Request) -> None:
        check_admin_token(request, self._token)

    async def _body(self, request: Request, kind: type[T]) -> T:
        try:
            return msgspec.json.decode(request.body, type=kind)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise bad_request(f"Invalid body: {exc}") from None

    async def list_keys(self, request: Request) -> Response:
        self._check(request)
        return _json({"data": [k.public() for k in await self.registry.list_keys()]})

    async def add_key(self, request: Request) -> Response:
        self._check(request)
        token, public = await create_key(self.registry, await self._body(request, NewKey))
        return _json({**public, "key": token}, status=201)

    async def revoke_key(self, request: Request) -> Response:
        self._check(request)
        ident = request.match_info["ident"]
        if not await self.registry.revoke_key(ident):
            raise GatewayError(404, f"No gateway key {ident!r}", code="not_found")
        return _json({"revoked": ident})

    async def list_virtual_keys(self, request: Request) -> Response:
        self._check(request)
        return _json({"data": [k.public() for k in await self.registry.list_virtual_keys()]})

    async def add_virtual_key(self, request: Request) -> Response:
        self._check(request)
        spec = check_virtual_key(await self._body(request, NewVirtualKey), self.policy)
        return _json(await create_virtual_key(self.registry, spec), status=201)

    async def revoke_virtual_key(self, request: Request) -> Response:
        self._check(request)
        slug = request.match_info["slug"]
        if not await self.registry.revoke_virtual_key(slug):
            raise GatewayError(404, f"No virtual key {slug!r}", code="not_found")
        return _json({"revoked": slug})

    async def _usage(self, scope: str) -> Response:
        try:
            tokens, cost = await self.store.spent(scope)
        except StoreUnavailable:
            raise GatewayError(503, "Usage cannot be read right now", type="api_error") from None
        return _json({"tokens": tokens, "cost": cost})

    async def key_usage(self, request: Request) -> Response:
        self._check(request)
        ident = request.match_info["ident"]
        for key in await self.registry.list_keys():
            if ident in (key.id, key.name):
                return await self._usage(f"key:{key.id}")
        raise GatewayError(404, f"No gateway key {ident!r}", code="not_found")

    async def virtual_key_usage(self, request: Request) -> Response:
        self._check(request)
        slug = request.match_info["slug"]
        if slug not in {vk.slug for vk in await self.registry.list_virtual_keys()}:
            raise GatewayError(404, f"No virtual key {slug!r}", code="not_found")
        return await self._usage(f"virtual_key:{slug}")

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/admin/keys", self.list_keys)
        router.add("POST", "/admin/keys", self.add_key)
        router.add("DELETE", "/admin/keys/{ident}", self.revoke_key)
        router.add("GET", "/admin/virtual-keys", self.list_virtual_keys)
        router.add("POST", "/admin/virtual-keys", self.add_virtual_key)
        router.add("DELETE", "/admin/virtual-keys/{slug}", self.revoke_virtual_key)
        router.add("GET", "/admin/keys/{ident}/usage", self.key_usage)
        router.add("GET", "/admin/virtual-keys/{slug}/usage", self.virtual_key_usage)
