"""Every failure leaves as an OpenAI-shaped JSON error: no tracebacks, no HTML pages."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

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
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _json_error(500, "Internal gateway error", type_="api_error")
