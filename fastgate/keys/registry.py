"""The server's view of the key records: a snapshot, looked up without I/O on the request path.

The snapshot is refreshed in the background when the records' version changes (another worker,
the CLI or the admin API wrote), so revoking a key takes effect within ``refresh_seconds``
everywhere, and at once in the process that revoked it. If the record source is unreachable
the last snapshot stays in force.

A sealed virtual key this process cannot open (no ``FASTGATE_SECRET_KEY``, or another one) does
not stop the others: it is listed, refused with a 500 when used, and named once in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import msgspec

from fastgate.errors import GatewayError
from fastgate.keys.models import (
    GatewayKey,
    VirtualKey,
    encode_record,
    gateway_key_decoder,
    hash_key,
    new_key,
    new_virtual_key,
    virtual_key_decoder,
)
from fastgate.keys.sealing import Sealer, SealError, unseal
from fastgate.store.base import StoreUnavailable
from fastgate.store.records import Records

log = logging.getLogger("fastgate.keys")


class KeyRegistry:
    def __init__(self, records: Records, refresh_seconds: float = 1.0, sealer: Sealer | None = None) -> None:
        self.records = records
        #: Seals virtual-key secrets on write and opens them on read; None: stored as they are.
        self.sealer = sealer
        self.refresh_seconds = refresh_seconds
        self.by_hash: dict[str, GatewayKey] = {}
        self.virtual: dict[str, VirtualKey] = {}
        #: Sealed virtual keys this process cannot open, as stored.
        self.locked: dict[str, VirtualKey] = {}
        self._version: object = object()
        self._task: asyncio.Task[None] | None = None
        #: What the log has been told: the locked slugs, the last refresh failure.
        self._reported: set[str] = set()
        self._failure = ""

    @property
    def required(self) -> bool:
        """Once any gateway key exists, every inference request must carry one."""
        return bool(self.by_hash)

    async def refresh(self) -> None:
        version = await self.records.version()
        if version == self._version:
            return
        if version is None and (self.by_hash or self.virtual):
            # The records vanished (a Redis restarted without persistence, the file deleted):
            # keep enforcing the keys we know rather than open the gateway to everyone.
            log.error("key records are gone from their store; keeping the last ones known")
            return
        snapshot = await self.records.load()
        by_hash: dict[str, GatewayKey] = {}
        for raw in snapshot["keys"].values():
            key = gateway_key_decoder.decode(raw)
            by_hash[key.hash] = key
        virtual: dict[str, VirtualKey] = {}
        locked: dict[str, VirtualKey] = {}
        for raw in snapshot["virtual_keys"].values():
            vk = virtual_key_decoder.decode(raw)
            try:
                virtual[vk.slug] = unseal(vk, self.sealer)
            except SealError:
                locked[vk.slug] = vk
        self.by_hash, self.virtual, self.locked = by_hash, virtual, locked
        self._version = version

    def _report_locked(self) -> None:
        """Name the virtual keys that cannot be opened, each once (not at every refresh)."""
        new = sorted(set(self.locked) - self._reported)
        self._reported = set(self.locked)
        if new:
            why = "do not open with this FASTGATE_SECRET_KEY" if self.sealer else "need FASTGATE_SECRET_KEY"
            log.warning(
                "virtual keys %s are sealed and %s: requests using them get a 500; every other key is served",
                ", ".join(new),
                why,
            )

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except (StoreUnavailable, OSError, msgspec.DecodeError) as exc:
                if str(exc) != self._failure:  # said once, not at every refresh
                    self._failure = str(exc)
                    log.warning("key records not refreshed (%s); keeping the last ones", exc)
                continue
            if self._failure:
                self._failure = ""
                log.warning("key records refreshed again")
            self._report_locked()

    async def start(self) -> None:
        await self.refresh()
        self._report_locked()
        self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # ---- the request path -------------------------------------------------------------------

    def authenticate(self, token: str | None, *, from_bearer: bool = False) -> GatewayKey:
        """``from_bearer``: the token is the ``Authorization`` bearer, maybe a provider key."""
        if token and from_bearer:
            key = self.by_hash.get(hash_key(token))
            if key is not None:
                return key
            token = None
        if not token:
            raise GatewayError(
                401,
                "A gateway API key is required: send x-portkey-api-key",
                type="authentication_error",
                code="missing_api_key",
            )
        key = self.by_hash.get(hash_key(token))
        if key is None:
            raise GatewayError(
                401, "Invalid gateway API key", type="authentication_error", code="invalid_api_key"
            )
        return key

    def resolve(self, slug: str) -> VirtualKey:
        vk = self.virtual.get(slug)
        if vk is None and slug in self.locked:
            raise GatewayError(
                500,
                f"Virtual key {slug!r} is sealed and this server cannot open it (FASTGATE_SECRET_KEY)",
                type="api_error",
                param="virtual_key",
                code="virtual_key_sealed",
            )
        if vk is None:
            # The slug is the client's own value: safe to echo; the secret never is.
            raise GatewayError(
                401,
                f"Invalid virtual key {slug!r}",
                type="authentication_error",
                param="virtual_key",
                code="invalid_virtual_key",
            )
        return vk

    # ---- management (CLI, admin API) ---------------------------------------------------------

    async def add_key(self, name: str, **policy: Any) -> tuple[str, GatewayKey]:
        token, key = new_key(name, **policy)
        await self.records.put("keys", key.hash, encode_record(key))
        self.by_hash[key.hash] = key
        return token, key

    async def add_virtual_key(self, provider: str, secret: str, name: str = "", **fields: Any) -> VirtualKey:
        vk = new_virtual_key(provider, secret, name, **fields)
        stored = self.sealer.seal(vk) if self.sealer is not None else vk
        await self.records.put("virtual_keys", vk.slug, encode_record(stored))
        self.virtual[vk.slug] = vk
        return vk

    async def list_keys(self) -> list[GatewayKey]:
        await self.refresh()
        return sorted(self.by_hash.values(), key=lambda k: k.created)

    async def list_virtual_keys(self) -> list[VirtualKey]:
        """Every virtual key, the ones this process cannot open included (listing needs no secret)."""
        await self.refresh()
        return sorted([*self.virtual.values(), *self.locked.values()], key=lambda k: k.created)

    async def revoke_key(self, ident: str) -> bool:
        """Revoke by id or name."""
        await self.refresh()
        for key in list(self.by_hash.values()):
            if ident in (key.id, key.name):
                await self.records.delete("keys", key.hash)
                self.by_hash.pop(key.hash, None)
                return True
        return False

    async def revoke_virtual_key(self, slug: str) -> bool:
        found = await self.records.delete("virtual_keys", slug)
        self.virtual.pop(slug, None)
        self.locked.pop(slug, None)
        return found
