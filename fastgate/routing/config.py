"""Portkey's config JSON: decoded, normalised (camelCase accepted) and validated once.

Snake_case is canonical; camelCase keys are converted, except inside the subtrees that hold
user data (``override_params``, condition queries, service-account JSON), which stay verbatim.
Keys a node does not define are provider options (``aws_region``, ``resource_name`` ...) and
are kept in ``options``. Validation errors name the path of the bad field.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, Literal, TypeVar

import msgspec

from fastgate.errors import GatewayError, bad_request
from fastgate.guardrails.compile import check_urls
from fastgate.guardrails.spec import HookSpec
from fastgate.jsontext import duplicate_key
from fastgate.ssrf import HostPolicy

DEFAULT_RETRY_STATUS = (429, 500, 502, 503, 504)
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class RetrySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    attempts: int = 0
    on_status_codes: tuple[int, ...] = DEFAULT_RETRY_STATUS
    use_retry_after_header: bool = False


class CacheSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mode: Literal["simple", "semantic"] = "simple"
    max_age: float | None = None


class CircuitBreakerConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Portkey's ``strategy.cb_config`` (its circuit breaker docs; ``routing/breaker.py``)."""

    failure_threshold: int | None = None
    failure_threshold_percentage: float | None = None
    minimum_requests: int | None = None
    #: Milliseconds; Portkey raises anything under 30 s to 30 s.
    cooldown_interval: int | None = None
    failure_status_codes: tuple[int, ...] | None = None


class Condition(msgspec.Struct, kw_only=True):
    query: dict[str, Any]
    then: str


class Strategy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    mode: Literal["single", "loadbalance", "fallback", "conditional"]
    on_status_codes: tuple[int, ...] | None = None
    conditions: list[Condition] | None = None
    default: str | None = None
    cb_config: CircuitBreakerConfig | None = None


class ConfigNode(msgspec.Struct, kw_only=True):
    strategy: Strategy | None = None
    targets: list[ConfigNode] | None = None
    name: str | None = None
    provider: str | None = None
    api_key: str | None = None
    virtual_key: str | None = None
    weight: float = 1.0
    override_params: dict[str, Any] | None = None
    retry: RetrySettings | None = None
    request_timeout: int | None = None
    cache: CacheSettings | None = None
    custom_host: str | None = None
    forward_headers: tuple[str, ...] | None = None
    strict_open_ai_compliance: bool | None = None
    #: Guardrails and mutators (``fastgate/guardrails``): full hook objects, and the shorthands
    #: (lists of objects whose keys are check ids), compiled with the routing plan.
    before_request_hooks: list[HookSpec] | None = None
    after_request_hooks: list[HookSpec] | None = None
    input_guardrails: list[Any] | None = None
    output_guardrails: list[Any] | None = None
    input_mutators: list[Any] | None = None
    output_mutators: list[Any] | None = None
    #: Every other key: provider options.
    options: dict[str, Any] = {}


_FIELDS = frozenset(f for f in ConfigNode.__struct_fields__ if f != "options")
#: Subtrees kept verbatim: user data, not config keys.
_VERBATIM = frozenset(
    {
        "override_params",
        "conditions",
        "cb_config",
        "vertex_service_account_json",
        "query",
        # A check's parameters are named in camelCase by Portkey's plugins (minWords, failOnError).
        "checks",
        "input_guardrails",
        "output_guardrails",
        "input_mutators",
        "output_mutators",
        "metadata",
    }
)
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
# Legacy and hosted-only keys that Portkey accepts and ignores.
_IGNORED = frozenset(
    {
        "on_status_codes",
        "id",
        "cb_config",
    }
)


def _snake(key: str) -> str:
    return _CAMEL.sub(r"_\1", key).lower() if any(c.isupper() for c in key) else key


