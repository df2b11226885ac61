"""``fastgate serve | mock | check-config | keys | virtual-keys``.

A mistake of the user's (a bad flag or ``FASTGATE_*`` value, a port in use, a config file that
does not parse, Redis out of reach) ends the command with one line on stderr and status 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from fastgate.errors import StartupError
from fastgate.keys.cli import add_key_commands
from fastgate.settings import Settings, SettingsError, settings_from_env

_DEFAULTS = Settings()
MOCK_PORT = 8788


class CommandLine(argparse.ArgumentParser):
    """An argument parser whose errors are one line (argparse prints the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _serve(args: argparse.Namespace) -> int:
    from fastgate.gateway.app import run
    from fastgate.keys.manage import default_data_dir

    settings = settings_from_env(
        config_path=args.config,
        host=args.host,
        port=args.port,
        workers=args.workers,
        default_provider=args.default_provider,
        log_level=args.log_level,
        data_dir=args.data_dir or default_data_dir(),
        redis_url=args.redis_url,
        shared_circuits=args.shared_circuits,
        busy_poll_us=args.busy_poll_us,
        client_timeout=args.client_timeout,
        keepalive_timeout=args.keepalive_timeout,
        max_connections=args.max_connections,
        max_in_flight=args.max_in_flight,
        max_body_bytes=args.max_body_bytes,
        access_log=args.access_log,
        log_format=args.log_format,
        max_upload_bytes=args.max_upload_bytes,
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
    settings = settings_from_env()
    status = _check(args.file, settings.trusted_hosts, settings.allow_loopback)
    if not status:
        print(f"{args.file}: ok")
    return status


def _mock(args: argparse.Namespace) -> int:
    from aiohttp import web

    from fastgate.gateway.app import _install_uvloop, listen_error
    from fastgate.mock.directives import Directives
    from fastgate.mock.server import make_mock_app

    _install_uvloop()
    defaults = Directives(chunks=args.chunks, chunk_delay_ms=args.chunk_delay_ms, delay_ms=args.delay_ms)
    try:
        web.run_app(
            make_mock_app(defaults),
            host=args.host,
            port=args.port,
            access_log=None,
            handler_cancellation=True,
            print=lambda s: print(f"fastgate mock on http://{args.host}:{args.port}"),
        )
    except OSError as exc:
        raise listen_error(args.host, args.port, exc) from None
    return 0


def _serve_flags(serve: argparse.ArgumentParser) -> None:
    d = _DEFAULTS
    serve.add_argument(
        "--host", default=None, help=f"address to listen on (default {d.host}, or $FASTGATE_HOST)"
    )
    serve.add_argument(
        "--port", type=int, default=None, help=f"port to listen on (default {d.port}, or $FASTGATE_PORT)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help=f"processes sharing the port with SO_REUSEPORT (default {d.workers}, or $FASTGATE_WORKERS)",
    )
    serve.add_argument(
        "--config",
        default=None,
        help="server config file, TOML or JSON: saved configs, model aliases, prices "
        "(default none, or $FASTGATE_CONFIG)",
    )
    serve.add_argument(
        "--default-provider",
        default=None,
        help="provider for requests that name none, e.g. mock (default none: such requests get a 400; "
        "or $FASTGATE_DEFAULT_PROVIDER)",
    )
    serve.add_argument(
        "--log-level",
        default=None,
        choices=("debug", "info", "warning", "error", "critical"),
        help=f"how much to log (default {d.log_level}, or $FASTGATE_LOG_LEVEL)",
    )
    serve.add_argument(
        "--data-dir",
        default=None,
        help="where key records live without Redis (default $FASTGATE_DATA_DIR, else "
        "~/.local/share/fastgate)",
    )
    serve.add_argument(
        "--redis-url",
        default=None,
        help="share keys, limits and cache through Redis (default $FASTGATE_REDIS_URL; none: in process)",
    )
    serve.add_argument(
        "--shared-circuits",
        action="store_true",
        default=None,
        help="count the circuits of cb_config targets in Redis, so every replica agrees on which are "
        "open (default off: each worker counts its own; or $FASTGATE_SHARED_CIRCUITS)",
    )
    serve.add_argument(
        "--busy-poll-us",
        type=int,
        default=None,
        help="poll instead of sleeping through waits expected within this many µs (an upstream's "
        "answer, a client's next request): lower latency for CPU (default "
        f"{d.busy_poll_us}, or $FASTGATE_BUSY_POLL_US; 0: off)",
    )
    serve.add_argument(
        "--client-timeout",
        type=float,
        default=None,
        help="seconds a client may take to send a whole request (then a 408) or leave its answers "
        f"unread (then its connection is cut) (default {d.client_timeout:g}, or $FASTGATE_CLIENT_TIMEOUT)",
    )
    serve.add_argument(
        "--keepalive-timeout",
        type=float,
        default=None,
        help="seconds an idle client connection is kept open "
        f"(default {d.keepalive_timeout:g}, or $FASTGATE_KEEPALIVE_TIMEOUT)",
    )
    serve.add_argument(
        "--max-connections",
        type=int,
        default=None,
        help="open client connections per worker; at the limit a new one closes the oldest that has "
        "sent nothing (default: half the open-file limit, or $FASTGATE_MAX_CONNECTIONS)",
    )
    serve.add_argument(
        "--access-log",
        default=None,
        metavar="PATH",
        help="a line per request: - for stdout (the default, or $FASTGATE_ACCESS_LOG), a file, or off",
    )
    serve.add_argument(
        "--log-format",
        choices=("json", "text"),
        default=None,
        help=f"access log lines as JSON or text (default {d.log_format}, or $FASTGATE_LOG_FORMAT)",
    )
    serve.add_argument(
        "--max-in-flight",
        type=int,
        default=None,
        help="requests (a stream for its whole length) served at once per worker; past it a 503 "
        f"(default {d.max_in_flight}, or $FASTGATE_MAX_IN_FLIGHT)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=None,
        help=f"largest request body in bytes, larger is a 413 (default {d.max_body_bytes}, or "
        "$FASTGATE_MAX_BODY_BYTES)",
    )
    serve.add_argument(
        "--max-upload-bytes",
        type=int,
        default=None,
        help="largest body of an upload route (files, audio, image edits), streamed to the upstream "
        f"(default {d.max_upload_bytes}, or $FASTGATE_MAX_UPLOAD_BYTES)",
    )


def _mock_flags(mock: argparse.ArgumentParser) -> None:
    mock.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    mock.add_argument("--port", type=int, default=MOCK_PORT, help="port to listen on (default %(default)s)")
    mock.add_argument("--chunks", type=int, default=4, help="content chunks per stream (default %(default)s)")
    mock.add_argument(
        "--chunk-delay-ms", type=float, default=0.0, help="wait before each chunk (default %(default)s)"
    )
    mock.add_argument(
        "--delay-ms", type=float, default=0.0, help="wait before each response (default %(default)s)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = CommandLine(prog="fastgate", description="A fast, Portkey-compatible AI gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help=f"run the gateway (on {_DEFAULTS.host}:{_DEFAULTS.port} unless --host / --port)",
        description="Run the gateway. Every flag also has a FASTGATE_* variable; the flag wins.",
    )
    _serve_flags(serve)
    serve.set_defaults(func=_serve)
    mock = sub.add_parser(
        "mock", help=f"run the mock provider over HTTP (on 127.0.0.1:{MOCK_PORT} unless --host / --port)"
    )
    _mock_flags(mock)
    mock.set_defaults(func=_mock)
    check = sub.add_parser("check-config", help="validate a server config file (TOML or JSON)")
    check.add_argument("file")
    check.set_defaults(func=_check_config)
    add_key_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SettingsError, StartupError) as exc:
        print(f"fastgate: {exc}", file=sys.stderr)
        return 2
