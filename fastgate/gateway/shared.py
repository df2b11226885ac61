"""The shared state of one server process, built from the settings: store, key registry, guard,
stored Responses.

Without Redis: an in-process LRU and counters, key records in ``<data_dir>/keys.json``.
With ``redis_url`` (or the server config's ``[redis]`` block): all three in Redis, shared by
every worker and machine using it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from fastgate.cache.semantic import SemanticSettings
from fastgate.errors import GatewayError, StartupError
from fastgate.gateway.admin import AdminAPI
from fastgate.gateway.semantic import SemanticCache
from fastgate.keys.registry import KeyRegistry
from fastgate.keys.sealing import Sealer, SealError
from fastgate.limits.guard import Guard
from fastgate.limits.prices import Pricing
from fastgate.routing.breaker import CircuitStates
from fastgate.server.messages import Request, Response
from fastgate.server.router import Router
from fastgate.settings import Settings
from fastgate.ssrf import HostPolicy
from fastgate.store.base import Store, StoreUnavailable
from fastgate.store.memory import MemoryStore
from fastgate.store.records import FileRecords, Records
from fastgate.store.redis_config import RedisSettings, settings_from_url
from fastgate.store.responses import MemoryResponseStore, ResponseStore

if TYPE_CHECKING:
    from fastgate.store.client import RedisClient

log = logging.getLogger("fastgate")


class SharedState:
    def __init__(
        self,
        settings: Settings,
        pricing: Pricing,
        policy: HostPolicy,
        semantic: SemanticSettings | None = None,
        redis: RedisSettings | None = None,
    ) -> None:
        if settings.redis_url:
            redis = settings_from_url(settings.redis_url)
        self.redis: RedisClient | None = None
        store: Store
        records: Records | None
        responses: ResponseStore
        #: Circuit counts every replica shares (``shared_circuits``); None: each worker its own.
        self.circuits: CircuitStates | None = None
        if redis is not None:
            # Imported only here: a worker without Redis does not load its client (13 MB of RSS).
            from fastgate.store.client import RedisClient
            from fastgate.store.redis import RedisStore
            from fastgate.store.redis_records import RedisRecords
            from fastgate.store.redis_responses import RedisResponseStore

            self.redis = RedisClient(redis)
            store = RedisStore(self.redis)
            records = RedisRecords(self.redis)
            if settings.shared_circuits:
                self.circuits = store
            responses = RedisResponseStore(self.redis, settings.responses_ttl)
        else:
            store = MemoryStore(settings.cache_max_entries, settings.cache_max_bytes)
            records = FileRecords(settings.data_dir) if settings.data_dir else None
            responses = MemoryResponseStore(settings.responses_ttl)
        #: Limits refuse requests (503) while the store is unreachable: readiness depends on it.
        self.needs_store = self.redis is not None and not settings.limits_fail_open
        self.store = store
        self.responses = responses
        sealer = Sealer(settings.secret_key) if settings.secret_key else None
        self.registry = KeyRegistry(records, sealer=sealer) if records is not None else None
        self.guard = Guard(store, pricing, fail_open=settings.limits_fail_open)
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

    async def ready(self) -> bool:
        """Whether this server can answer as configured: false while the store its limits need
        is unreachable (with the limits failing closed); failing open, it can."""
        return not self.needs_store or self.redis is None or await self.redis.ping()

    async def stop(self) -> None:
        if self.registry is not None:
            await self.registry.stop()
        await self.guard.drain()
        await self.store.close()

    async def readiness(self, request: Request) -> Response:
        """``GET /ready``, for a load balancer: 503 while this server would refuse requests."""
        if await self.ready():
            return Response(200, b'{"status":"ready"}')
        error = GatewayError(
            503,
            "The shared store (Redis) is unreachable and limits fail closed",
            type="api_error",
            code="store_unavailable",
        )
        return Response(503, error.body())

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/ready", self.readiness)
        if self.admin is not None:
            self.admin.add_routes(router)
