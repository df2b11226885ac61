"""Building the aiohttp application and running it: one event loop per worker process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time

from aiohttp import web

from fastgate.observability.logs import configure_logging
from fastgate.server import handlers
from fastgate.server.dns import CachingResolver
from fastgate.server.handlers import Gateway
from fastgate.server.http1 import UpstreamPool
from fastgate.server.middleware import admission_middleware, error_middleware
from fastgate.server.options import OptionsReader
from fastgate.server.shared import SharedState
from fastgate.settings import Settings
from fastgate.ssrf import HostPolicy

log = logging.getLogger("fastgate")
GATEWAY_KEY: web.AppKey[Gateway] = web.AppKey("gateway", Gateway)


def make_app(settings: Settings) -> web.Application:
    policy = HostPolicy(settings.trusted_hosts, settings.allow_loopback)
    gateway = Gateway(settings, OptionsReader(settings, policy))
    # The body limit is enforced by the handlers (413 from Content-Length before reading);
    # aiohttp's own limit is a backstop for chunked bodies.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[error_middleware, admission_middleware(settings.max_in_flight)],
    )
    app[GATEWAY_KEY] = gateway
    server = gateway.reader.server
    shared = SharedState(settings, server.prices, policy, server.semantic)
    gateway.access = shared.access
    app.on_startup.append(shared.start)
    app.on_cleanup.append(shared.stop)
    shared.add_routes(app.router)

    async def open_pool(app: web.Application) -> None:
        gateway.pool = UpstreamPool(
            CachingResolver(policy),
            settings.connect_timeout,
            settings.read_timeout,
            max_body=settings.max_response_bytes,
            max_stream_seconds=settings.max_stream_seconds,
        )

    async def close_pool(app: web.Application) -> None:
        if gateway.pool is not None:
            await gateway.pool.close()

    app.on_startup.append(open_pool)
    app.on_cleanup.append(close_pool)
    r = app.router
    r.add_post("/v1/chat/completions", gateway.chat)
    r.add_post("/v1/completions", gateway.completions)
    r.add_post("/v1/embeddings", gateway.embeddings)
    r.add_get("/v1/models", gateway.models, allow_head=False)
    for method in ("GET", "POST", "DELETE"):
        r.add_route(method, "/v1/{tail:.+}", gateway.proxy)
    r.add_get("/", handlers.root, allow_head=False)
    r.add_get("/health", handlers.health, allow_head=False)
    r.add_get("/metrics", gateway.metrics, allow_head=False)
    return app


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(app: web.Application, settings: Settings, sock: socket.socket | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight requests for up to the grace period."""
    runner = web.AppRunner(
        app, handler_cancellation=True, access_log=None, shutdown_timeout=settings.shutdown_grace
    )
    await runner.setup()
    if sock is not None:
        site: web.BaseSite = web.SockSite(runner, sock)
    else:
        site = web.TCPSite(
            runner, settings.host, settings.port, reuse_port=settings.workers > 1, backlog=4096
        )
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.warning("fastgate listening on http://%s:%d (pid %d)", settings.host, settings.port, os.getpid())
    await stop.wait()
    # Close the listener (new connections are refused), close idle keep-alive connections, let
    # requests and streams in flight finish for up to the grace period, then cancel the rest.
    await runner.cleanup()


def _worker(settings: Settings) -> None:
    configure_logging(settings.log_level)
    _install_uvloop()
    asyncio.run(serve(make_app(settings), settings))


def run(settings: Settings) -> None:
    """Run one worker in this process, or N workers sharing the port (SO_REUSEPORT)."""
    if settings.workers <= 1:
        _worker(settings)
        return
    configure_logging(settings.log_level)
    if not settings.redis_url:
        log.warning(
            "%d workers without Redis: rate limits, budgets and the response cache hold per worker "
            "(set FASTGATE_REDIS_URL to share them)",
            settings.workers,
        )
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(settings,), daemon=False) for _ in range(settings.workers)]
    for p in procs:
        p.start()
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stopping:
        for i, p in enumerate(procs):
            if not p.is_alive() and not stopping:
                log.warning("worker %s exited with %s; starting a new one", p.pid, p.exitcode)
                procs[i] = ctx.Process(target=_worker, args=(settings,), daemon=False)
                procs[i].start()
        time.sleep(0.2)
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=settings.shutdown_grace + 5)
