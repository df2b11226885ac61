"""From a config tree to the leaf targets to try, one at a time.

A config is compiled once (``compile_plan``): inheritance resolved, each leaf's ``Target`` built,
weights summed, condition queries compiled, with every structural error a 400 naming its path.
Per request, ``plan_targets`` walks the compiled tree as a generator: it yields a :class:`Leaf`,
the caller sends back what that leaf finally answered (``(status, reached)``, after its
retries), and the walk goes on (fallback) or ends. So single, loadbalance, fallback and
conditional routing, nested to any depth, stay pure logic with no network code in them.

Circuit breaking is Portkey's (``src/handlers/handlerUtils.ts`` with ``src/utils/circuitBreaker.ts``):
a strategy's ``cb_config`` (or the server's default) is inherited by the strategies and targets
under it, not by a conditional strategy's; each target under one has a circuit. At each strategy
the walk passes over targets whose circuits are open (a nested strategy is open when all of its
targets are), unless all of them are open: then all are tried. Without a ``cb_config`` nothing
is ever skipped.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Callable, Generator, Mapping
from typing import Any, Literal

import msgspec

from fastgate.errors import bad_request
from fastgate.guardrails.compile import Hook, LeafHooks, leaf_hooks, own_hooks
from fastgate.providers.base import Target
from fastgate.providers.registry import PROVIDERS
from fastgate.routing.breaker import DEFAULT_MINIMUM_REQUESTS, MIN_COOLDOWN_MS, CircuitRule, circuit_name
from fastgate.routing.conditions import Predicate, compile_query, query_roots
from fastgate.routing.config import CacheSettings, CircuitBreakerConfig, ConfigNode, RetrySettings

#: What a leaf finally answered: its status, and whether an answer came from the upstream at all.
Result = tuple[int, bool]
Mode = Literal["single", "loadbalance", "fallback", "conditional"]
NO_CIRCUITS: frozenset[str] = frozenset()


def circuit_rule(cb: CircuitBreakerConfig) -> CircuitRule:
    """A validated ``cb_config`` as its rule, with Portkey's defaults and its 30 s floor."""
    codes = cb.failure_status_codes
    return CircuitRule(
        failure_threshold=cb.failure_threshold or 0,
        failure_threshold_percentage=cb.failure_threshold_percentage or 0.0,
        minimum_requests=cb.minimum_requests or DEFAULT_MINIMUM_REQUESTS,
        cooldown_ms=max(cb.cooldown_interval or 0, MIN_COOLDOWN_MS),
        failure_status_codes=frozenset(codes) if codes is not None else None,
    )


class Inherited:
    """Settings a node passes down to its targets (Portkey §3.2: the child's own value wins)."""

    __slots__ = (
        "after_hooks",
        "before_hooks",
        "cache",
        "custom_host",
        "forward_headers",
        "override_params",
        "request_timeout",
        "retry",
        "rule",
        "strict",
    )

    def __init__(self, rule: CircuitRule | None = None) -> None:
        #: The circuit breaking of the strategy this node is under (``cb_config``).
        self.rule = rule
        self.override_params: dict[str, Any] | None = None
        self.retry: RetrySettings | None = None
        self.cache: CacheSettings | None = None
        self.request_timeout: int | None = None
        self.custom_host: str | None = None
        self.forward_headers: tuple[str, ...] | None = None
        self.strict: bool | None = None
        self.before_hooks: tuple[Hook, ...] | None = None
        self.after_hooks: tuple[Hook, ...] | None = None

    def child(self, node: ConfigNode, path: str) -> Inherited:
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
        strategy = node.strategy
        out.rule = circuit_rule(strategy.cb_config) if strategy and strategy.cb_config else self.rule
        # Compiled here, once per node: every leaf below shares the same tuples.
        where = _option_path(path)
        before, after = own_hooks(node, "before", where), own_hooks(node, "after", where)
        out.before_hooks = self.before_hooks if before is None else before
        out.after_hooks = self.after_hooks if after is None else after
        return out

    def for_targets(self, node: ConfigNode) -> Inherited:
        """What this node's targets inherit: the same, but a conditional strategy's targets are
        not circuit-broken (Portkey's breaker does not evaluate conditional strategies)."""
        if self.rule is None or node.strategy is None or node.strategy.mode != "conditional":
            return self
        out = Inherited.__new__(Inherited)
        for name in Inherited.__slots__:
            setattr(out, name, getattr(self, name))
        out.rule = None
        return out


