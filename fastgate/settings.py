"""Server settings: read once at start-up from CLI flags and the environment."""

from __future__ import annotations

import os

import msgspec


def _env_list(name: str, default: str) -> tuple[str, ...]:
    raw = os.environ.get(name, default)
    return tuple(part.strip().lower() for part in raw.split(",") if part.strip())


class Settings(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 8787
    workers: int = 1
    #: Largest request body accepted, in bytes (larger: 413 before the rest is read).
    max_body_bytes: int = 32 * 1024 * 1024
    #: Provider used when a request names none; unset, such a request is a 400.
    default_provider: str | None = None
    #: Custom hosts allowed even when private (exact host names or IPs, or ``.suffix`` patterns).
    trusted_hosts: tuple[str, ...] = ()
    #: Loopback custom hosts (local models) are allowed unless this is false.
    allow_loopback: bool = True
    #: Seconds to connect to an upstream, and to wait between its bytes, before a 504.
    connect_timeout: float = 10.0
    read_timeout: float = 600.0
    #: Longest a streamed answer may last, and largest complete upstream body read, before the
    #: gateway gives up on an upstream that never ends (an error event, or a 502).
    max_stream_seconds: float = 3600.0
    max_response_bytes: int = 64 * 1024 * 1024
    #: Requests relayed at once by one worker; past it a 503 with ``Retry-After`` (back-pressure).
    max_in_flight: int = 2048
    #: Seconds SIGTERM waits for in-flight requests and streams before the worker exits.
    shutdown_grace: float = 30.0
    #: Upstream connections kept open per host.
    pool_size: int = 1000
    log_level: str = "warning"


def settings_from_env(**overrides: object) -> Settings:
    """Settings from ``FASTGATE_*`` variables; explicit overrides (CLI flags) win."""
    values: dict[str, object] = {}
    if "FASTGATE_TRUSTED_HOSTS" in os.environ:
        values["trusted_hosts"] = _env_list("FASTGATE_TRUSTED_HOSTS", "")
    if "FASTGATE_MAX_BODY_BYTES" in os.environ:
        values["max_body_bytes"] = int(os.environ["FASTGATE_MAX_BODY_BYTES"])
    if "FASTGATE_DEFAULT_PROVIDER" in os.environ:
        values["default_provider"] = os.environ["FASTGATE_DEFAULT_PROVIDER"] or None
    if "FASTGATE_LOG_LEVEL" in os.environ:
        values["log_level"] = os.environ["FASTGATE_LOG_LEVEL"]
    values.update({k: v for k, v in overrides.items() if v is not None})
    return msgspec.convert(values, Settings)
