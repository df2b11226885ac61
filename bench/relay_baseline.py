"""The baseline a Python gateway is measured against: the barest aiohttp+uvloop relay.

It forwards each POST to the upstream with one pooled ClientSession and relays the answer
(streams chunk by chunk), with no header handling, routing, validation or mapping. Whatever the
gateway costs beyond this is the price of its features, not of aiohttp.

    python bench/relay_baseline.py --port 8790 --upstream http://127.0.0.1:8788
"""

from __future__ import annotations

import argparse

import aiohttp
import uvloop
from aiohttp import web

SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)


def make_relay_app(upstream: str) -> web.Application:
    app = web.Application()

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {"Content-Type": "application/json"}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        async with app[SESSION].post(upstream + request.path, data=body, headers=headers) as up:
            if up.content_type != "text/event-stream":
                return web.Response(status=up.status, body=await up.read(), content_type=up.content_type)
            resp = web.StreamResponse(status=up.status)
            resp.content_type = up.content_type
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def open_session(app: web.Application) -> None:
        app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))

    async def close_session(app: web.Application) -> None:
        await app[SESSION].close()

    app.on_startup.append(open_session)
    app.on_cleanup.append(close_session)
    app.router.add_post("/{tail:.*}", relay)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8788")
    args = parser.parse_args()
    web.run_app(
        make_relay_app(args.upstream.rstrip("/")),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )


if __name__ == "__main__":
    main()
