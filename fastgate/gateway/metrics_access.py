"""Who may read ``/metrics``: it names upstream hosts and the state of their circuits.

With an admin token set, the admin API's rule: ``Authorization: Bearer <admin token>``. Without
one, while gateway keys are required, any valid gateway key. Otherwise, or with
``metrics_public = true`` in the server config (a scraper on a private network), anyone.
"""

from __future__ import annotations

from fastgate.gateway.admin import check_admin_token
from fastgate.headers import bearer_token
from fastgate.keys.registry import KeyRegistry
from fastgate.server.messages import Request, Response
from fastgate.server.router import Handler


def metrics_access(
    handler: Handler, admin_token: str | None, registry: KeyRegistry | None, public: bool
) -> Handler:
    """``handler`` behind the rule above (decided once here, not per scrape)."""
    if public:
        return handler
    if admin_token:
        token = admin_token.encode()

        async def by_admin_token(request: Request) -> Response | None:
            check_admin_token(request, token)
            return await handler(request)

        return by_admin_token
    if registry is None:
        return handler
    keys = registry

    async def by_gateway_key(request: Request) -> Response | None:
        if keys.required:
            headers = request.headers
            keys.authenticate(headers.get("x-portkey-api-key") or bearer_token(headers.get("authorization")))
        return await handler(request)

    return by_gateway_key
