"""Gateway API keys and virtual keys: who may call, and the provider secret a virtual key stands for.

Portkey's clients send ``x-portkey-api-key`` and ``x-portkey-virtual-key`` instead of provider
secrets; its open-source gateway ignores both. Here a gateway key is required as soon as the
server has one (401 without, 403 outside its allowances), and a virtual key is resolved on the
server to its provider, secret, options and host, the secret never reaching the client.
"""

from __future__ import annotations

import msgspec

from fastgate.errors import GatewayError
from fastgate.gateway.pipeline import Attempt, Exchange, Stage
from fastgate.gateway.relay import Outcome
from fastgate.headers import bearer_token
from fastgate.keys.models import VirtualKey
from fastgate.keys.registry import KeyRegistry
from fastgate.providers.base import MODELLESS, Target
from fastgate.routing.plan import Leaf


def _forbidden(message: str, param: str) -> GatewayError:
    return GatewayError(403, message, type="permission_error", param=param, code="not_allowed")


class KeysStage(Stage):
    def __init__(self, registry: KeyRegistry | None) -> None:
        self.registry = registry

    def arrive(self, ex: Exchange) -> bool:
        """The request's gateway key, required (401) as soon as the server has any.

        A key limited to some configs may only name one of them (a saved config's name in
        ``x-portkey-config``): no inline config, no header-built route.
        """
        registry = self.registry
        if registry is None or not registry.required:
            return False
        headers = ex.request.headers
        token = headers.get("x-portkey-api-key")
        bearer = None
        if not token:
            token = bearer = bearer_token(headers.get("authorization"))
        key = registry.authenticate(token, from_bearer=bearer is not None)
        if key.allowed_configs and (headers.get("x-portkey-config") or "").strip() not in key.allowed_configs:
            raise _forbidden("This API key may not use this config", "config")
        ex.key = key
        if bearer is not None:
            # The gateway key came in Authorization: neither a provider key nor a header the
            # passthrough may copy upstream.
            ex.note(self, bearer)
            ex.headers = {k: v for k, v in headers.items() if k != "authorization"}
        return True

    def wants(self, leaf: Leaf) -> bool:
        return bool(leaf.target.virtual_key)

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        """Resolve the target's virtual key; check the gateway key's allowances on the result."""
        call = at.call
        target = call.target
        if target.virtual_key:
            target, at.virtual_key = self.resolved(target)
        key = ex.key
        if key is not None:
            bearer = ex.noted(self)
            if bearer is not None and target.api_key == bearer:
                # The bearer was the gateway key: the provider key, if any, is the one Anthropic's
                # clients send beside it.
                target = msgspec.structs.replace(target, api_key=ex.headers.get("x-api-key") or None)
            if key.allowed_providers and target.provider not in key.allowed_providers:
                raise _forbidden(f"This API key may not use provider {target.provider!r}", "provider")
            if key.allowed_models and ex.endpoint not in MODELLESS:  # files and batches name none
                params = target.override_params or {}
                chosen = params.get("model", ex.view.model)
                if chosen not in key.allowed_models:
                    raise _forbidden(f"This API key may not use model {chosen!r}", "model")
        call.target = target
        return at.virtual_key is not None

    def resolved(self, target: Target) -> tuple[Target, VirtualKey | None]:
        """The target with its virtual key (if it names one) resolved, and the key."""
        slug = target.virtual_key
        if not slug:
            return target, None
        if self.registry is None:
            raise GatewayError(
                401, "Virtual keys are not configured on this server", type="authentication_error"
            )
        vk = self.registry.resolve(slug)
        return _with_virtual_key(target, vk), vk

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        target = at.call.target
        if target.api_key and outcome.body is not None and outcome.status >= 300:
            # Some upstreams quote the key they refused; a virtual key's secret never leaves.
            outcome.body = outcome.body.replace(target.api_key.encode(), b"[virtual key secret]")
        return outcome


def _with_virtual_key(target: Target, vk: VirtualKey) -> Target:
    """The virtual key's provider, secret, host and options; the request may add options the
    key does not set, never replace one, and may not send the secret to a host of its choosing."""
    if target.custom_host and target.custom_host != vk.custom_host:
        raise GatewayError(
            400,
            "A virtual key's host is set on the server: custom_host cannot be used with it",
            param="custom_host",
            code="custom_host_not_allowed",
        )
    return msgspec.structs.replace(
        target,
        provider=vk.provider,
        api_key=vk.secret or None,
        custom_host=vk.custom_host,
        options={**target.options, **vk.options},
    )
