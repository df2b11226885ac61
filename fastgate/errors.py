"""OpenAI-shaped errors: the one error type every layer raises and the server renders."""

from __future__ import annotations

import msgspec


class ErrorDetail(msgspec.Struct, omit_defaults=False):
    message: str
    type: str | None = None
    param: str | None = None
    code: str | None = None


class ErrorBody(msgspec.Struct, omit_defaults=True):
    error: ErrorDetail
    provider: str | None = None


_encode = msgspec.json.Encoder().encode


class StartupError(Exception):
    """The server cannot start (its port is taken, its key records are out of reach): the
    command line says why in one line instead of a traceback."""


class GatewayError(Exception):
    """A failure with an HTTP status and an OpenAI-shaped body.

    ``type`` follows OpenAI's vocabulary (``invalid_request_error``, ``authentication_error``,
    ``rate_limit_error``, ``api_error``, ``timeout_error``) so SDKs map it to their exception classes.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        provider: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.provider = provider
        self.headers: dict[str, str] = headers if headers is not None else {}

    def body(self) -> bytes:
        detail = ErrorDetail(self.message, self.type, self.param, self.code)
        return _encode(ErrorBody(detail, self.provider))


class InvalidUpstreamAnswer(ValueError):
    """A 2xx upstream answer that cannot be relayed: not JSON, or an error object under a 200.

    ``error`` holds the upstream's error body when it sent one, so its message reaches the client.
    """

    def __init__(self, message: str, error: bytes | None = None) -> None:
        super().__init__(message)
        self.error = error


def bad_request(message: str, *, param: str | None = None, code: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


def error_body(status: int, message: str, *, type: str, provider: str | None = None) -> bytes:
    return _encode(ErrorBody(ErrorDetail(message, type), provider))


def type_for_status(status: int) -> str:
    """OpenAI's error type for an upstream status that came without one."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 408:
        return "timeout_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "api_error"
    return "invalid_request_error"
