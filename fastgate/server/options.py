"""Request headers → the options of one request and the config tree it is routed by.

Portkey's precedence: a config with ``provider`` or ``targets`` wins over the provider headers;
a config without them is completed from the headers; the custom-host, forward-headers and
timeout headers beat the config's values.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from fastgate.errors import bad_request
from fastgate.routing.config import ConfigCache, ConfigNode
from fastgate.settings import Settings
from fastgate.ssrf import HostPolicy

PREFIX = "x-portkey-"
#: x-portkey-* headers with a meaning of their own; every other one is a provider option.
GENERIC = frozenset(
    {
        "provider",
        "config",
        "custom-host",
        "forward-headers",
        "trace-id",
        "metadata",
        "request-timeout",
        "strict-open-ai-compliance",
        "cache-force-refresh",
        "cache-namespace",
        "api-key",
        "virtual-key",
        "debug",
        "package-version",
        "runtime",
        "runtime-version",
        "default-input-guardrails",
        "default-output-guardrails",
    }
)
_metadata_decoder = msgspec.json.Decoder(dict[str, Any])


class _TraceIds:
    """Unique ids without a syscall per request: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._count = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._count):x}"


class RequestOptions(msgspec.Struct, kw_only=True):
    trace_id: str
    config: ConfigNode
    metadata: dict[str, Any] = {}
    cache_force_refresh: bool = False


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _clean(value: str, name: str) -> str:
    # aiohttp already refuses CR/LF in incoming headers; NUL and other controls are refused here so
    # nothing derived from a header can split an upstream request.
    if _CONTROL.search(value):
        raise bad_request(f"{name} contains control characters", param=name)
    return value


class OptionsReader:
    """Built once per server: holds the config cache and the SSRF policy."""

    def __init__(self, settings: Settings, policy: HostPolicy) -> None:
        self.settings = settings
        self.policy = policy
        self.configs = ConfigCache(policy)
        self.trace_ids = _TraceIds()

    def read(self, headers: Mapping[str, str]) -> RequestOptions:
        get = headers.get
        trace_id = get("x-portkey-trace-id") or self.trace_ids.next()
        raw_config = get("x-portkey-config")
        config = self.configs.get(raw_config) if raw_config else None
        if config is None or not (config.provider or config.targets):
            config = self._from_headers(headers, config)
        overrides: dict[str, Any] = {}
        custom_host = get("x-portkey-custom-host")
        if custom_host:
            overrides["custom_host"] = self.policy.check_url(_clean(custom_host, "x-portkey-custom-host"))
        forward = get("x-portkey-forward-headers")
        if forward:
            names = tuple(h.strip().lower() for h in forward.split(",") if h.strip())
            if "x-portkey-forward-headers" in names:
                raise bad_request("forward_headers must not contain the 'x-portkey-forward-headers' header")
            overrides["forward_headers"] = names
        timeout = get("x-portkey-request-timeout")
        if timeout:
            try:
                ms = int(float(timeout))
            except ValueError:
                raise bad_request("x-portkey-request-timeout must be a number of milliseconds") from None
            if ms > 0:
                overrides["request_timeout"] = ms
        if get("x-portkey-strict-open-ai-compliance") == "false":
            overrides["strict_open_ai_compliance"] = False
        if overrides:
            config = msgspec.structs.replace(config, **overrides)
        metadata: dict[str, Any] = {}
        raw_metadata = get("x-portkey-metadata")
        if raw_metadata:
            try:
                metadata = _metadata_decoder.decode(raw_metadata)
            except msgspec.DecodeError:
                raise bad_request(
                    "x-portkey-metadata must be a JSON object", param="x-portkey-metadata"
                ) from None
        return RequestOptions(
            trace_id=_clean(trace_id, "x-portkey-trace-id"),
            config=config,
            metadata=metadata,
            cache_force_refresh="x-portkey-cache-force-refresh" in headers,
        )

    def _from_headers(self, headers: Mapping[str, str], config: ConfigNode | None) -> ConfigNode:
        provider = headers.get("x-portkey-provider") or self.settings.default_provider
        if not provider:
            if config is not None:
                raise bad_request(
                    "Either x-portkey-provider needs to be passed, or the x-portkey-config header should "
                    "have a valid config with provider details in it."
                )
            raise bad_request("Either x-portkey-config or x-portkey-provider header is required")
        auth = headers.get("authorization")
        api_key = auth[7:] if auth and auth.startswith("Bearer ") else auth
        if not api_key and provider == "anthropic":
            api_key = headers.get("x-api-key")
        options: dict[str, Any] = {}
        for name, value in headers.items():
            lower = name.lower()
            if lower.startswith(PREFIX) and lower[len(PREFIX) :] not in GENERIC:
                options[lower[len(PREFIX) :].replace("-", "_")] = _clean(value, lower)
        base = config or ConfigNode()
        return msgspec.structs.replace(
            base, provider=provider, api_key=api_key or None, options={**base.options, **options}
        )
