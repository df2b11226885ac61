"""Hook specs → compiled hooks, once per config: each check built with its parameters (patterns
on RE2, schemas' validators), and every error a 400 naming the check's path in the config.

A leaf's hooks are its own or, when it names none, its parent's (Portkey's ``tryTargetsRecursively``
inheritance, before and after each on its own); the routing plan compiles each node's own
hooks once and hands the same tuple to every leaf under it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastgate.errors import GatewayError, bad_request
from fastgate.guardrails.check import Check, ConfigError
from fastgate.guardrails.registry import REGISTRY, Registry
from fastgate.guardrails.spec import (
    Event,
    FeedbackSpec,
    HookFields,
    HookSpec,
    check_id,
    node_specs,
    shorthand_specs,
)
from fastgate.ssrf import HostPolicy


def _refused(where: str, message: str) -> GatewayError:
    return bad_request(f"Invalid config passed: {where}: {message}", param=where)


class Hook:
    """A compiled hook: its enabled checks, built, and how to run and judge them."""

    __slots__ = (
        "checks",
        "deny",
        "id",
        "is_async",
        "needs_io",
        "on_fail",
        "on_success",
        "sequential",
        "type",
    )

    def __init__(self, spec: HookSpec, checks: tuple[Check, ...]) -> None:
        assert spec.id is not None
        self.id = spec.id
        self.type = spec.type
        self.checks = checks
        self.deny = spec.deny
        self.is_async = spec.async_
        #: A mutator's checks always run one after the other, each on the last one's output.
        self.sequential = spec.sequential or spec.type == "mutator"
        self.on_fail: FeedbackSpec | None = spec.on_fail.feedback if spec.on_fail else None
        self.on_success: FeedbackSpec | None = spec.on_success.feedback if spec.on_success else None
        #: Some check waits on the network: the hook runs as a coroutine, else straight through.
        self.needs_io = any(c.is_async for c in checks)


class LeafHooks:
    """A leaf's hooks, split by when they run: in line before / after the upstream call, or
    (``async: true``) after the answer went out."""

    __slots__ = ("after", "after_async", "before", "before_async", "needs_io")

    def __init__(self, before: tuple[Hook, ...], after: tuple[Hook, ...]) -> None:
        self.before = tuple(h for h in before if not h.is_async)
        self.after = tuple(h for h in after if not h.is_async)
        # An async mutator could change nothing any more: Portkey skips them, and so do we.
        self.before_async = tuple(h for h in before if h.is_async and h.type != "mutator")
        self.after_async = tuple(h for h in after if h.is_async and h.type != "mutator")
        self.needs_io = any(h.needs_io for h in self.before + self.after)

    def __bool__(self) -> bool:
        return bool(self.before or self.after or self.before_async or self.after_async)

    def joined(self, more: LeafHooks) -> LeafHooks:
        """These hooks, then ``more``'s (the default-guardrail headers come after a target's)."""
        return LeafHooks(
            self.before + self.before_async + more.before + more.before_async,
            self.after + self.after_async + more.after + more.after_async,
        )


def compile_check(spec_id: str, parameters: dict[str, object], where: str, registry: Registry) -> Check:
    cid = check_id(spec_id)
    factory = registry.get(cid)
    if factory is None:
        raise _refused(f"{where}.id", registry.missing(cid))
    try:
        return factory(cid, parameters)
    except ConfigError as exc:
        raise _refused(f"{where}.parameters", str(exc)) from None


def compile_specs(specs: Iterable[tuple[HookSpec, str]], registry: Registry = REGISTRY) -> tuple[Hook, ...]:
    hooks = []
    for spec, where in specs:
        checks = tuple(
            compile_check(c.id, c.parameters, f"{where}.checks[{i}]", registry)
            for i, c in enumerate(spec.checks)
            if c.is_enabled is not False
        )
        hooks.append(Hook(spec, checks))
    return tuple(hooks)


def _specs(node: HookFields, event: Event, path: str) -> list[tuple[HookSpec, str]] | None:
    try:
        return node_specs(node, event, path)
    except ConfigError as exc:
        raise _refused(*str(exc).split(": ", 1)) from None


def guardrail_specs(items: list[Any], kind: str, where: str) -> list[tuple[HookSpec, str]]:
    """A list of guardrail shorthands (a default-guardrails header) as hooks, or a 400."""
    try:
        return shorthand_specs(items, kind, "guardrail", where)
    except ConfigError as exc:
        raise _refused(*str(exc).split(": ", 1)) from None


def own_hooks(
    node: HookFields, event: Event, path: str, registry: Registry = REGISTRY
) -> tuple[Hook, ...] | None:
    """A node's own hooks for ``event``, compiled; None when it names none (it inherits)."""
    specs = _specs(node, event, path)
    return None if specs is None else compile_specs(specs, registry)


def leaf_hooks(before: tuple[Hook, ...] | None, after: tuple[Hook, ...] | None) -> LeafHooks | None:
    """What a leaf carries: None when it runs no hook (most leaves: then hooks cost nothing)."""
    hooks = LeafHooks(before or (), after or ())
    return hooks if hooks else None


def check_urls(node: HookFields, path: str, policy: HostPolicy, registry: Registry = REGISTRY) -> None:
    """Refuse (400) a node whose checks would call a URL the SSRF policy forbids.

    The query and fragment are the URL's own business (a webhook's token, say); the scheme,
    credentials and host are judged as a custom host's are. Each address the host resolves to is
    judged again when the check connects.
    """
    for event in ("before", "after"):
        check_spec_urls(_specs(node, event, path) or (), policy, registry)


def check_spec_urls(specs: Iterable[tuple[HookSpec, str]], policy: HostPolicy, registry: Registry) -> None:
    for spec, where in specs:
        for i, check in enumerate(spec.checks):
            factory = registry.get(check_id(check.id))
            for name in getattr(factory, "url_parameters", ()):
                url = check.parameters.get(name)
                if isinstance(url, str) and url:
                    base = url.partition("#")[0].partition("?")[0]
                    policy.check_url(base, f"{where}.checks[{i}].parameters.{name}")
