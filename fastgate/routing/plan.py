"""From a config tree to the leaf targets to try, one at a time.

``plan_targets`` is a generator: it yields a :class:`Target`, and the caller sends back the
status that target finally answered with, so the walk (fallback, loadbalance, conditional)
stays pure logic with no network code in it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from fastgate.errors import bad_request
from fastgate.providers.base import Target
from fastgate.routing.config import CacheSettings, ConfigNode, RetrySettings


class Inherited:
    """Settings a node passes down to its targets (Portkey §3.2: the child's own value wins)."""

    __slots__ = (
        "cache",
        "custom_host",
        "forward_headers",
        "override_params",
        "request_timeout",
        "retry",
        "strict",
    )

    def __init__(self) -> None:
        self.override_params: dict[str, Any] | None = None
        self.retry: RetrySettings | None = None
        self.cache: CacheSettings | None = None
        self.request_timeout: int | None = None
        self.custom_host: str | None = None
        self.forward_headers: tuple[str, ...] | None = None
        self.strict: bool | None = None

    def child(self, node: ConfigNode) -> Inherited:
        out = Inherited()
        if node.override_params and self.override_params:
            out.override_params = {**self.override_params, **node.override_params}
        else:
            out.override_params = node.override_params or self.override_params
        out.retry = node.retry or self.retry
        out.cache = node.cache or self.cache
        out.request_timeout = node.request_timeout or self.request_timeout
        out.custom_host = node.custom_host or self.custom_host
        out.forward_headers = (
            node.forward_headers if node.forward_headers is not None else self.forward_headers
        )
        out.strict = (
            node.strict_open_ai_compliance if node.strict_open_ai_compliance is not None else self.strict
        )
        return out


def leaf_target(node: ConfigNode, inherited: Inherited, path: str) -> Target:
    if not node.provider:
        raise bad_request(f"Invalid config passed: {path} has no provider", param=path)
    return Target(
        provider=node.provider,
        api_key=node.api_key,
        custom_host=inherited.custom_host,
        override_params=inherited.override_params,
        forward_headers=inherited.forward_headers or (),
        request_timeout=inherited.request_timeout,
        strict_open_ai_compliance=inherited.strict if inherited.strict is not None else True,
        options=node.options,
        path=path,
    )


def plan_targets(root: ConfigNode) -> Generator[Target, int, None]:
    """Yield the targets to try in order; receive each one's final status."""
    inherited = Inherited().child(root)
    yield leaf_target(root, inherited, "config")
