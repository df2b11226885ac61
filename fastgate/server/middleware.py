"""Every failure leaves as an OpenAI-shaped JSON error: no tracebacks, no HTML pages."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from fastgate.errors import GatewayError, error_body, type_for_status

log = logging.getLogger("fastgate.server")


def _json_error(
    status: int,
    message: str,
    *,
    type_: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=body or error_body(status, message, type=type_ or type_for_status(status)),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatewayError as exc:
        return _json_error(exc.status, exc.message, headers=exc.headers, body=exc.body())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        messages = {
            404: f"Unknown route: {request.method} {request.path}",
            405: f"Method {request.method} is not allowed on {request.path}",
            413: "Request body is too large",
        }
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _json_error(exc.status, messages.get(exc.status, exc.reason), headers=headers)
    except (ConnectionResetError, ConnectionError):
        raise
    except Exception as exc:
        if isinstance(exc, UnicodeEncodeError) and exc.reason == "surrogates not allowed":
            # aiohttp decodes header bytes with surrogateescape: invalid UTF-8 in a header
            # surfaces wherever its text is first encoded again (a config, a key hash), as this.
            return _json_error(400, "A request header is not valid UTF-8")
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json_error(500, "Internal gateway error", type_="api_error")


def admission_middleware(limit: int) -> Middleware:
    """Back-pressure: at most ``limit`` API requests in flight in this worker, a 503 past it.

    A counter, not a semaphore: a request over the limit is answered at once with
    ``Retry-After`` instead of queueing, so a client faster than the upstream cannot make the
    gateway hold an unbounded number of bodies, tasks and upstream connections. A request is
    in flight until its response (a whole stream included) is written; each has at most one
    upstream call open at a time, so this also bounds the upstream requests in flight.
    """
    in_flight = 0
    message = f"The gateway is handling its limit of {limit} requests; retry shortly"

    @web.middleware
    async def admit(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if not request.path.startswith("/v1/"):
            return await handler(request)
        if in_flight >= limit:
            # A new error each time: a re-raised instance would keep growing its traceback.
            raise GatewayError(
                503, message, type="api_error", code="gateway_overloaded", headers={"Retry-After": "1"}
            )
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return admit
