"""Building the gateway and running it: one event loop per worker process."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from functools import partial

from fastgate.errors import StartupError
from fastgate.gateway import handlers
from fastgate.gateway.console import Console
from fastgate.gateway.handlers import Gateway
from fastgate.gateway.metrics_access import metrics_access
from fastgate.gateway.operations import operation
from fastgate.gateway.options import OptionsReader
from fastgate.gateway.pipeline import Pipeline, Stage
from fastgate.gateway.realtime import realtime
from fastgate.gateway.responses_api import ResponsesAPI
from fastgate.gateway.shared import SharedState
from fastgate.gateway.stages.cache import CacheStage
from fastgate.gateway.stages.guardrails import GuardrailsStage
from fastgate.gateway.stages.keys import KeysStage
from fastgate.gateway.stages.limits import LimitsStage
from fastgate.gateway.stages.messages import MESSAGES, MessagesStage
from fastgate.gateway.stages.observability import IngressUsage, ObservabilityStage
from fastgate.gateway.stages.responses import RESPONSES
from fastgate.limits.prices import Pricing
from fastgate.observability.feed import Feed
from fastgate.observability.logs import configure_logging
from fastgate.observability.metrics_dir import MetricsDir
from fastgate.observability.observer import Observability
from fastgate.observability.snapshot import Snapshotter
from fastgate.providers.base import Endpoint
from fastgate.routing.breaker import CircuitBreaker
from fastgate.server.busy_poll import BusyPoll
from fastgate.server.dispatch import Dispatcher
from fastgate.server.http_server import HTTPServer, presize_descriptor_table, raise_open_file_limit
from fastgate.server.router import Router
from fastgate.server_config import ServerConfig, load_server_config
from fastgate.settings import Settings
from fastgate.ssrf import HostPolicy
from fastgate.upstream.dns import CachingResolver
from fastgate.upstream.pool import UpstreamPool

log = logging.getLogger("fastgate")
#: Collections of the middle generation between two full collections (Python's default: 10).
FULL_COLLECTION_EVERY = 100


class App:
    """The gateway's routes and the state they share; ``startup``/``cleanup`` around serving."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.policy = policy = HostPolicy(settings.trusted_hosts, settings.allow_loopback)
        self.gateway = gateway = Gateway(settings, OptionsReader(settings, policy))
        server = gateway.reader.server
        pricing = Pricing(server.prices)
        self.shared = SharedState(settings, pricing, policy, server.semantic, server.redis)
        if self.shared.circuits is not None:
            gateway.breaker = CircuitBreaker(self.shared.circuits)
        self.responses = ResponsesAPI(gateway, self.shared.responses)
        self.router = r = Router()
        self.dispatch = dispatch = Dispatcher(r, settings.max_in_flight)
        #: Metrics, access log, traces, the answer headers (None: every one of them off).
        self.observability = observability = make_observability(
            settings, pricing, server, gateway.breaker, lambda: dispatch.in_flight
        )
        gateway.pipeline = self._pipeline()
        self.shared.add_routes(r)
        r.add("POST", "/v1/chat/completions", gateway.endpoint(Endpoint.CHAT))
        r.add("POST", "/v1/completions", gateway.endpoint(Endpoint.COMPLETIONS))
        r.add("POST", "/v1/embeddings", gateway.endpoint(Endpoint.EMBEDDINGS))
        r.add("POST", "/v1/images/generations", gateway.endpoint(Endpoint.IMAGES))
        r.add("POST", "/v1/moderations", gateway.endpoint(Endpoint.MODERATIONS))
        # Cohere's shape; /v2/rerank too, where the cohere SDK's v2 client posts it.
        r.add("POST", "/v1/rerank", gateway.endpoint(Endpoint.RERANK))
        r.add("POST", "/v2/rerank", gateway.endpoint(Endpoint.RERANK))
        r.add("GET", "/v1/models", gateway.models)
        _add_operations(r, gateway)
        r.add("GET", "/v1/realtime", partial(realtime, gateway))
        r.add("POST", "/v1/messages", gateway.messages)
        r.add("POST", "/v1/messages/count_tokens", gateway.messages)
        self.responses.add_routes(r)
        for method in ("GET", "POST", "DELETE"):
            r.add(method, "/v1/{tail:.+}", gateway.proxy)
        r.add("GET", "/", handlers.root)
        r.add("GET", "/health", handlers.health)
        metrics = observability.metrics if observability is not None else None
        if observability is not None:
            dispatch.refused = observability.refused
            if metrics is not None:
                scrape = metrics_access(
                    observability.scrape, settings.admin_token, self.shared.registry, server.metrics_public
                )
                r.add("GET", "/metrics", scrape)
        feed = observability.feed if observability is not None else Feed()
        Console(feed, Snapshotter(metrics, gateway.breaker), settings.admin_token).add_routes(r)

    def _pipeline(self) -> Pipeline:
        """The stages, in the order they run around the upstream call."""
        shared = self.shared
        keys = KeysStage(shared.registry)
        self.cache = CacheStage(shared.guard, shared.semantic, lambda target: keys.resolved(target)[0])
        messages, responses = MessagesStage(), self.responses.stage
        self.guardrails = guardrails = GuardrailsStage(
            self.policy, {MESSAGES: messages, RESPONSES: responses}
        )
        stages: list[Stage] = [
            keys,
            guardrails.answers,
            messages,
            responses,
            LimitsStage(shared.guard),
            guardrails,
            self.cache,
        ]
        if self.observability is not None:
            # Around all the others: its answer headers and stream watcher come last. Its inner
            # half reads an ingress format's usage before that format's stage translates it (and
            # before guardrails judge an answer: a denied one was still paid for), next to the
            # upstream but for the cache (a cached answer's usage is read all the same).
            stages.insert(0, ObservabilityStage(self.observability, self.settings.response_headers))
            stages.insert(-1, IngressUsage())
        return Pipeline(stages)

    async def startup(self) -> None:
        await self.shared.start()
        if self.observability is not None:
            self.observability.start()
        s = self.settings
        self.gateway.pool = self.cache.pool = pool = UpstreamPool(
            CachingResolver(self.policy),
            s.connect_timeout,
            s.read_timeout,
            max_body=s.max_response_bytes,
            max_stream_seconds=s.max_stream_seconds,
            max_frame=s.realtime_max_frame_bytes,
            websocket_idle_s=s.realtime_idle_seconds,
        )
        self.guardrails.start(pool)

    async def cleanup(self) -> None:
        await self.guardrails.close()
        if self.gateway.pool is not None:
            await self.gateway.pool.close()
        await self.shared.stop()
        if self.observability is not None:
            await self.observability.stop()


