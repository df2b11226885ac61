"""Request headers → the options of one request and the config tree it is routed by.

Portkey's precedence: a config with ``provider`` or ``targets`` wins over the provider headers;
a config without them is completed from the headers; the custom-host, forward-headers and
timeout headers beat the config's values, on every target. ``x-portkey-config`` may also name
a config saved in the server config file.

A request with neither config nor provider (a plain OpenAI client that changed only its
``base_url``) is routed by its ``model`` (``routing/by_model.py``): the server config's aliases,
``@name/model`` and default first, then the server's default provider, then a model named
``<provider>/<model>`` goes to that provider and any other to ``openai``, with the client's own
key. Portkey answers such a request with a 400; drop-in users expect OpenAI.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from fastgate.errors import bad_request
from fastgate.headers import bearer_token
from fastgate.observability.logs import redact
from fastgate.routing.by_model import ClientKey, ModelRoutes
from fastgate.routing.config import ConfigCache, ConfigNode, decode_config
from fastgate.routing.plan import RoutePlan, compile_plan
from fastgate.server_config import SavedConfig, ServerConfig, load_server_config, saved
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
#: Config text, provider, key, provider options and virtual key of a header-built target.
HeaderPlanKey = tuple[str | None, str, str | None, tuple[tuple[str, str], ...], str | None]
#: The headers a request's route is built from, besides its provider-option headers.
_ROUTE_HEADERS = (
    "x-portkey-config",
    "x-portkey-provider",
    "x-portkey-virtual-key",
    "authorization",
    "x-api-key",
    "x-portkey-custom-host",
    "x-portkey-forward-headers",
    "x-portkey-request-timeout",
    "x-portkey-strict-open-ai-compliance",
)
#: The values of ``_ROUTE_HEADERS``, then the provider-option header names and their values.
RouteKey = tuple[Any, ...]
#: Distinct header-name sets remembered before the table starts over.
_MAX_NAME_SETS = 1024
#: What a set of routing header values decides: the plan (None: the body's model chooses it),
#: the header overrides, and the client's key for a plan chosen by model.
Route = tuple[RoutePlan | None, dict[str, Any], ClientKey | None]


def _trace_ids() -> Iterator[str]:
    """Unique ids without a syscall per request: a random per-process prefix and a counter
    (an iterator all in C: no Python frame per id; ``%x``, not a format spec, which runs the
    general formatter)."""
    return map(f"{os.urandom(6).hex()}-%x".__mod__, itertools.count(1))


class RequestOptions(msgspec.Struct, kw_only=True):
    trace_id: str
    #: The compiled routing plan; None when the server config routes by the body's ``model``.
    plan: RoutePlan | None
    #: Header values that beat every target's config (custom host, forward headers, timeout).
    overrides: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    cache_force_refresh: bool = False
    #: The client's key and provider options, for a plan chosen by the body's ``model``.
    client: ClientKey | None = None


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _clean(value: str, name: str) -> str:
    # The request parser refuses CR, LF and NUL in incoming headers; values that reach here from
    # configs are checked too, so nothing derived from a header can split an upstream request.
    if _CONTROL.search(value):
        raise bad_request(f"{name} contains control characters", param=name)
    return value


class OptionsReader:
    """Built once per server: holds the config cache, the SSRF policy and the server config."""

    def __init__(self, settings: Settings, policy: HostPolicy, server: ServerConfig | None = None) -> None:
        self.settings = settings
        self.policy = policy
        if server is None:
            server = (
                load_server_config(settings.config_path, policy) if settings.config_path else ServerConfig()
            )
        self.server = server
        self.configs: ConfigCache[str, SavedConfig] = ConfigCache(self._parse)
        self.header_plans: ConfigCache[HeaderPlanKey, RoutePlan] = ConfigCache(self._header_plan)
        #: The plan, overrides and (when the model will choose the plan) client key of each
        #: distinct set of routing header values: a client sends the same ones on every request,
        #: so they are judged (SSRF check included) once.
        self.routes: ConfigCache[RouteKey, Route] = ConfigCache(self._route)
        self.by_model = ModelRoutes(server.for_model, settings.default_provider)
        #: The provider-option headers (``x-portkey-*`` without a meaning of their own) among
        #: each set of header names seen: clients send the same names on every request, and
        #: looking a tuple of them up costs far less than testing each name.
        self._option_names: dict[tuple[str, ...], tuple[str, ...]] = {}
        self.trace_ids = _trace_ids()

    def _parse(self, raw: str) -> SavedConfig:
        if raw.lstrip().startswith("{"):
            return saved(decode_config(raw, self.policy), cb_config=self.server.cb_config)
        # Not JSON: the name of a config saved on the server (Portkey's hosted config ids).
        entry = self.server.configs.get(raw.strip())
        if entry is None:
            # Echoed redacted and cut short: a key pasted here by mistake must not come back.
            shown = redact(raw.strip())[:64]
            raise bad_request(f"Invalid config passed: no saved config is named {shown!r}", param="config")
        return entry

    def plan_for_model(self, model: str | None, opts: RequestOptions) -> RoutePlan:
        """The plan of a request whose headers name no provider and no config."""
        assert opts.client is not None
        return self.by_model.plan(model, opts.client)

    def read(self, headers: Mapping[str, str]) -> RequestOptions:
        get = headers.get
        given_trace_id = get("x-portkey-trace-id")
        trace_id = _clean(given_trace_id, "x-portkey-trace-id") if given_trace_id else next(self.trace_ids)
        names = tuple(headers)
        option_names = self._option_names.get(names)
        if option_names is None:
            option_names = self._learn_option_names(names)
        key = (
            *map(get, _ROUTE_HEADERS),
            option_names,
            tuple(map(headers.__getitem__, option_names)) if option_names else (),
        )
        plan, overrides, client = self.routes.get(key)
        metadata: dict[str, Any] = {}
        raw_metadata = get("x-portkey-metadata")
        if raw_metadata:
            try:
                metadata = _metadata_decoder.decode(raw_metadata)
            except msgspec.DecodeError:
                raise bad_request(
                    "x-portkey-metadata must be a JSON object", param="x-portkey-metadata"
                ) from None
            except RecursionError:
                raise bad_request(
                    "x-portkey-metadata is nested too deeply", param="x-portkey-metadata"
                ) from None
        return RequestOptions(
            trace_id=trace_id,
            plan=plan,
            overrides=overrides,
            metadata=metadata,
            cache_force_refresh="x-portkey-cache-force-refresh" in headers,
            client=client,
        )

    def _learn_option_names(self, names: tuple[str, ...]) -> tuple[str, ...]:
        found = tuple(n for n in names if n.startswith(PREFIX) and n[len(PREFIX) :] not in GENERIC)
        if len(self._option_names) >= _MAX_NAME_SETS:
            self._option_names.clear()
        self._option_names[names] = found
        return found

    def _route(self, key: RouteKey) -> Route:
        """The plan and the overrides (shared by every request with these headers: never changed)
        of one set of routing header values; without a plan, the client's key for the model's."""
        (
            raw_config,
            provider,
            virtual_key,
            auth,
            x_api_key,
            custom_host,
            forward,
            timeout,
            strict,
            option_names,
            option_values,
        ) = key
        target = (provider, virtual_key, auth, x_api_key, option_names, option_values)
        plan: RoutePlan | None = None
        client: ClientKey | None = None
        if raw_config:
            entry = self.configs.get(raw_config)
            plan = entry.plan or self.header_plans.get(
                (raw_config, *self._header_target(*target, entry.node))
            )
        elif provider or virtual_key or (self.settings.default_provider and not self.server.routes_by_model):
            plan = self.header_plans.get((None, *self._header_target(*target, None)))
        else:
            client = ClientKey(
                self._client_key(auth), x_api_key or None, self._options(option_names, option_values)
            )
        overrides: dict[str, Any] = {}
        if custom_host:
            overrides["custom_host"] = self.policy.check_url(_clean(custom_host, "x-portkey-custom-host"))
        if forward:
            names = tuple(h.strip().lower() for h in forward.split(",") if h.strip())
            if "x-portkey-forward-headers" in names:
                raise bad_request("forward_headers must not contain the 'x-portkey-forward-headers' header")
            overrides["forward_headers"] = names
        if timeout:
            try:
                ms = int(float(timeout))
            except ValueError:
                raise bad_request("x-portkey-request-timeout must be a number of milliseconds") from None
            if ms > 0:
                overrides["request_timeout"] = ms
        if strict == "false":
            overrides["strict_open_ai_compliance"] = False
        return plan, overrides, client

    def _header_target(
        self,
        provider: str | None,
        virtual_key: str | None,
        auth: str | None,
        x_api_key: str | None,
        option_names: tuple[str, ...],
        option_values: tuple[str, ...],
        config: ConfigNode | None,
    ) -> tuple[str, str | None, tuple[tuple[str, str], ...], str | None]:
        """Provider, key, provider options and virtual key from the headers (Portkey §3.4)."""
        provider = provider or self.settings.default_provider or ""
        virtual_key = virtual_key or None
        if not provider and not virtual_key:
            if config is not None:
                raise bad_request(
                    "Either x-portkey-provider needs to be passed, or the x-portkey-config header should "
                    "have a valid config with provider details in it."
                )
            raise bad_request("Either x-portkey-config or x-portkey-provider header is required")
        api_key = self._client_key(auth)
        if not api_key:  # Anthropic's clients send their key this way, whatever the target
            api_key = x_api_key
        return provider, api_key or None, self._options(option_names, option_values), virtual_key

    @staticmethod
    def _client_key(auth: str | None) -> str | None:
        """The provider key a client sends: its ``Authorization`` value without ``Bearer ``."""
        token = bearer_token(auth)
        return (auth if token is None else token) or None

    @staticmethod
    def _options(names: tuple[str, ...], values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
        """Provider options from their ``x-portkey-<option>`` headers."""
        return tuple(
            (name[len(PREFIX) :].replace("-", "_"), _clean(value, name))
            for name, value in zip(names, values, strict=True)
        )

    def _header_plan(self, key: HeaderPlanKey) -> RoutePlan:
        """A plan for a target named by headers; clients send the same few, so it is cached."""
        raw_config, provider, api_key, options, virtual_key = key
        base = self.configs.get(raw_config).node if raw_config else ConfigNode()
        node = msgspec.structs.replace(
            base,
            provider=provider or None,
            api_key=api_key,
            options={**base.options, **dict(options)},
            virtual_key=virtual_key,
        )
        return compile_plan(node)
