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
    #: Seconds a client may take to send one whole request (head and body) before a 408, and an
    #: idle keep-alive connection is kept open.
    client_timeout: float = 60.0
    keepalive_timeout: float = 75.0
    #: Seconds SIGTERM waits for in-flight requests and streams before the worker exits.
    shutdown_grace: float = 30.0
    #: The longest wait the event loop polls through instead of sleeping (0: never): on an origin
    #: whose smoothed time to first byte, or a client whose smoothed pause between requests, is
    #: within it, so the next step runs on a warm core, for CPU up to that wait
    #: (``fastgate/server/busy_poll.py``); hosted LLMs' answers are always slept through.
    busy_poll_us: int = 250
    log_level: str = "warning"
    #: Server config file (JSON or TOML): saved configs, model aliases, the default route.
    config_path: str | None = None
    #: Cap on a config's ``retry.attempts``, and the backoff between retries: ``retry_base_ms``
    #: doubling per retry up to ``retry_cap_ms``, with ``retry_jitter`` of it drawn at random.
    max_retry_attempts: int = 5
    retry_base_ms: float = 1000.0
    retry_cap_ms: float = 16000.0
    retry_jitter: float = 0.5
    #: Longest total wait a target may spend honouring upstream ``Retry-After`` headers.
    retry_after_budget_ms: float = 60000.0
    #: Consecutive failed attempts that open a target's circuit (0: no circuit breaking), and
    #: how long it is then skipped before one probe request may try it again.
    breaker_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    # ---- keys, limits and the response cache (fastgate/gateway/shared.py) ----
    #: Where key records live when there is no Redis (``keys.json``); None: no key records.
    data_dir: str | None = None
    #: Redis shared by every worker and machine: key records, limits, budgets, cached answers.
    redis_url: str | None = None
    #: When Redis cannot be reached, limits let requests through (true) or answer 503 (false).
    #: The cache always fails open (a miss).
    limits_fail_open: bool = True
    #: Token of the admin API (``/admin/...``); unset, the admin API is not mounted.
    admin_token: str | None = None
    #: AES-256-GCM key sealing virtual-key secrets at rest (``fastgate/keys/sealing.py``).
    secret_key: str | None = None
    #: Bounds of the in-process response cache (LRU).
    cache_max_entries: int = 4096
    cache_max_bytes: int = 64 * 1024 * 1024
    #: Seconds a Response answered through the chat translation is kept for
    #: ``previous_response_id`` and ``GET /v1/responses/{id}`` (OpenAI keeps its own 30 days).
    responses_ttl: float = 24 * 3600.0


#: Numeric routing settings also read from ``FASTGATE_<NAME>`` (e.g. ``FASTGATE_BREAKER_THRESHOLD``).
_ROUTING_LIMITS = (
    "max_retry_attempts",
    "retry_base_ms",
    "retry_cap_ms",
    "retry_after_budget_ms",
    "breaker_threshold",
    "breaker_cooldown_s",
)

#: Timeouts and limits of the server also read from ``FASTGATE_<NAME>`` (``FASTGATE_SHUTDOWN_GRACE``).
_SERVER_LIMITS = (
    "connect_timeout",
    "read_timeout",
    "max_stream_seconds",
    "max_response_bytes",
    "max_in_flight",
    "shutdown_grace",
    "client_timeout",
    "keepalive_timeout",
    "busy_poll_us",
)

#: Shared-state settings read from ``FASTGATE_<NAME>`` (``FASTGATE_REDIS_URL``, ``FASTGATE_ADMIN_TOKEN``...).
_SHARED_STATE = (
    "data_dir",
    "redis_url",
    "limits_fail_open",
    "admin_token",
    "secret_key",
    "cache_max_entries",
    "cache_max_bytes",
    "responses_ttl",
)


def settings_from_env(**overrides: object) -> Settings:
    """Settings from ``FASTGATE_*`` variables; explicit overrides (CLI flags) win."""
    values: dict[str, object] = {}
    if "FASTGATE_TRUSTED_HOSTS" in os.environ:
        values["trusted_hosts"] = _env_list("FASTGATE_TRUSTED_HOSTS", "")
    if "FASTGATE_MAX_BODY_BYTES" in os.environ:
        values["max_body_bytes"] = int(os.environ["FASTGATE_MAX_BODY_BYTES"])
    if "FASTGATE_DEFAULT_PROVIDER" in os.environ:
        values["default_provider"] = os.environ["FASTGATE_DEFAULT_PROVIDER"] or None
    if "FASTGATE_CONFIG" in os.environ:
        values["config_path"] = os.environ["FASTGATE_CONFIG"] or None
    if "FASTGATE_LOG_LEVEL" in os.environ:
        values["log_level"] = os.environ["FASTGATE_LOG_LEVEL"]
    for name in _SHARED_STATE:
        env = f"FASTGATE_{name.upper()}"
        if env in os.environ:
            values[name] = os.environ[env] or None
    for name in (*_ROUTING_LIMITS, *_SERVER_LIMITS):
        env = f"FASTGATE_{name.upper()}"
        if env in os.environ:
            values[name] = os.environ[env]
    values.update({k: v for k, v in overrides.items() if v is not None})
    # Environment values are strings: numbers are read as numbers (strict=False).
    return msgspec.convert(values, Settings, strict=False)