#: Header-value variants kept per leaf; past this many (a client varying them), start over.
_MAX_VARIANTS = 64


class Leaf:
    """A target to try, with the settings its retry loop and circuit breaker need."""

    __slots__ = ("_variants", "cache", "circuit", "hooks", "retry", "rule", "stages", "target")

    def __init__(
        self,
        target: Target,
        retry: RetrySettings | None,
        cache: CacheSettings | None,
        rule: CircuitRule | None = None,
        circuit: str | None = None,
        hooks: LeafHooks | None = None,
    ) -> None:
        self.target = target
        self.retry = retry
        self.cache = cache
        #: Its circuit breaking (``cb_config``) and the circuit's name, when a strategy asks.
        self.rule = rule
        self.circuit = circuit
        #: Guardrails and mutators to run around this target's call (None: none, most leaves).
        self.hooks = hooks
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
        leaf = Leaf(target, self.retry, self.cache, self.rule, self.circuit, self.hooks)
        if len(self._variants) >= _MAX_VARIANTS:
            self._variants.clear()
        self._variants[key] = leaf
        return leaf


class Branch:
    """A node with targets: how to choose among them, and its children compiled."""

    __slots__ = ("child_circuits", "children", "codes", "conditions", "cumulative", "default", "mode", "path")

    def __init__(self, mode: Mode, path: str, children: list[Leaf | Branch]) -> None:
        self.mode = mode
        self.path = path
        self.children = tuple(children)
        #: Per child, the circuits of the leaves under it, None when one has none: a child is
        #: open when all of them are (Portkey: a strategy whose every target is open is open).
        self.child_circuits = tuple(_circuits(c) for c in children)
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


def _circuits(node: Node) -> tuple[str, ...] | None:
    circuits = tuple(leaf.circuit for leaf in _leaves(node))
    return None if None in circuits else circuits  # type: ignore[return-value]


def option_path(node: Node) -> str:
    """Where a node sits in the config, as ``x-portkey-last-used-option-index`` says it."""
    return node.target.path if isinstance(node, Leaf) else _option_path(node.path)


class RoutePlan:
    """A compiled config: immutable, shared by every request that sends the same config."""

    __slots__ = ("chat_request_decoder", "circuits", "config_id", "decodes_body", "root", "roots")

    def __init__(self, root: Node, roots: frozenset[str], config_id: str = "") -> None:
        self.root = root
        #: Names the config's circuits (a saved config's name, else a digest of the config).
        self.config_id = config_id
        #: The circuits of its targets (none unless a ``cb_config`` applies to some, and never
        #: for one target alone: with no sibling to go to, it is always tried).
        self.circuits = tuple(
            leaf.circuit for leaf in _leaves(root) if leaf.circuit is not None and isinstance(root, Branch)
        )
        #: Which parts of the request conditions read (``metadata``, ``params``, ``url``).
        self.roots = roots
        #: A condition reads ``params.*``, or a target caches (its key is the canonical body) or
        #: runs hooks (their checks read the request): the body is decoded as a whole, once, and
        #: the request view taken from that.
        self.decodes_body = "params" in roots or any(
            leaf.cache is not None or leaf.hooks is not None for leaf in _leaves(root)
        )
        #: One target, named by provider, whose chat mapping decodes the body whole: the handler
        #: decodes it with this once, for the view and the mapping (``Provider.chat_request_decoder``).
        only = PROVIDERS.get(root.target.provider) if isinstance(root, Leaf) else None
        self.chat_request_decoder = only.chat_request_decoder if only is not None else None

    def leaves(self) -> list[Leaf]:
        return list(_leaves(self.root))


def _option_path(path: str) -> str:
    return f"config.{path}" if path else "config"


def _leaf(node: ConfigNode, inherited: Inherited, path: str, config_id: str) -> Leaf:
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
    rule = inherited.rule
    circuit = circuit_name(config_id, target.path) if rule is not None else None
    hooks = leaf_hooks(inherited.before_hooks, inherited.after_hooks)
    return Leaf(target, inherited.retry, inherited.cache, rule, circuit, hooks)


