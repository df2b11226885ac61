"""Cache keys: provider, where the request goes, whose credential, and the canonical body.

Portkey's cache key is the request body alone, so two tenants (or two providers) asking the same
question share one answer (reference §6). Here the key covers everything that decides the
upstream's answer:

- the provider and the upstream address: provider name, endpoint, custom host and the target's
  provider options (Azure resource and deployment, AWS region...), which together determine the
  upstream URL without building the upstream request;
- a hash of the credential (never the credential itself) and the gateway key's id, so tenants
  never share an answer;
- the request body in canonical form (keys sorted, whitespace dropped) with the config's
  ``override_params`` applied, so formatting differences still hit.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from fastgate.providers.base import Call

_decode_any = msgspec.json.Decoder()
_encode_sorted = msgspec.json.Encoder(order="sorted").encode


def request_params(call: Call, decoded: dict[str, Any] | None = None) -> Any:
    """The body as the upstream will get it (``override_params`` applied): the gateway's own
    decode of it when there is one, else decoded here."""
    params: Any = decoded if decoded is not None else (_decode_any.decode(call.body) if call.body else {})
    overrides = call.target.override_params
    if overrides and isinstance(params, dict):
        params = {**params, **overrides}
    return params


def address(call: Call, tenant: str) -> bytes:
    """Who asks and where the request goes: tenant, provider, endpoint, host and options."""
    target = call.target
    return _encode_sorted(
        [tenant, target.provider, call.endpoint.value, target.custom_host or "", target.options, call.path]
    )


def credential_digest(api_key: str | None) -> bytes:
    return hashlib.sha256((api_key or "").encode()).digest()


def cache_key(call: Call, tenant: str, params: Any) -> str:
    """``tenant``: the gateway key's id, so keys sharing a server-side credential share nothing;
    ``params``: :func:`request_params`, encoded canonically (keys sorted, no whitespace)."""
    digest = hashlib.sha256(address(call, tenant))
    digest.update(b"\0")
    digest.update(credential_digest(call.target.api_key))
    digest.update(b"\0")
    digest.update(_encode_sorted(params))
    return digest.hexdigest()
