"""The shared Redis as the stores use it: commands in, replies out, whatever its topology.

One node, a Sentinel-managed primary or a Cluster (asked of the server unless configured) all
look the same to a caller: :meth:`RedisClient.pipeline` sends commands in one round trip,
:meth:`RedisClient.execute` one command, :meth:`RedisClient.run_scripts` Lua scripts by their
SHA1. A store of its own (stored responses, say) takes the server's client and calls these::

    await redis.execute("SET", "fastgate:responses:" + rid, body, "EX", 3600)
    body = await redis.execute("GET", "fastgate:responses:" + rid)

An unreachable Redis raises :class:`StoreUnavailable`; an error reply raises (or, in a
pipeline, returns) redis-py's ``ResponseError``. In a Cluster, the keys of one command (one
script) must share a hash tag (``{...}``); the commands of one pipeline need not.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import NoScriptError, ResponseError

from fastgate.store.base import StoreUnavailable
from fastgate.store.cluster import Address, ClusterClient
from fastgate.store.multiplexed import RETRY_INTERVAL, Arg, Command, Multiplexed
from fastgate.store.redis_config import RedisSettings, settings_from_url


class Script:
    """A Lua script run with ``EVALSHA``, sent whole (``EVAL``) where the server lacks it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: Sequence[str], args: Sequence[Arg]) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)


ScriptCall = tuple[Script, Sequence[str], Sequence[Arg]]


class RedisClient:
    def __init__(self, settings: RedisSettings, *, retry_interval: float = RETRY_INTERVAL) -> None:
        self.settings = settings
        self.retry_interval = retry_interval
        self.where = settings.describe()
        self._route: Multiplexed | ClusterClient | None = None
        #: Sentinel mode: the pool that looks up the primary (its connections hold it weakly).
        self._sentinel_pool: SentinelConnectionPool | None = None
        self._open_lock = asyncio.Lock()
        self._probe: Multiplexed | None = None
        #: ``SCRIPT LOAD`` of every preloaded script, sent on each new connection.
        self._setup: list[Command] = []

    def preload(self, *scripts: Script) -> None:
        """Load these scripts on every connection as it opens (every primary, a new primary
        after a failover), so their first ``EVALSHA`` finds them."""
        self._setup += [("SCRIPT", "LOAD", script.source) for script in scripts]

    @classmethod
    def from_url(cls, url: str, *, retry_interval: float = RETRY_INTERVAL) -> RedisClient:
        return cls(settings_from_url(url), retry_interval=retry_interval)

    @property
    def cluster(self) -> bool | None:
        """Whether Redis is a Cluster (None until known)."""
        if self._route is None:
            return self.settings.cluster
        return isinstance(self._route, ClusterClient)

    def _node(self, address: Address) -> Multiplexed:
        kwargs = self.settings.connection_kwargs()
        kind = SSLConnection if self.settings.tls else Connection

        def connect() -> AbstractConnection:
            return kind(host=address[0], port=address[1], **kwargs)

        where = f"{address[0]}:{address[1]}"
        return Multiplexed(
            connect,
            where,
            timeout=self.settings.timeout,
            retry_interval=self.retry_interval,
            setup=self._setup,
        )

    def _sentinel_primary(self) -> Multiplexed:
        s = self.settings
        assert s.service is not None
        auth = {"username": s.sentinel_username, "password": s.sentinel_password}
        timeouts = {"socket_timeout": s.timeout, "socket_connect_timeout": s.timeout}
        kwargs = s.connection_kwargs()
        tls = {k: v for k, v in kwargs.items() if k.startswith("ssl_")}
        sentinel = Sentinel(
            s.addresses(),
            sentinel_kwargs={**auth, **timeouts, **tls, "ssl": s.tls, "protocol": 2},
        )
        pool = self._sentinel_pool = SentinelConnectionPool(s.service, sentinel, ssl=s.tls, **kwargs)
        where = f"the primary {s.service!r} (Sentinel)"
        return Multiplexed(
            pool.make_connection,
            where,
            timeout=s.timeout,
            retry_interval=self.retry_interval,
            setup=self._setup,
        )

    def _cluster(self, known: dict[Address, Multiplexed]) -> ClusterClient:
        return ClusterClient(
            self.settings.addresses(), self._node, known=known, refresh_interval=self.retry_interval
        )

    async def _open(self) -> Multiplexed | ClusterClient:
        async with self._open_lock:
            if self._route is not None:
                return self._route
            mode = self.settings.mode
            if mode == "sentinel":
                self._route = self._sentinel_primary()
            elif mode == "cluster":
                self._route = self._cluster({})
            elif mode == "node":
                self._route = self._node(self.settings.addresses()[0])
            else:
                self._route = await self._detect()
            return self._route

    async def _detect(self) -> Multiplexed | ClusterClient:
        """``INFO cluster`` on the first node: a Cluster says ``cluster_enabled:1``."""
        seed = self.settings.addresses()[0]
        probe = self._probe = self._probe or self._node(seed)
        (info,) = await probe.pipeline([("INFO", "cluster")])
        if isinstance(info, ResponseError):
            raise StoreUnavailable(f"Redis at {self.where} refused INFO: {info}")
        if b"cluster_enabled:1" not in info:
            return probe
        return self._cluster({seed: probe})

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Replies in order; error replies come back as ``ResponseError`` values."""
        route = self._route or await self._open()
        return await route.pipeline(commands)

    async def execute(self, *command: Arg) -> Any:
        (reply,) = await self.pipeline([command])
        if isinstance(reply, ResponseError):
            raise reply
        return reply

    async def run_scripts(self, calls: Sequence[ScriptCall], then: Sequence[Command] = ()) -> list[Any]:
        """Scripts, and the plain commands ``then``, in one round trip; a script the server does
        not know yet (a new server, a replica just promoted) is sent whole, once."""
        commands = [script.command(keys, args) for script, keys, args in calls]
        replies = await self.pipeline([*commands, *then])
        for i, (script, keys, args) in enumerate(calls):
            if isinstance(replies[i], NoScriptError):
                (replies[i],) = await self.pipeline([("EVAL", script.source, len(keys), *keys, *args)])
        return replies

    async def ping(self) -> bool:
        """Whether Redis answers now (every primary, in a Cluster)."""
        try:
            route = self._route or await self._open()
            if isinstance(route, ClusterClient):
                return await route.ping()
            return await route.pipeline([("PING",)]) == [b"PONG"]
        except StoreUnavailable:
            return False

    async def close(self) -> None:
        route = self._route or self._probe
        if route is not None:
            await route.close()
        if self._sentinel_pool is not None:
            await self._sentinel_pool.sentinel_manager.aclose()
