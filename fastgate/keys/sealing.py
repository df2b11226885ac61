"""Virtual-key secrets encrypted at rest: AES-256-GCM with a key from ``FASTGATE_SECRET_KEY``.

The secret and the options (which may hold credentials too: AWS secret keys, service-account
JSON) are sealed together into one field; the slug is the associated data, so a sealed blob
copied onto another record does not open. Without ``FASTGATE_SECRET_KEY`` records are stored
as they are, in a 0600 file or in Redis, and the server says so at start-up.

The key is 32 random bytes, URL-safe base64 (``fastgate keys new-secret-key`` prints one).
AES-GCM comes from the ``cryptography`` package (``pip install 'fastgate[secrets]'``).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import msgspec

from fastgate.keys.models import VirtualKey

ENV = "FASTGATE_SECRET_KEY"
PREFIX = "v1:"
_NONCE = 12


class SealError(ValueError):
    """A sealed record cannot be opened (no key, the wrong key, or altered data)."""


class _Sealed(msgspec.Struct):
    secret: str
    options: dict[str, Any]


_sealed_decoder = msgspec.json.Decoder(_Sealed)


def new_secret_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


class Sealer:
    def __init__(self, key: str) -> None:
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:  # pragma: no cover - cryptography is in the test extra
            raise SealError(
                f"{ENV} needs the cryptography package: pip install 'fastgate[secrets]'"
            ) from None
        try:
            raw = base64.urlsafe_b64decode(key.encode())
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise SealError(f"{ENV} must be 32 bytes in URL-safe base64 (fastgate keys new-secret-key)")
        self._aead = AESGCM(raw)

    def seal(self, vk: VirtualKey) -> VirtualKey:
        nonce = os.urandom(_NONCE)
        plain = msgspec.json.encode(_Sealed(vk.secret, vk.options))
        blob = nonce + self._aead.encrypt(nonce, plain, vk.slug.encode())
        return msgspec.structs.replace(
            vk, secret="", options={}, sealed=PREFIX + base64.urlsafe_b64encode(blob).decode()
        )

    def open(self, vk: VirtualKey) -> VirtualKey:
        from cryptography.exceptions import InvalidTag

        assert vk.sealed is not None
        try:
            blob = base64.urlsafe_b64decode(vk.sealed.removeprefix(PREFIX).encode())
            plain = self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], vk.slug.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise SealError(f"virtual key {vk.slug!r} does not open with {ENV}") from None
        opened = _sealed_decoder.decode(plain)
        return msgspec.structs.replace(vk, secret=opened.secret, options=opened.options, sealed=None)


def sealer_from_env() -> Sealer | None:
    key = os.environ.get(ENV)
    return Sealer(key) if key else None


def unseal(vk: VirtualKey, sealer: Sealer | None) -> VirtualKey:
    if vk.sealed is None:
        return vk
    if sealer is None:
        raise SealError(f"virtual key {vk.slug!r} is encrypted: set {ENV} to use it")
    return sealer.open(vk)
