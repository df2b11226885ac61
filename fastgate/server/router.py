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
        self._upload_paths: set[str] = set()
        self._upload_patterns: list[tuple[str, str]] = []

    def add(self, method: str, path: str, handler: Handler, *, upload: bool = False) -> None:
        """``upload``: a POST route whose body is streamed to the handler (``Request.upload``)
        rather than read whole first; a path parameter must be a whole segment."""
        if upload:
            assert method == "POST", "only a POST streams its body"
            if "{" in path:
                prefix, _, rest = path.partition("{")
                self._upload_patterns.append((prefix, rest.partition("}")[2]))
            else:
                self._upload_paths.add(path)
        if "{" not in path:
            self._fixed.setdefault(path, {})[method] = handler
            return
        methods = self._pattern_methods.get(path)
        if methods is None:
            methods = self._pattern_methods[path] = {}
            self._patterns.append((_compile(path), methods))
        methods[method] = handler

    @property
    def uploads(self) -> tuple[frozenset[str], tuple[tuple[str, str], ...]]:
        """The upload routes, as the request parser matches them (``RequestParser``)."""
        return frozenset(self._upload_paths), tuple(self._upload_patterns)

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """The handler and path parameters (decoded); a 404 or 405 (with ``Allow``) otherwise.

        A pattern that matches the path but not the method lets a later one answer (as Portkey's
        Hono routes do: ``POST /v1/files/x`` goes on to the passthrough)."""
        methods = self._fixed.get(path)
        params: dict[str, str] = {}
        if methods is None:
            for pattern, candidates in self._patterns:
                m = pattern.match(path)
                if m is None:
                    continue
                if methods is None:
                    methods, params = candidates, m.groupdict()
                if method in candidates or (method == "HEAD" and "GET" in candidates):
                    methods, params = candidates, m.groupdict()
                    break
            if methods is None:
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
