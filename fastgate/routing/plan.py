"""From a config tree to the leaf targets to try, one at a time.

A config is compiled once (``compile_plan``): inheritance resolved, each leaf's ``Target`` built,
weights summed, condition queries compiled, with every structural error a 400 naming its path.
Per request, ``plan_targets`` walks the compiled tree as a generator: it yields a :class:`Leaf`,
the caller sends back what that leaf finally answered (``(status, reached)``, after its
retries), and the walk goes on (fallback) or ends. So single, loadbalance, fallback and
conditional routing, nested to any depth, stay pure logic with no network code in them.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable, Generator, Mapping
from typing import Any, Literal

import msgspec

from fastgate.errors import bad_request
from fastgate.providers.base import Target
from fastgate.providers.registry import PROVIDERS
from fastgate.routing.breaker import CircuitBreaker, Identity, key_hash
from fastgate.routing.conditions import Predicate, compile_query, query_roots
from fastgate.routing.config import CacheSettings, ConfigNode, RetrySettings

#: What a leaf finally answered: its status, and whether an answer came from the upstream at all.
Result = tuple[int, bool]
#: A leaf skipped because its circuit is open: to a fallback, like an unreachable target.
SKIPPED: Result = (503, False)
Mode = Literal["single", "loadbalance", "fallback", "conditional"]


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


#: Header-value variants kept per leaf; past this many (a client varying them), start over.
_MAX_VARIANTS = 64


class Leaf:
    """A target to try, with the settings its retry loop and circuit breaker need."""

    __slots__ = ("_variants", "cache", "identity", "retry", "stages", "target")

    def __init__(
        self, target: Target, retry: RetrySettings | None, cache: CacheSettings | None, identity: Identity
    ) -> None:
        self.target = target
        self.retry = retry
        self.cache = cache
        self.identity = identity
        #: The gateway's stages that may act on every attempt at this leaf: the gateway finds
        #: them once per leaf and keeps them here (routing does not know what they are).
        self.stages: tuple[Any, ...] | None = None
        #: This leaf with the header values clients send, built once each (a client sends the
        #: same custom host on every request).
        self._variants: dict[tuple[tuple[str, Any], ...], Leaf] = {}

    def overridden(self, overrides: Mapping[str, Any]) -> Leaf:
        """This leaf with request-level header values (they beat every config value)."""
        key = tuple(overrides.items())
        leaf = self._variants.get(key)
        if leaf is not None:
            return leaf
        target = msgspec.structs.replace(self.target, **overrides)
        identity = self.identity
        if target.custom_host != self.target.custom_host:
            identity = identity._replace(host=target.custom_host or "")
        leaf = Leaf(target, self.retry, self.cache, identity)
        if len(self._variants) >= _MAX_VARIANTS:
            self._variants.clear()
        self._variants[key] = leaf
        return leaf


class Branch:
    """A node with targets: how to choose among them, and its children compiled."""

    __slots__ = ("children", "codes", "conditions", "cumulative", "default", "leaves", "mode", "path")

    def __init__(self, mode: Mode, path: str, children: list[Leaf | Branch]) -> None:
        self.mode = mode
        self.path = path
        self.children = tuple(children)
        #: Per child, the leaves under it (a loadbalance skips children whose every circuit is open).
        self.leaves = tuple(tuple(_leaves(c)) for c in children)
        self.cumulative: tuple[float, ...] = ()
        self.codes: frozenset[int] | None = None
        self.conditions: tuple[tuple[Predicate, int], ...] = ()
        self.default: int | None = None

    def continues(self, result: Result) -> bool:
        """Whether a fallback tries its next target after this result (Portkey §6.5, plus: always
        after no answer at all, whatever ``on_status_codes`` says)."""
        status, reached = result
        if not reached:
            return True
        if self.codes is None:
            return not 200 <= status < 300
        return status in self.codes


Node = Leaf | Branch


def _leaves(node: Node) -> Generator[Leaf, None, None]:
    if isinstance(node, Leaf):
        yield node
    else:
        for child in node.children:
            yield from _leaves(child)


class RoutePlan:
    """A compiled config: immutable, shared by every request that sends the same config."""

    __slots__ = ("chat_request_decoder", "decodes_body", "root", "roots")

    def __init__(self, root: Node, roots: frozenset[str]) -> None:
        self.root = root
        #: Which parts of the request conditions read (``metadata``, ``params``, ``url``).
        self.roots = roots
        #: A condition reads ``params.*``, or a target caches (its key is the canonical body):
        #: the body is decoded as a whole, once, and the request view taken from that.
        self.decodes_body = "params" in roots or any(leaf.cache is not None for leaf in _leaves(root))
        #: One target, named by provider, whose chat mapping decodes the body whole: the handler
        #: decodes it with this once, for the view and the mapping (``Provider.chat_request_decoder``).
        only = PROVIDERS.get(root.target.provider) if isinstance(root, Leaf) else None
        self.chat_request_decoder = only.chat_request_decoder if only is not None else None

    def leaves(self) -> list[Leaf]:
        return list(_leaves(self.root))


def _option_path(path: str) -> str:
    return f"config.{path}" if path else "config"


def _leaf(node: ConfigNode, inherited: Inherited, path: str) -> Leaf:
    provider = node.provider
    if not provider and not node.virtual_key:
        where = f"{path}.provider" if path else "provider"
        raise bad_request(f"Invalid config passed: {where} is required for a target", param=where)
    if provider and provider not in PROVIDERS:
        where = f"{path}.provider" if path else "provider"
        raise bad_request(f"Invalid provider passed: {provider!r} at {where}", param=where)
    target = Target(
        # A virtual key names its own provider, resolved per request (it may be revoked).
        provider=provider or "",
        virtual_key=node.virtual_key,
        api_key=node.api_key,
        custom_host=inherited.custom_host,
        override_params=inherited.override_params,
        forward_headers=inherited.forward_headers or (),
        request_timeout=inherited.request_timeout,
        strict_open_ai_compliance=inherited.strict if inherited.strict is not None else True,
        options=node.options,
        path=_option_path(path),
    )
    identity = Identity(
        provider or "", inherited.custom_host or "", key_hash(node.api_key or node.virtual_key)
    )
    return Leaf(target, inherited.retry, inherited.cache, identity)


def _compile(node: ConfigNode, inherited: Inherited, path: str, roots: set[str]) -> Node:
    if not node.targets:
        return _leaf(node, inherited, path)
    prefix = f"{path}." if path else ""
    children = [
        _compile(child, inherited.child(child), f"{prefix}targets[{i}]", roots)
        for i, child in enumerate(node.targets)
    ]
    strategy = node.strategy
    # Targets without a strategy: Portkey's default mode, ``single`` (the first target).
    branch = Branch(strategy.mode if strategy else "single", path, children)
    if strategy is None:
        return branch
    if strategy.on_status_codes is not None:
        branch.codes = frozenset(strategy.on_status_codes)
    if branch.mode == "loadbalance":
        weights = [child.weight for child in node.targets]
        if not any(weights):
            where = f"{prefix}targets"
            raise bad_request(f"Invalid config passed: {where}: every weight is 0", param=where)
        total = 0.0
        cumulative = []
        for weight in weights:
            total += weight
            cumulative.append(total)
        branch.cumulative = tuple(cumulative)
    elif branch.mode == "conditional":
        _compile_conditions(branch, node, prefix, roots)
    return branch


def _compile_conditions(branch: Branch, node: ConfigNode, prefix: str, roots: set[str]) -> None:
    assert node.strategy is not None and node.targets is not None
    names: dict[str, int] = {}
    for i, child in enumerate(node.targets):
        if child.name:
            names.setdefault(child.name, i)

    def index(name: str, where: str) -> int:
        if name not in names:
            raise bad_request(f"Invalid config passed: {where}: no target is named {name!r}", param=where)
        return names[name]

    conditions = []
    for i, condition in enumerate(node.strategy.conditions or ()):
        where = f"{prefix}strategy.conditions[{i}]"
        predicate = compile_query(condition.query, f"{where}.query")
        roots |= query_roots(condition.query)
        conditions.append((predicate, index(condition.then, f"{where}.then")))
    branch.conditions = tuple(conditions)
    if node.strategy.default is not None:
        branch.default = index(node.strategy.default, f"{prefix}strategy.default")
    if not conditions and branch.default is None:
        where = f"{prefix}strategy.conditions"
        raise bad_request(f"Invalid config passed: {where}: give conditions or a default", param=where)


def compile_plan(root: ConfigNode) -> RoutePlan:
    """Compile a validated config; structural errors are 400s naming the bad field's path."""
    roots: set[str] = set()
    node = _compile(root, Inherited().child(root), "", roots)
    return RoutePlan(node, frozenset(roots))


