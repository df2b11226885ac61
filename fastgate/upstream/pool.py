"""A lean pooled HTTP/1.1 client for upstream calls, on asyncio protocols and a compiled parser.

aiohttp's ClientSession does a great deal per request that a relay does not need (cookie jars,
redirect handling, tracing signals, multidicts, payload objects); here a request is one write of
bytes built in one go (``connection.py`` reads the answer). Connections are kept alive per origin.
Read timeouts are kept by one watchdog per pool rather than a timer per wait: a request only notes
the time of its last byte, and the watchdog fails the connections that have gone quiet. Each
connection is filed under the watchdog's tick by which it could first time out and looked at then,
not at every tick: a worker holding 10,000 streams would otherwise walk them all every second.

A request is sent again on its own only when the upstream provably did not process it, the rule
of Go's net/http transport (``persistConn.shouldRetryRequest``): an idle connection the upstream
closed is never written to (``Connection.stale``), a write that could not begin is retried on a
new connection, and a reused connection that broke before any byte of the answer is retried only
for a request that may be repeated (GET, HEAD, OPTIONS, TRACE, or one with an ``Idempotency-Key``).
A POST the upstream may have received is never sent twice: it is a 502, or a retry that the
config's ``retry`` asks for; on a real provider a second send is a second bill.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time

from fastgate._transforms import UpstreamPoolCore, request_head
from fastgate.errors import bad_request
from fastgate.upstream.connection import (
    BodySource,
    Connection,
    NothingWritten,
    Origin,
    UpstreamConnectionError,
    UpstreamResponse,
    UpstreamTimeout,
)
from fastgate.upstream.dns import CachingResolver

#: A request-target is visible ASCII (RFC 9112 §3.2, RFC 3986): a space or line break in it
#: would end the request line early and let the rest be read as headers.
_BAD_TARGET = re.compile(r"[^\x21-\x7e]")
#: Methods whose requests carry a Content-Length even with no body.
_BODY_METHODS = ("POST", "PUT", "PATCH")
#: Entries kept in the per-URL caches before they start over.
_MAX_CACHED = 4096
#: Longest interval between two watchdog rounds (shorter when the read timeout is short).
_WATCH_S = 1.0
#: Methods RFC 9110 §9.2.2 makes idempotent that carry no body to replay (Go's ``isReplayable``).
_REPLAYABLE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: Headers by which a client says the upstream deduplicates a repeated request (Go's rule too).
_IDEMPOTENCY_KEYS = frozenset({"idempotency-key", "x-idempotency-key"})


def replayable(method: str, headers: dict[str, str]) -> bool:
    """Whether a request may be sent again after the upstream may have received it."""
    return method in _REPLAYABLE or any(name.lower() in _IDEMPOTENCY_KEYS for name in headers)


def split_url(url: str, cache: dict[str, Origin]) -> tuple[Origin, str]:
    """``(origin, request-target)`` for an absolute http(s) URL."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise bad_request(f"unsupported upstream URL scheme in {url[:60]!r}")
    slash = rest.find("/")
    authority, target = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    cache_key = scheme + "://" + authority
    origin = cache.get(cache_key)
    if origin is None:
        host, port_text = authority, ""
        if authority.startswith("["):
            end = authority.find("]")
            host, port_text = authority[1:end], authority[end + 2 :]
        elif authority.count(":") == 1:
            host, port_text = authority.split(":")
        port = int(port_text) if port_text else (443 if scheme == "https" else 80)
        origin = Origin(scheme, host.lower(), port)
        if len(cache) >= _MAX_CACHED:
            cache.clear()
        cache[cache_key] = origin
    return origin, target


