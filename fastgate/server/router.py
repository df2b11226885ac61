"""Method and path → handler: a dict for the fixed paths, a few patterns for the rest."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastgate.errors import GatewayError
from fastgate.server.messages import Request, Response

Handler = Callable[[Request], Awaitable[Response | None]]
_PARAM = re.compile(r"\{(\w+)(?::([^}]+))?\}")


def _compile(pattern: str) -> re.Pattern[str]:
    """``/a/{name}`` matches one segment; ``/a/{name:.+}`` the regex given."""
    out, pos = [], 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        out.append(f"(?P<{m.group(1)}>{m.group(2) or '[^/]+'})")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out) + r"\Z")


class Router:
    def __init__(self) -> None:
        self._fixed: dict[str, dict[str, Handler]] = {}
        self._patterns: list[tuple[re.Pattern[str], dict[str, Handler]]] = []
        self._pattern_methods: dict[str, dict[str, Handler]] = {}

    def add(self, method: str, path: str, handler: Handler) -> None:
        if "{" not in path:
            self._fixed.setdefault(path, {})[method] = handler
            return
        methods = self._pattern_methods.get(path)
        if methods is None:
            methods = self._pattern_methods[path] = {}
            self._patterns.append((_compile(path), methods))
        methods[method] = handler

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path parameters (decoded); a 404 or 405 (with ``Allow``) otherwise."""
        methods = self._fixed.get(path)
        params: dict[str, str] = {}
        if methods is None:
            for pattern, candidates in self._patterns:
                m = pattern.match(path)
                if m is not None:
                    methods, params = candidates, m.groupdict()
                    break
            else:
                raise GatewayError(404, f"Unknown route: {method} {path}", code="not_found")
        handler = methods.get(method)
        if handler is None and method == "HEAD":
            handler = methods.get("GET")  # the head a GET would have (RFC 9110 §9.3.2)
        if handler is None:
            raise GatewayError(
                405,
                f"Method {method} is not allowed on {path}",
                headers={"Allow": ", ".join(sorted(methods))},
            )
        return handler, params
