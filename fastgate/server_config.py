"""The server's own config file (``fastgate serve --config FILE``, JSON or TOML).

Portkey's open-source gateway has no server-side configs: every client sends the whole config,
keys included (issues #360, #1608). Here the file holds them, so secrets stay on the server:

- ``configs``: named configs; a client sends ``x-portkey-config: <name>`` instead of the JSON.
- ``providers``: named targets, reached with Portkey's model-catalog form ``@<name>/<model>``.
- ``models``: model aliases, each a config (a target, or a whole fallback tree) or the name of
  a saved config, chosen by the request's ``model``.
- ``default``: a config (or a saved config's name) for requests that name no provider and no
  config: a plain OpenAI client that only changed its ``base_url`` is routed.
- ``prices``: per model, input and output prices per million tokens, for cost budgets.
- ``semantic_cache``: threshold and embedding target of ``cache: {mode: "semantic"}``
  (``fastgate/cache/semantic.py``).
- ``metrics_public``: ``/metrics`` open to anyone even when an admin token or gateway keys
  guard it (``fastgate/gateway/metrics_access.py``).
- ``cb_config``: circuit breaking for every strategy that sets none of its own, in Portkey's
  ``strategy.cb_config`` terms (``fastgate/routing/breaker.py``); without it, and without a
  config's own, no target is ever skipped.
- ``redis``: the shared Redis when a URL is not enough (Sentinel, TLS files, Cluster seeds;
  ``fastgate/store/redis_config.py``); ``--redis-url`` wins over it.
- ``server``: the server's timeouts and limits (``SERVER_SETTINGS``, described in
  ``fastgate/settings.py``); a flag or a ``FASTGATE_*`` variable wins over the file.

```toml
default = "main"
[configs.main]
strategy = { mode = "fallback" }
targets = [{ provider = "openai", api_key = "sk-..." }, { provider = "groq", api_key = "gsk-..." }]
[providers.openai-prod]
provider = "openai"
api_key = "sk-..."
[models.gpt-4o]
provider = "openai"
api_key = "sk-..."
[server]
client_timeout = 30
max_connections = 10000
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from fastgate.cache.semantic import SemanticSettings
from fastgate.config_file import read_config_file
from fastgate.errors import GatewayError, bad_request
from fastgate.limits.prices import PriceTable
from fastgate.routing.config import (
    CircuitBreakerConfig,
    ConfigCache,
    ConfigNode,
    check_cb_config,
    config_from_data,
)
from fastgate.routing.plan import RoutePlan, compile_plan
from fastgate.ssrf import HostPolicy
from fastgate.store.redis_config import RedisSettings, settings_from_block

#: What the ``[server]`` table may set.
SERVER_SETTINGS = (
    "client_timeout",
    "keepalive_timeout",
    "max_connections",
    "max_body_bytes",
    "max_upload_bytes",
    "realtime_max_frame_bytes",
    "realtime_idle_seconds",
    "max_in_flight",
    "shutdown_grace",
    "connect_timeout",
    "read_timeout",
    "max_stream_seconds",
    "max_response_bytes",
)


class SavedConfig(msgspec.Struct, frozen=True):
    node: ConfigNode
    #: None when the config names no provider, targets or virtual key: headers complete it per request.
    plan: RoutePlan | None


def saved(
    node: ConfigNode, *, name: str | None = None, cb_config: CircuitBreakerConfig | None = None
) -> SavedConfig:
    routed = node.provider or node.targets or node.virtual_key
    return SavedConfig(node, compile_plan(node, name=name, cb_config=cb_config) if routed else None)


class ServerConfig:
    """What the config file defines, compiled at start-up."""

    def __init__(
        self,
        configs: dict[str, SavedConfig] | None = None,
        providers: dict[str, ConfigNode] | None = None,
        models: dict[str, RoutePlan] | None = None,
        default: RoutePlan | None = None,
        cb_config: CircuitBreakerConfig | None = None,
    ) -> None:
        self.configs = configs or {}
        #: Circuit breaking of every strategy that sets none (``cb_config`` at the top level).
        self.cb_config = cb_config
        self.providers = providers or {}
        self.models = models or {}
        self.default = default
        #: Model prices for cost budgets (``[prices.gpt-4o] input = 2.5, output = 10``, per 1M tokens).
        self.prices = PriceTable()
        #: ``[semantic_cache]``: threshold and embedding target of ``cache: {mode: "semantic"}``.
        self.semantic: SemanticSettings | None = None
        #: ``/metrics`` needs no token (``metrics_public = true``).
        self.metrics_public = False
        #: ``[redis]``: where the shared state lives.
        self.redis: RedisSettings | None = None
        #: Requests without routing headers are routed here (by model, else the default).
        self.routes_by_model = bool(self.models or self.providers or self.default)
        #: Some plan reached by model decodes the body whole (see ``RoutePlan.decodes_body``).
        self.decodes_body = any(
            p.decodes_body for p in [*self.models.values(), *([default] if default else [])]
        )
        self._catalog: ConfigCache[str, RoutePlan] = ConfigCache(self._catalog_plan, size=1024)

    def for_model(self, model: str | None) -> RoutePlan | None:
        """The plan for a request that named no provider and no config, if this file has one
        (``routing/by_model.py`` decides the rest)."""
        if model:
            plan = self.models.get(model)
            if plan is not None:
                return plan
            if model.startswith("@") and "/" in model:
                name = model[1:].partition("/")[0]
                # ``@name/model``: a provider of this file; else left to the provider slugs.
                return self._catalog.get(model) if name in self.providers else None
        return self.default

    def _catalog_plan(self, model: str) -> RoutePlan:
        # Portkey's ``@provider/model``: the named target, with the model after the slash.
        name, _, upstream_model = model[1:].partition("/")
        node = self.providers[name]
        if not upstream_model:
            raise bad_request(f"No model after the provider in {model!r}", param="model")
        params = {**(node.override_params or {}), "model": upstream_model}
        return compile_plan(msgspec.structs.replace(node, override_params=params))


class _File(msgspec.Struct, forbid_unknown_fields=True):
    configs: dict[str, Any] = {}
    providers: dict[str, Any] = {}
    models: dict[str, Any] = {}
    default: Any = None
    prices: dict[str, Any] = {}
    semantic_cache: dict[str, Any] | None = None
    metrics_public: bool = False
    cb_config: dict[str, Any] | None = None
    redis: dict[str, Any] | None = None
    server: dict[str, Any] = {}


def build_server_config(data: Any, policy: HostPolicy) -> ServerConfig:
    """Compile the file's contents; an error is a ``ValueError`` naming the bad entry."""
    try:
        spec = msgspec.convert(data, _File)
    except msgspec.ValidationError as exc:
        raise ValueError(f"server config: {exc}") from None
    where = ""
    try:
        cb: CircuitBreakerConfig | None = None
        if spec.cb_config is not None:
            try:
                cb = msgspec.convert(spec.cb_config, CircuitBreakerConfig)
            except msgspec.ValidationError as exc:
                raise bad_request(f"cb_config: {exc}") from None
            check_cb_config(cb, "cb_config")
        configs: dict[str, SavedConfig] = {}
        for name, value in spec.configs.items():
            where = f"configs.{name}: "
            configs[name] = saved(config_from_data(value, policy), name=name, cb_config=cb)
        providers: dict[str, ConfigNode] = {}
        for name, value in spec.providers.items():
            where = f"providers.{name}: "
            node = config_from_data(value, policy)
            compile_plan(node)  # a catalog entry is one target: check it now, not at the first request
            providers[name] = node

        def resolve(value: Any, name: str) -> RoutePlan:
            if isinstance(value, str):
                entry = configs.get(value)
                if entry is None:
                    raise bad_request(f"no saved config is named {value!r}")
            else:
                entry = saved(config_from_data(value, policy), name=name, cb_config=cb)
            if entry.plan is None:
                raise bad_request("a routed config needs a provider or targets")
            return entry.plan

        models: dict[str, RoutePlan] = {}
        for name, value in spec.models.items():
            where = f"models.{name}: "
            models[name] = resolve(value, f"models.{name}")
        where = "default: "
        default = resolve(spec.default, "default") if spec.default is not None else None
    except GatewayError as exc:
        raise ValueError(f"server config: {where}{exc.message}") from None
    unknown = sorted(set(spec.server) - set(SERVER_SETTINGS))
    if unknown:
        raise ValueError(
            f"server config: server.{unknown[0]}: not a server setting (one of {', '.join(SERVER_SETTINGS)})"
        )
    config = ServerConfig(configs, providers, models, default, cb)
    config.metrics_public = spec.metrics_public
    try:
        config.prices = PriceTable.from_data(spec.prices)
    except msgspec.ValidationError as exc:
        # ``[prices.gpt-4.1]`` is TOML for the table "1" inside "gpt-4": a dotted name is quoted.
        dotted = (
            ' (quote a model name that has a dot: [prices."gpt-4.1"])' if "unknown field" in str(exc) else ""
        )
        raise ValueError(f"server config: prices: {exc}{dotted}") from None
    if spec.semantic_cache is not None:
        try:
            config.semantic = SemanticSettings.from_data(spec.semantic_cache, policy)
        except (msgspec.ValidationError, ValueError) as exc:
            raise ValueError(f"server config: semantic_cache: {exc}") from None
        except GatewayError as exc:
            raise ValueError(f"server config: semantic_cache.embedding: {exc.message}") from None
    if spec.redis is not None:
        try:
            config.redis = settings_from_block(spec.redis)
        except ValueError as exc:
            raise ValueError(f"server config: redis: {exc}") from None
    return config


def load_server_config(path: str, policy: HostPolicy) -> ServerConfig:
    try:
        data = read_config_file(Path(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"server config {path}: {exc}") from None
    return build_server_config(data, policy)


def server_table(path: str) -> dict[str, Any]:
    """The file's ``[server]`` table, read on its own: the settings it holds are needed before the
    rest of the file is compiled. A file that cannot be read gives nothing here; loading it whole
    says what is wrong."""
    try:
        data = read_config_file(Path(path))
    except (OSError, ValueError):
        return {}
    table = data.get("server") if isinstance(data, dict) else None
    return {k: v for k, v in table.items() if k in SERVER_SETTINGS} if isinstance(table, dict) else {}
