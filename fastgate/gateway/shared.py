"""The shared state of one server process, built from the settings: store, key registry, guard,
stored Responses.

Without Redis: an in-process LRU and counters, key records in ``<data_dir>/keys.json``.
With ``redis_url``: all three in Redis, shared by every worker and machine using it.
"""

from __future__ import annotations

import logging

from fastgate.cache.semantic import SemanticSettings
from fastgate.errors import StartupError
from fastgate.gateway.admin import AdminAPI
from fastgate.gateway.semantic import SemanticCache
from fastgate.keys.registry import KeyRegistry
from fastgate.keys.sealing import Sealer, SealError
from fastgate.limits.guard import Guard
from fastgate.limits.prices import PriceTable
from fastgate.server.router import Router
from fastgate.settings import Settings
from fastgate.ssrf import HostPolicy
from fastgate.store.base import Store, StoreUnavailable
from fastgate.store.memory import MemoryStore
from fastgate.store.records import FileRecords, Records, RedisRecords
from fastgate.store.redis import RedisStore
from fastgate.store.resp import Redis
from fastgate.store.responses import MemoryResponseStore, RedisResponseStore, ResponseStore

log = logging.getLogger("fastgate")


class SharedState:
    def __init__(
        self,
        settings: Settings,
        prices: PriceTable,
        policy: HostPolicy,
        semantic: SemanticSettings | None = None,
    ) -> None:
        self.redis = Redis(settings.redis_url) if settings.redis_url else None
        store: Store
        records: Records | None
        if self.redis is not None:
            store = RedisStore(self.redis)
            records = RedisRecords(self.redis)
        else:
            store = MemoryStore(settings.cache_max_entries, settings.cache_max_bytes)
            records = FileRecords(settings.data_dir) if settings.data_dir else None
        self.store = store
        self.responses: ResponseStore = (
            RedisResponseStore(self.redis, settings.responses_ttl)
            if self.redis is not None
            else MemoryResponseStore(settings.responses_ttl)
        )
        sealer = Sealer(settings.secret_key) if settings.secret_key else None
        self.registry = KeyRegistry(records, sealer=sealer) if records is not None else None
        self.guard = Guard(store, prices, fail_open=settings.limits_fail_open)
        self.semantic = SemanticCache(semantic) if semantic else None
        self.admin = (
            AdminAPI(self.registry, store, settings.admin_token, policy)
            if self.registry is not None and settings.admin_token
            else None
        )

    async def start(self) -> None:
        if self.registry is None:
            return
        try:
            await self.registry.start()
        except (StoreUnavailable, SealError) as exc:
            # Without its key records a server cannot tell who may call it: it does not start.
            raise StartupError(f"key records unavailable: {exc}") from None
        if self.registry.sealer is None and self.registry.virtual:
            log.warning(
                "virtual key secrets are stored unencrypted: set FASTGATE_SECRET_KEY to seal new ones"
            )

    async def stop(self) -> None:
        if self.registry is not None:
            await self.registry.stop()
        await self.guard.drain()
        await self.store.close()

    def add_routes(self, router: Router) -> None:
        if self.admin is not None:
            self.admin.add_routes(router)
