"""Google service-account access tokens: signed once, cached until shortly before they expire.

The OAuth 2.0 JWT-bearer flow for service accounts
(https://developers.google.com/identity/protocols/oauth2/service-account#httprest): an RS256 JWT
whose issuer is the account's ``client_email`` and audience its ``token_uri`` is exchanged at
``token_uri`` for an access token valid one hour. Portkey fetches a new token on every request
(reference §5.4); here one exchange serves every request until five minutes before expiry, and
concurrent requests wait for the same exchange instead of starting their own.

RS256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3). Signing is left to the ``cryptography``
package (the optional ``fastgate[vertex]`` extra) rather than written here: private-key code is
not something to hand-roll. It runs once an hour per account, in a worker thread, never on the
event loop.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any
from urllib.parse import urlencode, urlsplit

import msgspec

from fastgate.errors import GatewayError
from fastgate.providers.base import UpstreamClient

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
#: A cached token is replaced this many seconds before Google says it expires.
REFRESH_MARGIN = 300.0
_LIFETIME = 3600
_encode = msgspec.json.Encoder().encode


class ServiceAccount(msgspec.Struct, kw_only=True):
    """The fields of a service-account key file that the token exchange needs."""

    client_email: str
    private_key: str
    private_key_id: str | None = None
    project_id: str | None = None
    token_uri: str = DEFAULT_TOKEN_URI


class _TokenAnswer(msgspec.Struct):
    access_token: str
    expires_in: float = _LIFETIME


_token_decoder = msgspec.json.Decoder(_TokenAnswer)


def parse_service_account(value: object) -> ServiceAccount:
    """The account from a config object or the ``x-portkey-vertex-service-account-json`` text."""
    try:
        if isinstance(value, str):
            return msgspec.json.decode(value, type=ServiceAccount)
        return msgspec.convert(value, ServiceAccount)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise GatewayError(
            400,
            f"vertex_service_account_json is not a service-account key: {exc}",
            param="vertex_service_account_json",
        ) from None


def check_token_uri(uri: str) -> str:
    """The token endpoint comes from user-supplied JSON: only Google's hosts (https) or loopback
    (a local emulator or test server) may be called with the signed assertion."""
    parts = urlsplit(uri)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and (host == "oauth2.googleapis.com" or host.endswith(".googleapis.com")):
        return uri
    if parts.scheme in ("http", "https") and host in ("127.0.0.1", "localhost", "::1"):
        return uri
    raise GatewayError(
        400,
        "vertex_service_account_json: token_uri must be an https://*.googleapis.com URL",
        param="vertex_service_account_json",
    )


# ---- RS256 -------------------------------------------------------------------------------------


def load_rsa_key(pem: str) -> Any:
    """The account's RSA private key (PKCS#8, as Google issues it, or PKCS#1)."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError:
        raise GatewayError(
            500,
            "vertex-ai service-account auth needs the 'cryptography' package: pip install 'fastgate[vertex]'",
            type="api_error",
        ) from None
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise GatewayError(
            400,
            "vertex_service_account_json: private_key is not an RSA key",
            param="vertex_service_account_json",
        )
    return key


def rs256_sign(key: Any, message: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return bytes(key.sign(message, padding.PKCS1v15(), hashes.SHA256()))


def _b64url(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def signed_assertion(account: ServiceAccount, now: float) -> str:
    """The JWT the token endpoint takes as ``assertion``."""
    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if account.private_key_id:
        header["kid"] = account.private_key_id
    claims = {
        "iss": account.client_email,
        "scope": SCOPE,
        "aud": account.token_uri,
        "iat": int(now),
        "exp": int(now) + _LIFETIME,
    }
    signing_input = _b64url(_encode(header)) + b"." + _b64url(_encode(claims))
    signature = rs256_sign(load_rsa_key(account.private_key), signing_input)
    return (signing_input + b"." + _b64url(signature)).decode("ascii")


# ---- the cache ---------------------------------------------------------------------------------


class TokenCache:
    """Access tokens by service account, shared by every request of a process."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str | None, str], tuple[str, float]] = {}
        self._locks: dict[tuple[str, str | None, str], asyncio.Lock] = {}

    async def token(self, account: ServiceAccount, client: UpstreamClient) -> str:
        key = (account.client_email, account.private_key_id, account.token_uri)
        cached = self._tokens.get(key)
        if cached is not None and cached[1] - REFRESH_MARGIN > time.time():
            return cached[0]
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)  # another request may have refreshed it meanwhile
            if cached is not None and cached[1] - REFRESH_MARGIN > time.time():
                return cached[0]
            token, expires_at = await self._exchange(account, client)
            self._tokens[key] = (token, expires_at)
            return token

    async def _exchange(self, account: ServiceAccount, client: UpstreamClient) -> tuple[str, float]:
        uri = check_token_uri(account.token_uri)
        now = time.time()
        assertion = await asyncio.to_thread(signed_assertion, account, now)
        form = urlencode(
            {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": assertion}
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        # Connection failures and timeouts propagate as the relay knows them (502/504/408, and a
        # fallback target is tried), exactly as if the upstream call itself had failed.
        resp = await client.request("POST", uri, headers, form.encode())
        body = await resp.read()
        status = resp.status
        if status != 200:
            # 400/401/403 from Google's token endpoint mean the account or its key is not accepted.
            refused = status in (400, 401, 403)
            raise GatewayError(
                401 if refused else 502,
                f"vertex-ai error: the service account's token exchange was refused (HTTP {status})",
                type="authentication_error" if refused else "api_error",
                provider="vertex-ai",
            )
        try:
            answer = _token_decoder.decode(body)
        except msgspec.DecodeError:
            raise GatewayError(
                502, "vertex-ai error: invalid token endpoint answer", type="api_error", provider="vertex-ai"
            ) from None
        return answer.access_token, now + answer.expires_in
