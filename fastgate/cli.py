"""``fastgate serve | mock | check-config | keys | virtual-keys``."""

from __future__ import annotations

import argparse
import sys

from aiohttp import web

from fastgate.keys.cli import add_key_commands


def _serve(args: argparse.Namespace) -> int:
    from fastgate.gateway.app import run
    from fastgate.keys.manage import default_data_dir
    from fastgate.settings import settings_from_env

    settings = settings_from_env(
        config_path=args.config,
        host=args.host,
        port=args.port,
        workers=args.workers,
        default_provider=args.default_provider,
        log_level=args.log_level,
        data_dir=args.data_dir or default_data_dir(),
        redis_url=args.redis_url,
        busy_poll_us=args.busy_poll_us,
    )
    if settings.config_path:
        # Fail at start-up, with the bad entry named, rather than in every worker.
        status = _check(settings.config_path, settings.trusted_hosts, settings.allow_loopback)
        if status:
            return status
    run(settings)
    return 0


def _check(path: str, trusted_hosts: tuple[str, ...] = (), allow_loopback: bool = True) -> int:
    from fastgate.server_config import load_server_config
    from fastgate.ssrf import HostPolicy

    try:
        load_server_config(path, HostPolicy(trusted_hosts, allow_loopback))
    except ValueError as exc:
        print(f"fastgate: {exc}", file=sys.stderr)
        return 2
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from fastgate.settings import settings_from_env

    settings = settings_from_env()
    status = _check(args.file, settings.trusted_hosts, settings.allow_loopback)
    if not status:
        print(f"{args.file}: ok")
    return status


def _mock(args: argparse.Namespace) -> int:
    from fastgate.gateway.app import _install_uvloop
    from fastgate.mock.directives import Directives
    from fastgate.mock.server import make_mock_app

    _install_uvloop()
    defaults = Directives(chunks=args.chunks, chunk_delay_ms=args.chunk_delay_ms, delay_ms=args.delay_ms)
    web.run_app(
        make_mock_app(defaults),
        host=args.host,
        port=args.port,
        access_log=None,
        handler_cancellation=True,
        print=lambda s: print(f"fastgate mock on http://{args.host}:{args.port}"),
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastgate", description="A fast, Portkey-compatible AI gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--workers", type=int, default=1, help="processes sharing the port (SO_REUSEPORT)")
    serve.add_argument(
        "--config", default=None, help="server config file, JSON or TOML (saved configs, model routes)"
    )
    serve.add_argument(
        "--default-provider",
        default=None,
        help="provider for requests that name none (e.g. mock); unset: such requests get a 400",
    )
    serve.add_argument("--log-level", default=None)
    serve.add_argument(
        "--data-dir", default=None, help="key records without Redis (default: $FASTGATE_DATA_DIR)"
    )
    serve.add_argument(
        "--redis-url", default=None, help="share keys, limits and cache (or $FASTGATE_REDIS_URL)"
    )
    serve.add_argument(
        "--busy-poll-us",
        type=int,
        default=None,
        help="poll instead of sleeping through waits expected within this many µs (an upstream's "
        "answer, a client's next request): lower latency for CPU (default 250, or "
        "$FASTGATE_BUSY_POLL_US; 0: off)",
    )
    serve.set_defaults(func=_serve)
    mock = sub.add_parser("mock", help="run the mock provider over HTTP")
    mock.add_argument("--host", default="127.0.0.1")
    mock.add_argument("--port", type=int, default=8788)
    mock.add_argument("--chunks", type=int, default=4, help="content chunks per stream")
    mock.add_argument("--chunk-delay-ms", type=float, default=0.0)
    mock.add_argument("--delay-ms", type=float, default=0.0, help="wait before each response")
    mock.set_defaults(func=_mock)
    check = sub.add_parser("check-config", help="validate a server config file (JSON or TOML)")
    check.add_argument("file")
    check.set_defaults(func=_check_config)
    add_key_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
