"""JSON Web Key Sets fetched over HTTP and kept for their ``cacheMaxAge``.

A token whose ``kid`` is not in the cached set makes the set be fetched again (keys rotate), but
at most once per :data:`REFETCH_COOLDOWN_S` per URL: tokens with made-up ``kid`` values must not
turn the gateway into a client that hammers the identity provider (Portkey refetches on every
miss). Concurrent requests for a set being fetched wait for that one fetch.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastgate.guardrails.transport import HttpTransport

REFETCH_COOLDOWN_S = 30.0
FETCH_TIMEOUT_S = 5.0


class JwksError(Exception):
    pass


class _Entry:
    __slots__ = ("expires", "fetched", "keys")

    def __init__(self, keys: dict[str, Any], fetched: float, expires: float) -> None:
        self.keys = keys
        self.fetched = fetched
        self.expires = expires


def parse_jwks(body: bytes) -> dict[str, Any]:
    """``kid`` → key usable by PyJWT, for every key of a JWKS document that has a ``kid``."""
    from jwt import PyJWK, PyJWKError  # the optional dependency fastgate[jwt]

    try:
        document = json.loads(body)
    except ValueError:
        raise JwksError("the JWKS is not JSON") from None
    found: dict[str, Any] = {}
    for jwk in document.get("keys") or () if isinstance(document, dict) else ():
        if isinstance(jwk, dict) and isinstance(jwk.get("kid"), str):
            try:
                found[jwk["kid"]] = PyJWK(jwk)
            except (PyJWKError, ValueError, TypeError):
                continue  # a key of a type or algorithm we cannot use: tokens signed by it fail
    return found


class JwksCache:
    def __init__(self, transport: HttpTransport, clock: Any = time.monotonic) -> None:
        self.transport = transport
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._fetching: dict[str, asyncio.Future[_Entry]] = {}

    async def key(self, uri: str, kid: str, max_age: float) -> Any | None:
        """The key ``kid`` of the set at ``uri``, or None when the set has no such key."""
        now = self.clock()
        entry = self._entries.get(uri)
        if entry is None or entry.expires <= now:
            entry = await self._fetch(uri, max_age)
        found = entry.keys.get(kid)
        if found is None and now - entry.fetched >= REFETCH_COOLDOWN_S:
            entry = await self._fetch(uri, max_age)
            found = entry.keys.get(kid)
        return found

    async def _fetch(self, uri: str, max_age: float) -> _Entry:
        pending = self._fetching.get(uri)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._fetching[uri] = future
        try:
            answer = await self.transport.request(
                "GET", uri, {"Accept": "application/json"}, None, FETCH_TIMEOUT_S
            )
            if not 200 <= answer.status < 300:
                raise JwksError(f"Failed to fetch JWKS from {uri}")
            now = self.clock()
            entry = _Entry(parse_jwks(answer.body), now, now + max_age)
            self._entries[uri] = entry
            future.set_result(entry)
            return entry
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: a failure nobody else waited for is not "never retrieved"
            raise
        finally:
            del self._fetching[uri]
