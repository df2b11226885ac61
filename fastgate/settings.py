"""Server settings: read once at start-up from CLI flags and the environment."""

from __future__ import annotations

import os
import re
from typing import Annotated, Literal, get_args

import msgspec

#: Bounds checked when settings are read from flags and the environment (``settings_from_env``).
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Count = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeFloat = Annotated[float, msgspec.Meta(ge=0)]
Fraction = Annotated[float, msgspec.Meta(ge=0, le=1)]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LogFormat = Literal["json", "text"]


class SettingsError(ValueError):
    """A setting's value is unusable; the message names the flag or variable it came from."""


def _env_list(name: str, default: str, *, lower: bool = True) -> tuple[str, ...]:
    raw = os.environ.get(name, default)
    parts = (part.strip() for part in raw.split(","))
    return tuple(part.lower() if lower else part for part in parts if part)


class Settings(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: Port = 8787
    workers: Count = 1
    #: Largest request body accepted, in bytes (larger: 413 before the rest is read).
    max_body_bytes: Count = 32 * 1024 * 1024
    #: Largest body of an upload route (files, audio, image edits, upload parts), streamed to the
    #: upstream as it arrives rather than held (OpenAI takes files up to 512 MB).
    max_upload_bytes: Count = 512 * 1024 * 1024
    #: A Realtime session's largest message (a frame, or a message's fragments together) either
    #: way, and its longest time without a frame either way, before it is closed (1009, 1001).
    realtime_max_frame_bytes: Count = 16 * 1024 * 1024
    realtime_idle_seconds: Seconds = 300.0
    #: Provider used when a request names none; unset, such a request is a 400.
    default_provider: str | None = None
    #: Custom hosts allowed even when private (exact host names or IPs, or ``.suffix`` patterns).
    trusted_hosts: tuple[str, ...] = ()
    #: Loopback custom hosts (local models) are allowed unless this is false.
    allow_loopback: bool = True
    #: Seconds to connect to an upstream, and to wait between its bytes, before a 504.
    connect_timeout: Seconds = 10.0
    read_timeout: Seconds = 600.0
    #: Longest a streamed answer may last, and largest complete upstream body read, before the
    #: gateway gives up on an upstream that never ends (an error event, or a 502).
    max_stream_seconds: Seconds = 3600.0
    max_response_bytes: Count = 64 * 1024 * 1024
    #: Requests relayed at once by one worker; past it a 503 with ``Retry-After`` (back-pressure).
    #: A stream counts for its whole length, so for LLM traffic this is the worker's concurrency:
    #: 10,000 is what one worker is measured to hold (``bench/streams.py``).
    max_in_flight: Count = 10_000
    #: Seconds a client may take to send one whole request (head and body) before a 408, or leave
    #: its answers unread (writes paused) before its connection is cut; and an idle keep-alive
    #: connection is kept open.
    client_timeout: Seconds = 60.0
    keepalive_timeout: Seconds = 75.0
    #: Open client connections per worker: at the limit a new one closes the oldest that has sent
    #: nothing, or is closed itself when all are in use (0: half the process's open-file limit,
    #: the other half left for upstream connections; ``serve`` raises the soft limit to the hard).
    max_connections: NonNegative = 0
    #: Seconds SIGTERM waits for in-flight requests and streams before the worker exits.
    shutdown_grace: NonNegativeFloat = 30.0
    #: The longest wait the event loop polls through instead of sleeping (0: never): on an origin
    #: whose smoothed time to first byte, or a client whose smoothed pause between requests, is
    #: within it, so the next step runs on a warm core, for CPU up to that wait
    #: (``fastgate/server/busy_poll.py``); hosted LLMs' answers are always slept through.
    busy_poll_us: NonNegative = 250
    log_level: LogLevel = "info"
    #: Server config file (JSON or TOML): saved configs, model aliases, the default route.
    config_path: str | None = None
    #: Cap on a config's ``retry.attempts``, and the backoff between retries: ``retry_base_ms``
    #: doubling per retry up to ``retry_cap_ms``, with ``retry_jitter`` of it drawn at random.
    max_retry_attempts: NonNegative = 5
    retry_base_ms: NonNegativeFloat = 1000.0
    retry_cap_ms: NonNegativeFloat = 16000.0
    retry_jitter: Fraction = 0.5
    #: Longest total wait a target may spend honouring upstream ``Retry-After`` headers.
    #: (Circuit breaking is a config's ``strategy.cb_config``, or the server config's default.)
    retry_after_budget_ms: NonNegativeFloat = 60000.0
    # ---- keys, limits and the response cache (fastgate/gateway/shared.py) ----
    #: Where key records live when there is no Redis (``keys.json``); None: no key records.
    data_dir: str | None = None
    #: Redis shared by every worker and machine: key records, limits, budgets, cached answers
    #: (``redis://``, ``rediss://``, ``redis+sentinel://``, Cluster seeds: see
    #: ``fastgate/store/redis_config.py``). Wins over the server config's ``[redis]`` block.
    redis_url: str | None = None
    #: When Redis cannot be reached, limits let requests through (true) or answer 503 (false).
    #: The cache always fails open (a miss).
    limits_fail_open: bool = True
    #: Circuits of ``cb_config`` targets counted in Redis, so every replica agrees on which are
    #: open (a round trip per request under a ``cb_config``); off: each worker counts its own.
    shared_circuits: bool = False
    #: Token of the admin API (``/admin/...``); unset, the admin API is not mounted.
    admin_token: str | None = None
    #: AES-256-GCM key sealing virtual-key secrets at rest (``fastgate/keys/sealing.py``).
    secret_key: str | None = None
    #: Bounds of the in-process response cache (LRU).
    cache_max_entries: NonNegative = 4096
    cache_max_bytes: NonNegative = 64 * 1024 * 1024
    #: Seconds a Response answered through the chat translation is kept for
    #: ``previous_response_id`` and ``GET /v1/responses/{id}`` (OpenAI keeps its own 30 days).
    responses_ttl: Seconds = 24 * 3600.0
    # ---- observability (fastgate/observability/, gateway/stages/observability.py) ----
    #: Prometheus metrics at ``/metrics`` (off: no route, nothing counted).
    metrics: bool = True
    #: Model names shown as themselves in metric labels, besides the server config's aliases and
    #: priced models and the models the price catalogue knows; any other is ``other``.
    metrics_models: tuple[str, ...] = ()
    #: The access log, a line per request: ``-`` for stdout, a file path, or None (off).
    access_log: str | None = "-"
    log_format: LogFormat = "json"
    #: OpenTelemetry traces (``fastgate[otel]``), exported over OTLP/HTTP as the standard
    #: ``OTEL_EXPORTER_OTLP_*`` variables say; sampled at this ratio (parent-based).
    tracing: bool = False
    trace_sample_ratio: Fraction = 1.0
    #: Record prompts and completions in spans (off: they never leave the gateway this way).
    trace_content: bool = False
    #: ``Server-Timing`` and the cost (``x-fastgate-response-cost``) on answers.
    response_headers: bool = True


#: Where the gateway listens, also read from ``FASTGATE_<NAME>`` (``FASTGATE_PORT``).
_LISTENER = ("host", "port", "workers", "max_body_bytes", "max_upload_bytes", "log_level")

#: Numeric routing settings also read from ``FASTGATE_<NAME>`` (e.g. ``FASTGATE_MAX_RETRY_ATTEMPTS``).
_ROUTING_LIMITS = (
    "max_retry_attempts",
    "retry_base_ms",
    "retry_cap_ms",
    "retry_after_budget_ms",
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
    "max_connections",
    "busy_poll_us",
    "realtime_max_frame_bytes",
    "realtime_idle_seconds",
)

#: Shared-state settings read from ``FASTGATE_<NAME>`` (``FASTGATE_REDIS_URL``, ``FASTGATE_ADMIN_TOKEN``...);
#: an empty value unsets them.
_SHARED_STATE = (
    "data_dir",
    "redis_url",
    "limits_fail_open",
    "shared_circuits",
    "admin_token",
    "secret_key",
    "cache_max_entries",
    "cache_max_bytes",
    "responses_ttl",
)

#: Observability settings read from ``FASTGATE_<NAME>`` (``FASTGATE_TRACING=1``, ``FASTGATE_ACCESS_LOG=off``).
_OBSERVABILITY = (
    "metrics",
    "log_format",
    "tracing",
    "trace_sample_ratio",
    "trace_content",
    "response_headers",
)
#: Values that turn the access log off.
_OFF = frozenset({"", "off", "none", "0", "false", "no"})

#: Settings whose variable or flag is not named after the field.
_ENV_NAMES = {"config_path": "FASTGATE_CONFIG"}
_FLAG_NAMES = {"config_path": "--config"}
_FIELD = re.compile(r" - at `\$\.(\w+)`")


def _env_name(name: str) -> str:
    return _ENV_NAMES.get(name, f"FASTGATE_{name.upper()}")


def settings_from_env(**overrides: object) -> Settings:
    """Settings from ``FASTGATE_*`` variables and the server config file's ``[server]`` table;
    the variables win over the file, explicit overrides (CLI flags) over both.

    A value out of range or of the wrong type is a :class:`SettingsError` naming the variable,
    flag or file it came from, so the command line can say so in one line.
    """
    env = os.environ
    values: dict[str, object] = {}
    sources: dict[str, str] = {}

    def read(name: str, value: object) -> None:
        values[name] = value
        sources[name] = f"{_env_name(name)}={env[_env_name(name)]!r}"

    if "FASTGATE_TRUSTED_HOSTS" in env:
        read("trusted_hosts", _env_list("FASTGATE_TRUSTED_HOSTS", ""))
    for name in ("default_provider", "config_path", *_SHARED_STATE):
        if _env_name(name) in env:
            read(name, env[_env_name(name)] or None)
    for name in (*_LISTENER, *_ROUTING_LIMITS, *_SERVER_LIMITS, *_OBSERVABILITY):
        if _env_name(name) in env:
            read(name, env[_env_name(name)])
    if "FASTGATE_ACCESS_LOG" in env:
        read("access_log", env["FASTGATE_ACCESS_LOG"])
    if "FASTGATE_METRICS_MODELS" in env:
        read("metrics_models", _env_list("FASTGATE_METRICS_MODELS", "", lower=False))
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
            sources[name] = f"{_FLAG_NAMES.get(name, '--' + name.replace('_', '-'))} {value!r}"
    if values.get("config_path"):
        from fastgate.server_config import server_table  # only when there is a file to read

        # The file's [server] table under the variables and flags.
        path = str(values["config_path"])
        table = {k: v for k, v in server_table(path).items() if k not in values}
        values.update(table)
        sources.update({k: f"{path} [server] {k} = {v!r}" for k, v in table.items()})
    if isinstance(values.get("log_level"), str):
        values["log_level"] = str(values["log_level"]).lower()
    if isinstance(values.get("log_format"), str):
        values["log_format"] = str(values["log_format"]).lower()
    if isinstance(values.get("access_log"), str) and str(values["access_log"]).strip().lower() in _OFF:
        values["access_log"] = None
    try:
        # Environment values are strings: numbers are read as numbers (strict=False).
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _FIELD.search(text)
        name = match.group(1) if match else ""
        if name in ("log_level", "log_format"):
            reason = "expected one of " + ", ".join(get_args(LogLevel if name == "log_level" else LogFormat))
        else:  # "Expected `int` >= 0": every value read from the environment is a `str`
            reason = "e" + _FIELD.sub("", text).replace(", got `str`", "")[1:]
        raise SettingsError(f"{sources.get(name, name or 'settings')}: {reason}") from None
