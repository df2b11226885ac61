"""``fastgate mock``: the mock provider over real HTTP, OpenAI's wire format and other providers'."""

from __future__ import annotations

from aiohttp import web

from fastgate.mock import (
    anthropic_format,
    azure_format,
    bedrock_format,
    cohere_format,
    gemini_format,
    realtime_format,
    responses_format,
    stability_format,
    vertex_anthropic_format,
    voyage_format,
)
from fastgate.mock.directives import Directives
from fastgate.mock.playback import MockServer


def make_mock_app(defaults: Directives | None = None) -> web.Application:
    server = MockServer(defaults)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/_mock/requests", server.list_requests)
    app.router.add_delete("/_mock/requests", server.clear_requests)
    # Other providers' wire formats: one ``<provider>_format.add_routes(app, server)`` line each,
    # before the OpenAI catch-all below (aiohttp matches routes in registration order).
    realtime_format.add_routes(app, server)
    cohere_format.add_routes(app, server)
    azure_format.add_routes(app, server)
    anthropic_format.add_routes(app, server)
    bedrock_format.add_routes(app, server)
    gemini_format.add_routes(app, server)
    vertex_anthropic_format.add_routes(app, server)
    responses_format.add_routes(app, server)
    stability_format.add_routes(app, server)
    voyage_format.add_routes(app, server)
    app.router.add_route("*", "/v1/{tail:.+}", server.openai)
    app[MOCK_KEY] = server
    return app


MOCK_KEY: web.AppKey[MockServer] = web.AppKey("mock", MockServer)
