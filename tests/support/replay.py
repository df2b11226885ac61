"""Test support: an upstream that answers with a recorded payload, and the openai SDK as client.

The replay server is a real aiohttp server on loopback, so recorded provider payloads
(tests/data/<provider>/) go through the gateway exactly as a live answer would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import openai
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import Gateway


class Replay:
    """Answers every POST with one recorded body; keeps what it received."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        self.content_type = "application/json"
        self.received: list[dict[str, Any]] = []
        self.url = ""

    def serve(self, body: bytes, *, status: int = 200, content_type: str | None = None) -> None:
        self.body, self.status = body, status
        self.content_type = content_type or (
            "text/event-stream" if body.lstrip().startswith((b"event:", b"data:")) else "application/json"
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.received.append(
            {"path": request.path, "headers": dict(request.headers), "body": await request.read()}
        )
        if self.content_type != "text/event-stream":
            return web.Response(status=self.status, body=self.body, content_type=self.content_type)
        resp = web.StreamResponse(status=self.status)
        resp.content_type = self.content_type
        await resp.prepare(request)
        for event in self.body.split(b"\n\n"):  # one network write per event, as upstreams do
            if event.strip():
                await resp.write(event + b"\n\n")
        await resp.write_eof()
        return resp


async def start_replay(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Replay:
    """Start a replay upstream (call it from a module's own ``replay`` fixture)."""
    state = Replay()
    app = web.Application()
    app.router.add_post("/{tail:.*}", state.handle)
    server = await aiohttp_server(app)
    state.url = str(server.make_url("")).rstrip("/")
    return state


def sdk(gateway: Gateway, headers: dict[str, str], api_key: str = "test-key") -> openai.AsyncOpenAI:
    """The official openai SDK pointed at the gateway, with Portkey headers and no retries."""
    return openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key=api_key, max_retries=0, default_headers=headers
    )