def _compile(node: ConfigNode, inherited: Inherited, path: str, roots: set[str], config_id: str) -> Node:
    if not node.targets:
        return _leaf(node, inherited, path, config_id)
    prefix = f"{path}." if path else ""
    below = inherited.for_targets(node)
    children = [
        _compile(
            child, below.child(child, f"{prefix}targets[{i}]"), f"{prefix}targets[{i}]", roots, config_id
        )
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


def compile_plan(
    root: ConfigNode, *, name: str | None = None, cb_config: CircuitBreakerConfig | None = None
) -> RoutePlan:
    """Compile a validated config; structural errors are 400s naming the bad field's path.

    ``name`` names a saved config's circuits; ``cb_config`` is the server's default circuit
    breaking, inherited by the config's root as if from a parent.
    """
    roots: set[str] = set()
    config_id = name or "cfg-" + hashlib.sha256(msgspec.json.encode(root)).hexdigest()[:12]
    inherited = Inherited(circuit_rule(cb_config) if cb_config is not None else None).child(root, "")
    node = _compile(root, inherited, "", roots, config_id)
    return RoutePlan(node, frozenset(roots), config_id)


class _Walk:
    """One request's walk over a plan."""

    __slots__ = ("doc", "open", "overrides", "rng", "skipped")

    def __init__(
        self,
        doc: Mapping[str, Any],
        overrides: Mapping[str, Any] | None,
        open_circuits: frozenset[str],
        rng: Callable[[], float],
        skipped: list[str] | None,
    ) -> None:
        self.doc = doc
        self.overrides = overrides
        self.open = open_circuits
        self.rng = rng
        self.skipped = skipped

    def walk(self, node: Node) -> Generator[Leaf, Result, Result]:
        if isinstance(node, Leaf):
            if self.overrides:
                node = node.overridden(self.overrides)
            result = yield node
            return result
        mode = node.mode
        order = self._healthy(node) if self.open and mode != "conditional" else range(len(node.children))
        if mode == "fallback":
            for i in order:
                result = yield from self.walk(node.children[i])
                if not node.continues(result):
                    break
            return result
        if mode == "loadbalance":
            return (yield from self.walk(node.children[self._pick(node, order)]))
        if mode == "conditional":
            return (yield from self.walk(node.children[self._choose(node)]))
        return (yield from self.walk(node.children[order[0]]))

    def _healthy(self, node: Branch) -> range | list[int]:
        """The children to route among: those whose circuits are not all open, or every child
        when none is left (Portkey: with no healthy target the breaker is bypassed)."""
        is_open = self.open.issuperset
        healthy = [
            i for i, circuits in enumerate(node.child_circuits) if circuits is None or not is_open(circuits)
        ]
        if not healthy or len(healthy) == len(node.children):
            return range(len(node.children))
        if self.skipped is not None:
            self.skipped.extend(option_path(c) for i, c in enumerate(node.children) if i not in healthy)
        return healthy

    def _pick(self, node: Branch, order: range | list[int]) -> int:
        """A weighted random child among ``order`` (Portkey §6.4); weight 0 is never chosen."""
        cumulative = node.cumulative
        if isinstance(order, range):
            return bisect.bisect_right(cumulative, self.rng() * cumulative[-1])
        bounds: list[float] = []
        total = 0.0
        for i in order:
            total += cumulative[i] - (cumulative[i - 1] if i else 0.0)
            bounds.append(total)
        if not total:  # only weight-0 targets are healthy: the breaker steps aside
            return bisect.bisect_right(cumulative, self.rng() * cumulative[-1])
        return order[bisect.bisect_right(bounds, self.rng() * total)]

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
    open_circuits: frozenset[str] = NO_CIRCUITS,
    skipped: list[str] | None = None,
    rng: Callable[[], float] = random.random,
) -> Generator[Leaf, Result, None]:
    """Yield the leaves to try in order; receive each one's final ``(status, reached)``.

    ``doc`` is the routing document conditions read (``metadata``, ``params``, ``url``);
    ``overrides`` are request-level header values applied to every leaf. Targets whose circuits
    are all in ``open_circuits`` are passed over (their option paths added to ``skipped``),
    unless every sibling's are.
    """
    yield from _Walk(doc, overrides, open_circuits, rng, skipped).walk(plan.root)
