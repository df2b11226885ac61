"""``jwt``: the token in a request header verifies against a JSON Web Key Set (Portkey's
``plugins/default/jwt.ts``, on jose; here PyJWT, the optional dependency ``fastgate[jwt]``).

The key is the set's key with the token's ``kid``; the token must be signed with that key's own
algorithm (no ``alg`` confusion), unexpired and valid already (``exp``, ``nbf``, ``iat`` with
``clockTolerance`` seconds of slack), and issued within ``maxTokenAge`` (``1d``, ``2h``, ``30m``,
``45s``...). The header named ``headerKey`` (any case; default ``Authorization``) may carry a
``Bearer`` prefix.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from fastgate.guardrails.check import Check, CheckOutcome, ConfigError, error
from fastgate.guardrails.context import HookContext
from fastgate.guardrails.runtime import Runtime

_BEARER = re.compile(r"^Bearer\s+", re.IGNORECASE)
#: jose's time spans: a number and a unit (``secs()`` in ``jose/lib/secs``).
_SPAN = re.compile(
    r"^(\+|-)? ?(\d+|\d+\.\d+) ?"
    r"(seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w|years?|yrs?|y)"
    r"(?: (ago|from now))?$",
    re.IGNORECASE,
)
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31557600}


def span_seconds(text: str) -> float:
    """Seconds in a jose time span (``1d``, ``2 hours``...); ValueError when it is not one."""
    m = _SPAN.match(text.strip())
    if m is None:
        raise ValueError(f"Invalid time period format: {text!r}")
    unit = m.group(3).lower()
    seconds = float(m.group(2)) * _UNIT_S["m" if unit.startswith("mi") else unit[0]]
    return -seconds if m.group(1) == "-" or m.group(4) == "ago" else seconds


def _outcome(verdict: bool, explanation: str, failure: Exception | None = None) -> CheckOutcome:
    return CheckOutcome(
        verdict,
        {"verdict": verdict, "explanation": explanation},
        error(str(failure)) if failure is not None else None,
    )


def _header(token: str) -> dict[str, Any]:
    first = token.split(".", 1)[0]
    header = json.loads(base64.urlsafe_b64decode(first + "=" * (-len(first) % 4)))
    if not isinstance(header, dict):
        raise ValueError("the token header is not a JSON object")
    return header


class Jwt(Check):
    __slots__ = ("header", "max_age", "max_token_age", "tolerance", "uri")
    url_parameters = ("jwksUri",)
    is_async = True

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.uri = parameters.get("jwksUri")
        self.header = str(parameters.get("headerKey") or "Authorization").lower()
        self.max_age = float(parameters.get("cacheMaxAge") or 86400)
        self.tolerance = float(parameters.get("clockTolerance") or 5)
        age = parameters.get("maxTokenAge") or "1d"
        try:
            self.max_token_age = span_seconds(age) if isinstance(age, str) else float(age)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"maxTokenAge: {exc}") from None
        try:
            import jwt  # noqa: F401
        except ImportError:
            raise ConfigError("the jwt check needs PyJWT: install fastgate[jwt]") from None

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        raise NotImplementedError("jwt fetches its key set: the engine calls run_async")

    async def run_async(self, ctx: HookContext, event: str, runtime: Runtime) -> CheckOutcome:
        import jwt

        if not self.uri:
            failure = ValueError("Missing JWKS URI")
            return _outcome(False, f"JWT validation error: {failure}", failure)
        value = ctx.headers.get(self.header)
        if not value:
            return _outcome(False, "Missing authorization header")
        token = _BEARER.sub("", value).strip()
        try:
            header = _header(token)
            kid = header.get("kid")
            key = await runtime.jwks.key(self.uri, kid, self.max_age) if isinstance(kid, str) else None
        except Exception as exc:  # the set could not be fetched or read, the token header is garbage
            return _outcome(False, f"JWT validation error: {exc}", exc)
        if key is None:
            return _outcome(False, "No matching key found for kid")
        try:
            if header.get("alg") != key.algorithm_name:
                raise jwt.InvalidAlgorithmError(
                    f'"alg" (Algorithm) Header Parameter value not allowed: {header.get("alg")}'
                )
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                leeway=self.tolerance,
                options={"verify_aud": False, "require": ["iat"]},
            )
            issued = claims["iat"]
            if (
                not isinstance(issued, int | float)
                or time.time() - issued > self.max_token_age + self.tolerance
            ):
                raise jwt.InvalidTokenError('"iat" claim timestamp check failed (too far in the past)')
        except jwt.PyJWTError as exc:
            return _outcome(False, f"JWT validation error: {exc}")
        return _outcome(True, "JWT token validation succeeded")
