"""The one pooled upstream HTTP client of a process, behind the SSRF policy.

Redirects are never followed (a redirect could point at a metadata address), and every name
is checked again on the addresses it resolves to before a socket opens.
"""

from __future__ import annotations

import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from fastgate.errors import GatewayError
from fastgate.settings import Settings
from fastgate.ssrf import HostPolicy


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses addresses the policy forbids."""

    def __init__(self, policy: HostPolicy) -> None:
        self._policy = policy
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        reason = None if self._policy.is_trusted(host) else self._policy.host_verdict(host)
        if reason is not None:
            raise GatewayError(400, f"Invalid custom_host: {reason} is not allowed", param="custom_host")
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if self._policy.resolved_verdict(host, r["host"]) is None]
        if not allowed:
            raise GatewayError(
                400,
                f"Invalid custom_host: {host} resolves to an address that is not allowed",
                param="custom_host",
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def make_session(settings: Settings, policy: HostPolicy) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=settings.pool_size,
        limit_per_host=0,
        ttl_dns_cache=300,
        resolver=GuardedResolver(policy),
        enable_cleanup_closed=False,
    )
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=settings.connect_timeout, sock_read=settings.read_timeout
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