def make_observability(
    settings: Settings,
    pricing: Pricing,
    server: ServerConfig,
    breaker: CircuitBreaker,
    in_flight: Callable[[], int],
) -> Observability | None:
    """Metrics, access log, traces and the answer headers; None when every one is off."""
    s = settings
    if not (s.metrics or s.access_log or s.tracing or s.response_headers):
        return None
    # Models shown by name in metric labels (besides those the price catalogue knows): the
    # server config's aliases and priced models.
    return Observability(s, pricing, [*server.models, *server.prices.prices], breaker, in_flight)


#: OpenAI's API operations (``operations.py``): method, path, endpoint, and whether the body is
#: an upload streamed to the upstream (OpenAI API reference: Files, Uploads, Batches, Audio, Images).
_OPERATIONS = (
    ("POST", "/v1/files", Endpoint.FILES, True),
    ("GET", "/v1/files", Endpoint.FILES, False),
    ("GET", "/v1/files/{file_id}", Endpoint.FILES, False),
    ("DELETE", "/v1/files/{file_id}", Endpoint.FILES, False),
    ("GET", "/v1/files/{file_id}/content", Endpoint.FILES, False),
    ("POST", "/v1/uploads", Endpoint.UPLOADS, False),
    ("POST", "/v1/uploads/{upload_id}/parts", Endpoint.UPLOADS, True),
    ("POST", "/v1/uploads/{upload_id}/complete", Endpoint.UPLOADS, False),
    ("POST", "/v1/uploads/{upload_id}/cancel", Endpoint.UPLOADS, False),
    ("POST", "/v1/batches", Endpoint.BATCHES, False),
    ("GET", "/v1/batches", Endpoint.BATCHES, False),
    ("GET", "/v1/batches/{batch_id}", Endpoint.BATCHES, False),
    ("POST", "/v1/batches/{batch_id}/cancel", Endpoint.BATCHES, False),
    ("POST", "/v1/audio/speech", Endpoint.SPEECH, False),
    ("POST", "/v1/audio/transcriptions", Endpoint.TRANSCRIPTIONS, True),
    ("POST", "/v1/audio/translations", Endpoint.TRANSLATIONS, True),
    ("POST", "/v1/images/edits", Endpoint.IMAGE_EDITS, True),
    ("POST", "/v1/images/variations", Endpoint.IMAGE_VARIATIONS, True),
)


def _add_operations(router: Router, gateway: Gateway) -> None:
    for method, path, endpoint, upload in _OPERATIONS:
        router.add(method, path, partial(operation, gateway, endpoint), upload=upload)


def make_app(settings: Settings) -> App:
    return App(settings)


