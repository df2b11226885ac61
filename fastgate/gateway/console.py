"""The console at ``/console``: a static page (HTML, JS and CSS from the package, no build step,
nothing fetched from elsewhere) and its two data feeds behind the admin token.

    GET /console                  the page (holds nothing secret)
    GET /console/static/{name}    its script and style sheet
    GET /console/api/snapshot     JSON: totals from the metrics, percentiles, circuits (admin token)
    GET /console/api/feed         server-sent events: one access entry per request (admin token)

The page asks for the token once and keeps it in the tab's session storage; it sends it as
``Authorization: Bearer``, reading the feed with ``fetch`` rather than ``EventSource`` (which
cannot send headers), so the token never appears in a URL or a log.
"""

from __future__ import annotations

from importlib import resources

import msgspec

from fastgate.errors import GatewayError
from fastgate.gateway.admin import check_admin_token
from fastgate.observability.feed import Feed
from fastgate.observability.snapshot import Snapshotter
from fastgate.server.messages import Request, Response
from fastgate.server.router import Router

#: A comment line this often keeps proxies and the browser from closing an idle feed.
KEEPALIVE_S = 15.0
_STATIC_TYPES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
#: The page may load only its own script and style, and talk only to its own origin.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}
_encode = msgspec.json.Encoder().encode


def _asset(name: str) -> bytes:
    """A file of the page, shipped in the package (``fastgate/observability/console/``)."""
    return resources.files("fastgate.observability").joinpath("console", name).read_bytes()


class Console:
    def __init__(self, feed: Feed, snapshotter: Snapshotter, admin_token: str | None) -> None:
        self.feed = feed
        self.snapshotter = snapshotter
        self._token = admin_token.encode() if admin_token else None
        self.page = _asset("index.html")
        self.static = {name: _asset(name) for name in _STATIC_TYPES}

    def _check(self, request: Request) -> None:
        if self._token is None:
            raise GatewayError(
                403,
                "The console's data needs an admin token: start the gateway with FASTGATE_ADMIN_TOKEN set",
                type="permission_error",
                code="admin_token_not_set",
            )
        check_admin_token(request, self._token)

    async def index(self, request: Request) -> Response:
        return Response(200, self.page, dict(_PAGE_HEADERS), content_type="text/html; charset=utf-8")

    async def asset(self, request: Request) -> Response:
        name = request.match_info["name"]
        body = self.static.get(name)
        if body is None:
            raise GatewayError(404, f"Unknown console file {name!r}", code="not_found")
        return Response(200, body, dict(_PAGE_HEADERS), content_type=_STATIC_TYPES[name])

    async def snapshot(self, request: Request) -> Response:
        self._check(request)
        return Response(200, _encode(self.snapshotter.take()), {"Cache-Control": "no-store"})

    async def events(self, request: Request) -> None:
        """The feed: entries as they come, a comment line while none does, until the client
        goes away (which cancels this handler) or the server shuts down."""
        self._check(request)
        sub = self.feed.subscribe()
        try:
            headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
            await request.start_stream(200, headers, "text/event-stream", b": fastgate console feed\n\n")
            while not sub.closed:
                batch = await sub.next_batch(KEEPALIVE_S)
                if batch:
                    await request.send(b"".join(b"data: " + entry + b"\n\n" for entry in batch))
                elif not sub.closed:
                    await request.send(b": keep-alive\n\n")
            request.end_stream()
        finally:
            self.feed.unsubscribe(sub)

    def add_routes(self, router: Router) -> None:
        router.add("GET", "/console", self.index)
        router.add("GET", "/console/static/{name}", self.asset)
        router.add("GET", "/console/api/snapshot", self.snapshot)
        router.add("GET", "/console/api/feed", self.events)