class UpstreamPool(UpstreamPoolCore):
    """Kept-alive connections per origin, opened through the SSRF-guarded resolver (what a
    request does to the idle and busy connections is compiled: ``kernels/pool.pxi``)."""

    def __init__(
        self,
        resolver: CachingResolver,
        connect_timeout: float,
        read_timeout: float,
        idle_timeout: float = 15.0,
        max_idle_per_origin: int = 256,
        *,
        max_body: int = 64 * 1024 * 1024,
        max_stream_seconds: float = 3600.0,
        max_frame: int = 16 * 1024 * 1024,
        websocket_idle_s: float = 300.0,
    ) -> None:
        super().__init__(
            read_timeout,
            idle_timeout,
            max_stream_seconds,
            max_body,
            max_idle_per_origin,
            min(_WATCH_S, max(read_timeout / 4, 0.01)),
        )
        self.resolver = resolver
        self.connect_timeout = connect_timeout
        #: A relayed WebSocket's largest message and longest silence (``gateway/realtime.py``).
        self.max_frame = max_frame
        self.websocket_idle_s = websocket_idle_s
        self._origins: dict[str, Origin] = {}
        #: (method, URL) → origin and the request line with Host, checked once.
        self._request_lines: dict[tuple[str, str], tuple[Origin, str]] = {}
        self._ssl: ssl.SSLContext | None = None

    def _sweep(self) -> None:
        """Close connections idle past ``idle_timeout``: an origin used once must not keep its
        sockets (and the peer's) open until the peer happens to close them."""
        self._sweep_handle = None
        now = time.monotonic()
        for key, idle in list(self._idle.items()):
            kept = []
            for conn in idle:
                if not conn.closed and now - conn.idle_since < self.idle_timeout:
                    kept.append(conn)
                else:
                    conn.abort()
            if kept:
                self._idle[key] = kept
            else:
                del self._idle[key]
        if self._idle:
            self._sweep_handle = asyncio.get_running_loop().call_later(self.idle_timeout, self._sweep)

    async def _open(self, origin: Origin) -> Connection:
        loop = asyncio.get_running_loop()
        if origin.tls and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            async with asyncio.timeout(self.connect_timeout):
                addresses = await self.resolver.resolve(origin.host, origin.port)
                last: OSError | None = None
                for address in addresses:
                    try:
                        _, conn = await loop.create_connection(
                            lambda: Connection(self, origin),
                            address,
                            origin.port,
                            ssl=self._ssl if origin.tls else None,
                            server_hostname=origin.host if origin.tls else None,
                        )
                        return conn
                    except OSError as exc:
                        last = exc
                raise UpstreamConnectionError(f"cannot connect to {origin.host_header}: {last}")
        except TimeoutError:
            raise UpstreamTimeout(f"connecting to {origin.host_header} timed out") from None

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        upload: BodySource | None = None,
    ) -> UpstreamResponse:
        """Send a request and wait for its answer's head. ``upload``: a body streamed as it is
        read (``body`` is then None), with its Content-Length, or chunked when it has none."""
        known = self._request_lines.get((method, url))
        if known is None:
            origin, target = split_url(url, self._origins)
            if _BAD_TARGET.search(target):
                raise bad_request("the upstream URL has a space, control or non-ASCII character in its path")
            known = (origin, f"{method} {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n")
            if len(self._request_lines) >= _MAX_CACHED:
                self._request_lines.clear()
            self._request_lines[(method, url)] = known
        origin, start = known
        if upload is not None:
            length = upload.length
            if length < 0:
                headers = {**headers, "Transfer-Encoding": "chunked"}
        else:
            length = len(body or b"") if body is not None or method in _BODY_METHODS else -1
        try:
            request = request_head(start, headers, length, body)
        except ValueError as exc:
            raise bad_request(f"header {exc.args[0]!r} contains a line break or NUL") from None
        head_request = method == "HEAD"
        conn = self._take(origin)
        reused = conn is not None
        if conn is None:
            conn = await self._open(origin)
        while True:
            try:
                head = conn.send(request, head_request)
                if upload is not None:
                    await conn.write_body(upload, head)
                await head
                return UpstreamResponse(conn)
            except BaseException as exc:
                # Failed, timed out, or cancelled (the client went away, or a request_timeout
                # fired): the upstream may still answer on this connection, so it is never reused.
                head = None  # the failed future's exception holds this frame: no cycle through it
                conn.abort()
                if not (reused and _may_resend(exc, conn, method, headers)):
                    raise
            reused = False
            conn = await self._open(origin)

    async def close(self) -> None:
        if self._watch_handle is not None:
            self._watch_handle.cancel()
            self._watch_handle = None
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
            self._sweep_handle = None
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()
        await self.resolver.close()


def _may_resend(exc: BaseException, conn: Connection, method: str, headers: dict[str, str]) -> bool:
    """After a reused connection failed: whether the request goes once more on a new one. Only
    if none of it was written, or it broke before any byte of the answer and may be repeated."""
    if isinstance(exc, NothingWritten):
        return True
    return (
        isinstance(exc, UpstreamConnectionError) and not conn.parser.started and replayable(method, headers)
    )
