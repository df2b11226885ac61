"""AWS Signature Version 4 (header form), in plain Python: hmac and hashlib, no SDK.

Follows the SigV4 specification ("Create a signed AWS API request", AWS IAM user guide) and
signs exactly as botocore's ``SigV4Auth`` does, which the tests check byte for byte:
- the canonical URI is the path *as sent on the wire*, URI-encoded once more (every service but
  S3 double-encodes): a model id ``a:0`` travels as ``a%3A0`` and is signed as ``a%253A0``. The
  upstream client sends the URL's path verbatim, so the path is read from the URL unchanged;
- the signed headers are ``host``, ``x-amz-date``, the given headers and, for temporary
  credentials, ``x-amz-security-token``;
- the payload hash is SHA-256 of the exact body bytes sent. ``x-amz-content-sha256`` is not
  sent: only S3 requires it, and botocore leaves it out for every other service.
The derived signing key changes once a day per region and service, so it is cached.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
from functools import lru_cache
from urllib.parse import SplitResult, quote, urlsplit

import msgspec

ALGORITHM = "AWS4-HMAC-SHA256"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class AwsCredentials(msgspec.Struct, frozen=True):
    access_key: str
    secret_key: str
    #: Session token of temporary (STS) credentials.
    token: str | None = None


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


@lru_cache(maxsize=256)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")."""
    k_date = _hmac(f"AWS4{secret_key}".encode(), date)
    return _hmac(_hmac(_hmac(k_date, region), service), "aws4_request")


def _host(url: SplitResult) -> str:
    """The Host header the client sends: the port only when it is not the scheme's default."""
    host = url.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = url.port
    if port is not None and port != _DEFAULT_PORTS.get(url.scheme):
        return f"{host}:{port}"
    return host


def _canonical_query(query: str) -> str:
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(
    method: str, path: str, query: str, headers: dict[str, str], payload_hash: str
) -> tuple[str, str]:
    """(canonical request, signed header list) for ``headers`` (already including host/date)."""
    signed = {name.lower(): " ".join(value.split()) for name, value in headers.items()}
    names = sorted(signed)
    canonical_headers = "".join(f"{n}:{signed[n]}\n" for n in names)
    signed_headers = ";".join(names)
    lines = (
        method.upper(),
        quote(path or "/", safe="/~"),
        _canonical_query(query),
        canonical_headers,
        signed_headers,
        payload_hash,
    )
    return "\n".join(lines), signed_headers


def sign(
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes,
    credentials: AwsCredentials,
    region: str,
    service: str,
    now: datetime.datetime | None = None,
) -> dict[str, str]:
    """The headers to add to the request: ``X-Amz-Date``, ``Authorization`` and, with a session
    token, ``X-Amz-Security-Token``. ``headers`` are the request's own headers, all signed."""
    parsed = urlsplit(url)
    moment = now or datetime.datetime.now(datetime.UTC)
    timestamp = moment.strftime("%Y%m%dT%H%M%SZ")
    date = timestamp[:8]
    added = {"X-Amz-Date": timestamp}
    if credentials.token:
        added["X-Amz-Security-Token"] = credentials.token
    to_sign = {**headers, **added, "host": _host(parsed)}
    payload_hash = hashlib.sha256(body).hexdigest()
    request, signed_headers = canonical_request(method, parsed.path, parsed.query, to_sign, payload_hash)
    signature = compute_signature(credentials.secret_key, timestamp, region, service, request)
    added["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{date}/{region}/{service}/aws4_request, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return added


def compute_signature(secret_key: str, timestamp: str, region: str, service: str, request: str) -> str:
    """Hex HMAC of the string to sign, from the canonical request (shared by the mock's check)."""
    date = timestamp[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    digest = hashlib.sha256(request.encode()).hexdigest()
    string_to_sign = f"{ALGORITHM}\n{timestamp}\n{scope}\n{digest}"
    key = signing_key(secret_key, date, region, service)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
