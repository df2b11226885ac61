"""Name resolution for upstream connections: cached, and judged by the SSRF policy.

Every name is checked on the addresses it resolves to before a socket opens, since a public
name may point at a private or metadata address. Results are cached for a short time so a new
connection does not cost a resolver thread round trip.
"""

from __future__ import annotations

import asyncio
import socket
import time

from fastgate.errors import GatewayError
from fastgate.ssrf import HostPolicy, parse_ip


class CachingResolver:
    def __init__(self, policy: HostPolicy, ttl: float = 60.0) -> None:
        self._policy = policy
        self._ttl = ttl
        self._cache: dict[tuple[str, int], tuple[float, list[str]]] = {}

    async def resolve(self, host: str, port: int) -> list[str]:
        trusted = self._policy.is_trusted(host)
        reason = None if trusted else self._policy.host_verdict(host)
        if reason is not None:
            raise GatewayError(400, f"Invalid custom_host: {reason} is not allowed", param="custom_host")
        literal = parse_ip(host)
        if literal is not None:
            return [str(literal)]
        key = (host, port)
        hit = self._cache.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        allowed = [a for a in addresses if trusted or self._policy.resolved_verdict(host, a) is None]
        if not allowed:
            raise GatewayError(
                400,
                f"Invalid custom_host: {host} resolves to an address that is not allowed",
                param="custom_host",
            )
        if len(self._cache) > 1024:
            self._cache.clear()
        self._cache[key] = (now + self._ttl, allowed)
        return allowed

    async def close(self) -> None:
        self._cache.clear()
