"""The route of a request that names no provider and no config: chosen by its ``model``.

A plain OpenAI client that changed only its ``base_url`` sends its key and a model, nothing
else. In order: the server config's model aliases, its ``@name/model`` providers and its
default; the server's default provider; then ``@<slug>/<model>`` or ``<slug>/<model>`` with a
provider slug fastgate knows goes to that provider, and any other model to ``openai``, each
with the client's own key as the provider's key. A model id that itself has a slash
(``meta-llama/Llama-3.3-70B``) reaches the provider a request names untouched: this module is
consulted only when nothing names one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from fastgate.errors import bad_request
from fastgate.providers.registry import PROVIDERS
from fastgate.routing.config import ConfigCache, ConfigNode
from fastgate.routing.plan import RoutePlan, compile_plan

#: Where a model that names no provider goes, as on the API the client was written for.
DEFAULT_PROVIDER = "openai"


class ClientKey(NamedTuple):
    """What the client's headers carry for its provider: its key, Anthropic's ``x-api-key``
    (Claude clients), and provider options (``x-portkey-openai-organization`` ...)."""

    api_key: str | None
    x_api_key: str | None
    options: tuple[tuple[str, str], ...]


def provider_of(model: str | None, default_provider: str | None) -> tuple[str, str | None]:
    """The provider a model names and the model the provider is asked for (None: as sent)."""
    if model:
        name, slash, rest = model.partition("/")
        if model.startswith("@") and slash:
            slug = name[1:]
            if slug not in PROVIDERS or not rest:
                raise bad_request(f"Unknown provider {slug!r} in model {model!r}", param="model")
            return slug, rest
        if default_provider:
            return default_provider, None
        if slash and rest and name in PROVIDERS:
            return name, rest
    return default_provider or DEFAULT_PROVIDER, None


class ModelRoutes:
    """Plans by model and client key, each built once (a client sends the same few).

    ``configured`` is the server config's own plan for a model (``ServerConfig.for_model``).
    """

    def __init__(
        self, configured: Callable[[str | None], RoutePlan | None], default_provider: str | None
    ) -> None:
        self.configured = configured
        self.default_provider = default_provider
        self._plans: ConfigCache[tuple[str | None, ClientKey], RoutePlan] = ConfigCache(
            self._build, size=1024
        )

    def plan(self, model: str | None, client: ClientKey) -> RoutePlan:
        plan = self.configured(model)
        return plan if plan is not None else self._plans.get((model, client))

    def _build(self, key: tuple[str | None, ClientKey]) -> RoutePlan:
        model, client = key
        provider, upstream_model = provider_of(model, self.default_provider)
        api_key = client.api_key or (client.x_api_key if provider == "anthropic" else None)
        if not api_key and not self.default_provider:
            # Nothing to go on: not even a key for the provider a plain client means.
            raise bad_request(
                "Either x-portkey-config or x-portkey-provider header is required "
                "(or an Authorization key, for the provider the model names or openai)"
            )
        node = ConfigNode(
            provider=provider,
            api_key=api_key,
            options=dict(client.options),
            override_params={"model": upstream_model} if upstream_model else None,
        )
        return compile_plan(node)
