"""The mock's Realtime API over a real WebSocket (aiohttp's), at OpenAI's and Azure's paths.

The session's events are ``realtime.py``'s. Like OpenAI, a handshake without a key (a bearer
token, Azure's ``api-key``, or the ``openai-insecure-api-key.`` subprotocol) is a 401; the
``realtime`` subprotocol is chosen when offered.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from fastgate.mock.openai_format import error
from fastgate.mock.playback import MockServer
from fastgate.mock.realtime import RealtimeSession

_decode = msgspec.json.Decoder(dict[str, Any]).decode


def add_routes(app: web.Application, server: MockServer) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        server.record(request, b"")
        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        keyed = any(p.startswith("openai-insecure-api-key.") for p in offered)
        if not (
            request.headers.get("Authorization", "").startswith("Bearer ")
            or request.headers.get("api-key")
            or keyed
        ):
            return web.Response(
                status=401,
                body=error(401, "Missing bearer or basic authentication in header."),
                content_type="application/json",
            )
        ws = web.WebSocketResponse(protocols=("realtime",))
        await ws.prepare(request)
        model = request.query.get("model") or request.query.get("deployment") or "gpt-realtime"
        session = RealtimeSession(model)
        for event in session.opening():
            await ws.send_str(msgspec.json.encode(event).decode())
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            try:
                event = _decode(message.data)
            except msgspec.DecodeError:
                event = {"type": None}
            for reply in session.reply(event):
                await ws.send_str(msgspec.json.encode(reply).decode())
        return ws

    app.router.add_get("/v1/realtime", handle)
    app.router.add_get("/openai/realtime", handle)
    app.router.add_get("/openai/v1/realtime", handle)
