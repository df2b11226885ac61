"""``webhook`` and ``log``: the hook context POSTed to a URL of the config (Portkey's
``plugins/default/webhook.ts``, ``log.ts``).

The context goes without the client's headers (they carry the provider key; Portkey's ``log``
sends them). The URL is judged by the SSRF policy with the config, and every address it resolves
to again before a connection; redirects are not followed; ``timeout`` (milliseconds, default
3000) bounds the whole exchange. A webhook answers ``{"verdict": bool, "data": ...,
"transformedData": {"request": {"json": ...}, "response": {"json": ...}}}``: its verdict is the
check's, and a transformed request (before the request) or answer (after it) replaces the one
the gateway holds.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

import msgspec

from fastgate.guardrails.check import Check, CheckError, CheckOutcome, ConfigError, error
from fastgate.guardrails.context import BEFORE, HookContext
from fastgate.guardrails.runtime import Runtime

_encode = msgspec.json.Encoder().encode


def _headers(value: Any, where: str) -> dict[str, str]:
    """The ``headers`` parameter: an object, or its JSON text."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigError(f"{where}: Failed to parse headers: Invalid headers format") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ConfigError(f"{where}: must be an object of header names to string values")
    return {"Content-Type": "application/json", **value}


class HttpError(Exception):
    """A status other than 2xx (Portkey's ``HttpError``)."""

    def __init__(self, status: int, content_type: str, body: bytes) -> None:
        super().__init__(f"HTTP error! status: {status}")
        self.content_type = content_type
        self.body = body


class _Post(Check):
    __slots__ = ("headers", "timeout_ms", "url")
    is_async = True
    url_name = ""

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.url = parameters.get(self.url_name)
        self.headers = _headers(parameters.get("headers"), "headers") or {"Content-Type": "application/json"}
        timeout = parameters.get("timeout") or 3000
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError("timeout: must be a positive number of milliseconds")
        self.timeout_ms = timeout

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        raise NotImplementedError(f"{self.id} posts to a URL: the engine calls run_async")

    async def post(self, ctx: HookContext, event: str, runtime: Runtime) -> Any:
        """The URL's JSON answer to the context; raises what went wrong."""
        if not self.url:
            raise ValueError(f"Missing {'webhook' if self.url_name == 'webhookURL' else 'log'} URL")
        body = _encode(ctx.webhook_body(event))
        try:
            answer = await runtime.transport.request(
                "POST", self.url, self.headers, body, self.timeout_ms / 1000
            )
        except TimeoutError:
            raise TimeoutError(f"Request timed out after {self.timeout_ms}ms") from None
        if not 200 <= answer.status < 300:
            raise HttpError(answer.status, answer.content_type, answer.body)
        return json.loads(answer.body) if answer.body.strip() else None


def _named(exc: BaseException) -> CheckError:
    if isinstance(exc, TimeoutError):
        return CheckError(str(exc), "TimeoutError")
    if isinstance(exc, HttpError):
        return CheckError(str(exc), "HttpError")
    return error(str(exc) or type(exc).__name__)


class Webhook(_Post):
    __slots__ = ()
    url_name = "webhookURL"
    url_parameters = ("webhookURL",)

    async def run_async(self, ctx: HookContext, event: str, runtime: Runtime) -> CheckOutcome:
        context = {"timeout": self.timeout_ms}
        try:
            answer = await self.post(ctx, event, runtime)
        except Exception as exc:  # unreachable, refused, timed out, not JSON: the check's error
            data: dict[str, Any] = {
                "explanation": f"Webhook error: {_named(exc).message}",
                "webhookUrl": self.url or "No URL provided",
                "requestContext": context,
            }
            if isinstance(exc, HttpError) and exc.content_type == "application/json":
                with contextlib.suppress(ValueError):
                    data["responseData"] = json.loads(exc.body)
            return CheckOutcome(False, data, _named(exc))
        answer = answer if isinstance(answer, dict) else {}
        verdict = bool(answer.get("verdict"))
        data = {
            "verdict": verdict,
            "explanation": "Webhook request succeeded" if verdict else "Webhook request failed",
            "webhookUrl": self.url,
        }
        if "data" in answer:
            data["responseData"] = answer["data"]
        data["requestContext"] = context
        transformed = answer.get("transformedData")
        part = "request" if event == BEFORE else "response"
        changed = transformed.get(part) if isinstance(transformed, dict) else None
        new = changed.get("json") if isinstance(changed, dict) else None
        if not isinstance(new, dict) or not new:
            new = None
        if event == BEFORE:
            return CheckOutcome(verdict, data, request=new)
        return CheckOutcome(verdict, data, response=new)


class Log(_Post):
    """Posts the context to ``logURL``; passes when the URL took it (Portkey: else a check
    error, which fails open)."""

    __slots__ = ()
    url_name = "logURL"
    url_parameters = ("logURL",)

    async def run_async(self, ctx: HookContext, event: str, runtime: Runtime) -> CheckOutcome:
        try:
            await self.post(ctx, event, runtime)
        except Exception as exc:
            return CheckOutcome(False, None, _named(exc))
        return CheckOutcome(True, {"message": f"Logged the request to {self.url}"})