async def start(app: App, *, sock: socket.socket | None = None) -> HTTPServer:
    """Start the app's services, then listen (on ``sock``, or the settings' host and port)."""
    s = app.settings
    await app.startup()
    server = HTTPServer(
        app.dispatch,
        max_body=s.max_body_bytes,
        idle_timeout=s.keepalive_timeout,
        request_timeout=s.client_timeout,
        max_connections=s.max_connections,
        max_upload=s.max_upload_bytes,
        uploads=app.router.uploads,
    )
    try:
        await server.start(s.host, s.port, sock=sock, reuse_port=s.workers > 1)
    except OSError as exc:
        await app.cleanup()
        raise listen_error(s.host, s.port, exc) from None
    except BaseException:
        await app.cleanup()
        raise
    if s.busy_poll_us > 0 and app.gateway.pool is not None:
        server.busy_poll = app.gateway.pool.busy_poll = BusyPoll(
            server.loop, s.busy_poll_us / 1e6, app.dispatch
        )
    return server


def listen_error(host: str, port: int, exc: OSError) -> StartupError:
    """Why a server could not listen, in a line (running the quick start twice is the usual one)."""
    if exc.errno == errno.EADDRINUSE:
        return StartupError(
            f"cannot listen on {host}:{port}: the address is in use (is a server running there "
            "already? stop it or choose another --port)"
        )
    return StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def _check_port(host: str, port: int) -> None:
    """Bind the port as the workers will (SO_REUSEPORT) and let it go: a port another program
    holds fails here, once, rather than in every worker the master keeps replacing."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind(address)
    except OSError as exc:
        raise listen_error(host, port, exc) from None


async def stop(app: App, server: HTTPServer) -> None:
    """Close the listener and idle connections, let requests and streams in flight finish for up
    to the grace period, cancel the rest, then close the app's services."""
    if app.observability is not None:
        app.observability.stop_feeds()
    await server.stop(app.settings.shutdown_grace)
    await app.cleanup()


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency everywhere but Windows
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def serve(app: App, sock: socket.socket | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then drain in-flight requests for up to the grace period."""
    server = await start(app, sock=sock)
    tune_collector()
    stop_event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_event.set)
    s = app.settings
    log.info("fastgate listening on http://%s:%d (pid %d)", s.host, server.port, os.getpid())
    await stop_event.wait()
    log.info("fastgate shutting down (pid %d): finishing the requests in flight", os.getpid())
    await stop(app, server)
    log.info("fastgate stopped (pid %d)", os.getpid())


def tune_collector() -> None:
    """Keep the cyclic collector's pauses off the open streams, once the worker listens.

    Start-up's heap (modules, tables, the app) goes out of the collector's reach for the worker's
    life (``gc.freeze``): over its ~60,000 objects one full collection took ~100 ms. Then full
    collections come ten times less often than Python's default (after 100 collections of the
    middle generation, not 10): each walks every object the open requests hold, ~1 million with
    10,000 streams open, and stalled every stream's next event 100-280 ms; the young generations,
    where a request's short-lived cycles die, are collected as often as before
    (``bench/streams.py`` at 10,000 streams: time to first event p99 287 ms → 13-15 ms).
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def _worker(settings: Settings) -> None:
    presize_descriptor_table()  # before any thread starts: growing it then waits for no one
    configure_logging(settings.log_level)
    _install_uvloop()
    asyncio.run(serve(make_app(settings)))


def _redis_block(settings: Settings) -> bool:
    """Whether the server config file names a Redis (``[redis]``)."""
    if not settings.config_path:
        return False
    policy = HostPolicy(settings.trusted_hosts, settings.allow_loopback)
    return load_server_config(settings.config_path, policy).redis is not None


def run(settings: Settings) -> None:
    """Run one worker in this process, or N workers sharing the port (SO_REUSEPORT)."""
    raise_open_file_limit()
    if settings.shared_circuits and not settings.redis_url and not _redis_block(settings):
        raise StartupError(
            "shared circuits need Redis: set --redis-url (FASTGATE_REDIS_URL) or the server config's [redis]"
        )
    if settings.workers <= 1:
        _worker(settings)
        return
    configure_logging(settings.log_level)
    _check_port(settings.host, settings.port)
    if not settings.redis_url and not _redis_block(settings):
        log.warning(
            "%d workers without Redis: rate limits, budgets and the response cache hold per worker "
            "(set FASTGATE_REDIS_URL to share them)",
            settings.workers,
        )
    metrics_dir = MetricsDir() if settings.metrics else None
    with metrics_dir or contextlib.nullcontext():
        _supervise(settings, metrics_dir)


def _supervise(settings: Settings, metrics_dir: MetricsDir | None) -> None:
    """Start the workers, replace any that dies, stop them all on SIGTERM/SIGINT."""
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
                if metrics_dir is not None and p.pid:
                    metrics_dir.worker_died(p.pid)
                procs[i] = ctx.Process(target=_worker, args=(settings,), daemon=False)
                procs[i].start()
        time.sleep(0.2)
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(timeout=settings.shutdown_grace + 5)
