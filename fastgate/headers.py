"""HTTP header facts every layer shares: which fields are hop-by-hop, and how a bearer token is read."""

from __future__ import annotations

#: Fields that describe one connection, not the message (RFC 9110 §7.6.1, and the proxy ones of
#: RFC 9110 §11.7): never relayed from one side of the gateway to the other.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "te",
        "transfer-encoding",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
    }
)

_BEARER = "Bearer "


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value (RFC 6750 §2.1); None for any other."""
    if authorization and authorization.startswith(_BEARER):
        return authorization[len(_BEARER) :]
    return None
