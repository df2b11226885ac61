"""``GET /v1/realtime``: the Realtime API's WebSocket, relayed to the upstream frame by frame.

The client's upgrade is checked first (``websockets``' handshake rules); its key comes from
``Authorization`` or, for browsers that cannot set headers, the ``openai-insecure-api-key.<key>``
subprotocol. The target is picked as for any request (Portkey headers, a config, the model) and
tried with the stages, retries and fallbacks up to the upstream's handshake: until the upstream
says 101 the client gets an HTTP answer (the upstream's refusal, 502, 504). Then the client is
answered 101 and the two connections become one session (:class:`Session`): frames both ways as
they come, a message's fragments included; a frame over ``realtime_max_frame_bytes`` closes it
(1009), as does ``realtime_idle_seconds`` without a frame either way (1001); when either side
closes or goes away, the other is closed with its code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastgate.gateway.pipeline import Exchange
from fastgate.gateway.realtime_session import handshake, offered_subprotocols
from fastgate.providers.base import Endpoint
from fastgate.schema.openai import RequestView
from fastgate.server.messages import Request, Response

if TYPE_CHECKING:
    from fastgate.gateway.handlers import Gateway

_KEY_PROTOCOL = "openai-insecure-api-key."


async def realtime(gateway: Gateway, request: Request) -> Response | None:
    """The handler of ``GET /v1/realtime`` (``App`` binds ``gateway``)."""
    settings = gateway.settings
    handshake(request, None, settings.realtime_max_frame_bytes)  # refused before any upstream work
    headers = request.headers
    if "authorization" not in headers:
        for offered in offered_subprotocols(headers):
            if offered.startswith(_KEY_PROTOCOL):
                headers = {**headers, "authorization": "Bearer " + offered[len(_KEY_PROTOCOL) :]}
    model = None
    for pair in request.query.split("&"):
        name, _, value = pair.partition("=")
        if name == "model" and value:
            model = value
    ex = Exchange(
        request=request,
        endpoint=Endpoint.REALTIME,
        headers=headers,
        view=RequestView(model=model) if model else RequestView(),
    )
    try:
        gateway.pipeline.arrive(ex)
        ex.opts = opts = gateway.reader.read(headers)
        plan = opts.plan or gateway.reader.plan_for_model(model, opts)
    except BaseException as exc:
        gateway._refused(ex, exc)
        raise
    return await gateway._route(ex, plan, path="/realtime", query=request.query)