def _normalise(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _snake(key) if isinstance(key, str) else key
            out[name] = item if name in _VERBATIM else _normalise(item)
        return out
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def _split_options(node: Any, path: str) -> Any:
    if not isinstance(node, dict):
        raise bad_request(f"Invalid config: {path or 'config'} must be an object", param=path or "config")
    out: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for key, value in node.items():
        if key == "options":
            raise bad_request(
                "Invalid config: the legacy 'options' format is not supported; use 'targets'", param="options"
            )
        if key in _FIELDS:
            out[key] = value
        elif key not in _IGNORED:
            options[key] = value
    targets = out.get("targets")
    if isinstance(targets, list):
        out["targets"] = [
            _split_options(t, f"{path}.targets[{i}]" if path else f"targets[{i}]")
            for i, t in enumerate(targets)
        ]
    if options:
        out["options"] = options
    return out


_PATH = re.compile(r" - at `\$\.?([^`]*)`")


def _path_of(exc: msgspec.ValidationError) -> tuple[str, str]:
    text = str(exc)
    match = _PATH.search(text)
    if not match:
        return "config", text
    path = match.group(1).replace(".options", "") or "config"
    return path, text[: match.start()]


def decode_config(raw: str, policy: HostPolicy) -> ConfigNode:
    """A validated config tree from the ``x-portkey-config`` JSON text."""
    try:
        data = msgspec.json.decode(raw)
        # Configs are cached by text, so this second look costs once per distinct config.
        duplicate = duplicate_key(raw)
        if duplicate is not None:
            raise bad_request(f"Invalid config passed: the key {duplicate!r} appears more than once")
        return config_from_data(data, policy)
    except msgspec.DecodeError as exc:
        raise bad_request(f"Invalid config passed: not valid JSON ({exc})", param="config") from None
    except RecursionError:
        raise bad_request("Invalid config passed: nested too deeply", param="config") from None


def config_from_data(data: Any, policy: HostPolicy) -> ConfigNode:
    """A validated config tree from decoded JSON (or TOML) data."""
    try:
        node = msgspec.convert(_split_options(_normalise(data), ""), ConfigNode)
    except msgspec.ValidationError as exc:
        path, message = _path_of(exc)
        raise bad_request(f"Invalid config passed: {path}: {message}", param=path) from None
    _validate(node, "", policy)
    return node


def _at(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def _validate(node: ConfigNode, path: str, policy: HostPolicy) -> None:
    if node.custom_host is not None:
        node.custom_host = policy.check_url(node.custom_host, _at(path, "custom_host"))
    if node.weight < 0:
        where = _at(path, "weight")
        raise bad_request(f"Invalid config passed: {where} must be >= 0", param=where)
    if node.retry is not None and node.retry.attempts < 0:
        where = _at(path, "retry.attempts")
        raise bad_request(f"Invalid config passed: {where} must be >= 0", param=where)
    if node.request_timeout is not None and node.request_timeout <= 0:
        where = _at(path, "request_timeout")
        raise bad_request(f"Invalid config passed: {where} must be > 0", param=where)
    if node.forward_headers and "x-portkey-forward-headers" in (h.lower() for h in node.forward_headers):
        raise bad_request(
            "forward_headers must not contain the 'x-portkey-forward-headers' header",
            param=_at(path, "forward_headers"),
        )
    if node.strategy is not None and node.strategy.cb_config is not None:
        check_cb_config(node.strategy.cb_config, _at(path, "strategy.cb_config"))
    if node.strategy is not None and not node.targets:
        where = _at(path, "targets")
        raise bad_request(f"Invalid config passed: {where} is required with a strategy", param=where)
    if node.targets is not None and not node.targets:
        where = _at(path, "targets")
        raise bad_request(f"Invalid config passed: {where} must not be empty", param=where)
    check_urls(node, f"config.{path}" if path else "config", policy)
    for i, child in enumerate(node.targets or ()):
        _validate(child, _at(path, f"targets[{i}]"), policy)


def check_cb_config(cb: CircuitBreakerConfig, where: str) -> None:
    """A ``cb_config`` that can open a circuit, or a 400 naming what is missing or out of range.

    Portkey ignores one without a threshold or a ``cooldown_interval`` (its circuits never open);
    here a config means what it says, so it is refused instead.
    """
    if not (cb.failure_threshold or cb.failure_threshold_percentage):
        raise bad_request(
            f"Invalid config passed: {where} needs failure_threshold or failure_threshold_percentage",
            param=where,
        )
    if cb.cooldown_interval is None:
        raise bad_request(
            f"Invalid config passed: {where}.cooldown_interval is required (milliseconds)",
            param=f"{where}.cooldown_interval",
        )
    checks = (
        ("failure_threshold", cb.failure_threshold, 1, None),
        ("failure_threshold_percentage", cb.failure_threshold_percentage, 0, 100),
        ("minimum_requests", cb.minimum_requests, 1, None),
        ("cooldown_interval", cb.cooldown_interval, 0, None),
    )
    for name, value, low, high in checks:
        if value is not None and (value < low or (high is not None and value > high)):
            span = f"between {low} and {high}" if high is not None else f">= {low}"
            raise bad_request(
                f"Invalid config passed: {where}.{name} must be {span}", param=f"{where}.{name}"
            )
    for code in cb.failure_status_codes or ():
        if not 100 <= code <= 599:
            raise bad_request(
                f"Invalid config passed: {where}.failure_status_codes: {code} is not an HTTP status",
                param=f"{where}.failure_status_codes",
            )


class ConfigCache(Generic[K, T]):
    """Built configs by header text: a client sends the same few configs over and over, so each
    distinct text is decoded, validated and compiled once (bad ones too: their error is kept)."""

    def __init__(self, build: Callable[[K], T], size: int = 512) -> None:
        self._build = build
        self._size = size
        self._items: OrderedDict[K, T | GatewayError] = OrderedDict()

    def get(self, raw: K) -> T:
        hit = self._items.get(raw)
        if hit is None:
            try:
                hit = self._build(raw)
            except GatewayError as exc:
                hit = exc
            self._items[raw] = hit
            if len(self._items) > self._size:
                self._items.popitem(last=False)
        else:
            self._items.move_to_end(raw)
        if isinstance(hit, GatewayError):
            raise hit.with_traceback(None)  # a fresh traceback: re-raising grows the old one
        return hit
