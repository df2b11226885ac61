"""Key records as stored (JSON) and as served by the admin API (secrets left out).

Gateway API keys are stored as the SHA-256 of the key: keys are 256-bit random tokens, so a
fast hash is enough (no password-style stretching needed) and a lookup costs one hash.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import msgspec

from fastgate.store.base import LimitRule

KEY_PREFIX = "fg-"


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class Limits(msgspec.Struct, kw_only=True, omit_defaults=True, forbid_unknown_fields=True):
    """Requests and tokens per minute, and a lifetime budget in tokens or cost (0: none)."""

    rpm: int = 0
    tpm: int = 0
    budget_tokens: int = 0
    budget_cost: float = 0.0

    def rule(self, scope: str) -> LimitRule | None:
        if not (self.rpm or self.tpm or self.budget_tokens or self.budget_cost):
            return None
        return LimitRule(
            scope=scope,
            rpm=self.rpm,
            tpm=self.tpm,
            budget_tokens=self.budget_tokens,
            budget_cost=self.budget_cost,
        )


class GatewayKey(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    name: str = ""
    #: SHA-256 of the key; the key itself is shown once, when it is created.
    hash: str = ""
    created: float = 0.0
    #: Empty: any.
    allowed_providers: tuple[str, ...] = ()
    allowed_models: tuple[str, ...] = ()
    allowed_configs: tuple[str, ...] = ()
    limits: Limits = msgspec.field(default_factory=Limits)

    def public(self) -> dict[str, Any]:
        data = msgspec.to_builtins(self)
        data.pop("hash", None)
        return data


class VirtualKey(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A slug standing for a provider, its secret and its options (Azure resource, AWS region...)."""

    slug: str
    provider: str
    secret: str = ""
    #: Provider options merged under the target's own (``resource_name``, ``aws_region``...).
    options: dict[str, Any] = {}
    custom_host: str | None = None
    name: str = ""
    created: float = 0.0
    limits: Limits = msgspec.field(default_factory=Limits)
    #: ``secret`` and ``options`` encrypted together, when stored with ``FASTGATE_SECRET_KEY``.
    sealed: str | None = None

    def public(self) -> dict[str, Any]:
        data = msgspec.to_builtins(self)
        data.pop("secret", None)
        # Options may hold credentials too (AWS secret keys, service-account JSON): names only.
        data["options"] = sorted(self.options)
        if self.sealed is not None:
            data["sealed"] = True  # still sealed: not opened here, so its option names are unknown
        return data


def new_key(name: str, **policy: Any) -> tuple[str, GatewayKey]:
    token = new_token()
    key = GatewayKey(id=secrets.token_hex(6), name=name, hash=hash_key(token), created=time.time(), **policy)
    return token, key


def new_virtual_key(provider: str, secret: str, name: str = "", **fields: Any) -> VirtualKey:
    base = (name or provider).strip().lower().replace(" ", "-")
    return VirtualKey(
        slug=f"{base}-{secrets.token_hex(3)}",
        provider=provider,
        secret=secret,
        name=name,
        created=time.time(),
        **fields,
    )


gateway_key_decoder = msgspec.json.Decoder(GatewayKey)
virtual_key_decoder = msgspec.json.Decoder(VirtualKey)
encode_record = msgspec.json.Encoder().encode
