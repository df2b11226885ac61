"""From a parsed request to its answer: route, admit, run the handler, render every failure.

Every failure leaves as an OpenAI-shaped JSON error: no tracebacks, no HTML pages. API requests
are admitted against a counter (back-pressure): at most ``max_in_flight`` in this worker, a 503
with ``Retry-After`` past it, answered at once instead of queueing, so a client faster than the
upstream cannot make the gateway hold an unbounded number of bodies, tasks and connections. A
request is in flight until its answer (a whole stream included) is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastgate.errors import GatewayError
from fastgate.server.busy_poll import smoothed
from fastgate.server.messages import Request, Response
from fastgate.server.router import Handler, Router

log = logging.getLogger("fastgate.server")


class Dispatcher:
    def __init__(self, router: Router, max_in_flight: int) -> None:
        self.router = router
        self.limit = max_in_flight
        self.in_flight = 0
        #: Requests already in flight when one is admitted, smoothed (1/8 per request): near 0 for
        #: a worker that serves one at a time, the connections' count for one that is saturated.
        self.crowd = 0.0
        self._busy = f"The gateway is handling its limit of {max_in_flight} requests; retry shortly"
        #: Told of each request the dispatcher refuses itself (no route, or over the limit),
        #: which no handler sees: ``(request, error)``.
        self.refused: Callable[[Request, GatewayError], None] | None = None

    def admit(self, request: Request) -> tuple[Handler, bool]:
        """The request's handler, and whether it was counted in flight (an API request: the
        caller takes it off ``in_flight`` when its answer is written). The connection awaits the
        handler itself, in its own coroutine: one of the dispatcher's would be a layer on every
        request's path, set up each time and walked again at every resume. Raises the refusals
        as ``GatewayError``s."""
        try:
            handler, request.match_info = self.router.resolve(request.method, request.decoded_path)
        except GatewayError as exc:  # no such route (404), or not with this method (405)
            if self.refused is not None:
                self.refused(request, exc)
            raise
        if not request.path.startswith("/v1/"):
            return handler, False
        if self.in_flight >= self.limit:
            # A new error each time: a re-raised instance would keep growing its traceback.
            busy = GatewayError(
                503, self._busy, type="api_error", code="gateway_overloaded", headers={"Retry-After": "1"}
            )
            if self.refused is not None:
                self.refused(request, busy)
            raise busy
        self.crowd = smoothed(self.crowd, self.in_flight)
        self.in_flight += 1
        return handler, True

    def failed(self, request: Request, exc: Exception) -> Response | None:
        """The answer to a request its handler (or ``admit``) failed with, never a traceback:
        ``None`` when a stream had begun, which is cut instead. A ``ConnectionError`` is not
        for this: the client is gone and there is no one to answer."""
        if isinstance(exc, GatewayError):
            if request.streaming:
                request.abort()  # the status is sent: the client sees a cut, not a clean end
                return None
            return Response(exc.status, exc.body(), exc.headers)
        if request.streaming:
            log.error("unhandled error in a stream on %s %s", request.method, request.path, exc_info=exc)
            request.abort()
            return None
        if isinstance(exc, UnicodeEncodeError) and exc.reason == "surrogates not allowed":
            # Header bytes are decoded with surrogateescape: invalid UTF-8 in a header surfaces
            # wherever its text is first encoded again (a config, a key hash), as this.
            return Response(400, GatewayError(400, "A request header is not valid UTF-8").body())
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=exc)
        return Response(500, GatewayError(500, "Internal gateway error", type="api_error").body())