class _Walk:
    """One request's walk over a plan."""

    __slots__ = ("breaker", "doc", "overrides", "rng", "use_breaker", "yielded")

    def __init__(
        self,
        doc: Mapping[str, Any],
        overrides: Mapping[str, Any] | None,
        breaker: CircuitBreaker | None,
        rng: Callable[[], float],
    ) -> None:
        self.doc = doc
        self.overrides = overrides
        self.breaker = breaker
        self.rng = rng
        self.use_breaker = breaker is not None and breaker.any_open
        self.yielded = False

    def _open(self, leaf: Leaf) -> bool:
        assert self.breaker is not None
        return self.breaker.is_open(leaf.identity)

    def walk(self, node: Node) -> Generator[Leaf, Result, Result]:
        if isinstance(node, Leaf):
            if self.overrides:
                node = node.overridden(self.overrides)
            if self.use_breaker and self._open(node):
                return SKIPPED
            self.yielded = True
            result = yield node
            return result
        mode = node.mode
        if mode == "fallback":
            result = SKIPPED
            for child in node.children:
                result = yield from self.walk(child)
                if not node.continues(result):
                    break
            return result
        if mode == "loadbalance":
            chosen = self._pick(node)
            if chosen is None:
                return SKIPPED
            return (yield from self.walk(node.children[chosen]))
        if mode == "conditional":
            return (yield from self.walk(node.children[self._choose(node)]))
        return (yield from self.walk(node.children[0]))

    def _pick(self, node: Branch) -> int | None:
        """A weighted random child (Portkey §6.4); weight 0 is never chosen."""
        cumulative = node.cumulative
        if self.use_breaker:
            previous = 0.0
            live: list[tuple[float, int]] = []
            total = 0.0
            for i, bound in enumerate(cumulative):
                weight, previous = bound - previous, bound
                leaves = node.leaves[i]
                if self.overrides:
                    leaves = tuple(leaf.overridden(self.overrides) for leaf in leaves)
                if weight > 0 and not all(self._open(leaf) for leaf in leaves):
                    total += weight
                    live.append((total, i))
            if not live:
                return None
            point = self.rng() * total
            return live[bisect.bisect_right([b for b, _ in live], point)][1]
        return bisect.bisect_right(cumulative, self.rng() * cumulative[-1])

    def _choose(self, node: Branch) -> int:
        doc = self.doc
        for predicate, index in node.conditions:
            if predicate(doc):
                return index
        if node.default is None:
            where = f"{node.path}.strategy" if node.path else "strategy"
            raise bad_request(
                "Conditional routing: no condition matched and no default target is set", param=where
            )
        return node.default


EMPTY_DOC: Mapping[str, Any] = {}


def plan_targets(
    plan: RoutePlan,
    *,
    doc: Mapping[str, Any] = EMPTY_DOC,
    overrides: Mapping[str, Any] | None = None,
    breaker: CircuitBreaker | None = None,
    rng: Callable[[], float] = random.random,
) -> Generator[Leaf, Result, None]:
    """Yield the leaves to try in order; receive each one's final ``(status, reached)``.

    ``doc`` is the routing document conditions read (``metadata``, ``params``, ``url``);
    ``overrides`` are request-level header values applied to every leaf. Targets whose circuit
    is open are skipped; if that leaves nothing to try, the walk is made again without the
    breaker (a probe beats a certain failure).
    """
    walk = _Walk(doc, overrides, breaker, rng)
    yield from walk.walk(plan.root)
    if not walk.yielded:
        walk.use_breaker = False
        yield from walk.walk(plan.root)
