"""Circuit breaking, only where a config asks for it: Portkey's ``strategy.cb_config``.

Semantics from Portkey's own implementation (``src/utils/circuitBreaker.ts``, gateway 2.0), per
target of a config (a circuit is a config and a target path):

- a target's answer (after its retries) is a failure when its status is in
  ``failure_status_codes``, or is 500 or above when none are given; a 2xx is a success;
  anything else is not counted;
- the circuit is open while fewer than ``cooldown_interval`` ms (at least 30 s) have passed since
  its first failure and either ``failure_threshold`` failures were counted, or at least
  ``minimum_requests`` (default 5) answers were counted and ``failure_threshold_percentage`` of
  them failed;
- once ``cooldown_interval`` has passed since the first failure, the counts start afresh.

Which targets are skipped (open ones, unless every sibling is open) is the plan's business
(``plan.py``); this module keeps the counts. They sit behind :class:`CircuitStates`, two calls a
shared store (Redis) can answer as well as this process's :class:`LocalCircuits`.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol

import msgspec

log = logging.getLogger("fastgate")

#: Portkey enforces this floor on ``cooldown_interval``.
MIN_COOLDOWN_MS = 30_000
#: Portkey's ``minimum_requests`` when a config gives none.
DEFAULT_MINIMUM_REQUESTS = 5
#: Circuits tracked at most by one process (the least recently used go first).
MAX_TRACKED = 10_000


class CircuitRule(msgspec.Struct, frozen=True, kw_only=True):
    """A ``cb_config``, compiled: when a target's circuit opens and for how long."""

    failure_threshold: int = 0
    failure_threshold_percentage: float = 0.0
    minimum_requests: int = DEFAULT_MINIMUM_REQUESTS
    cooldown_ms: int = MIN_COOLDOWN_MS
    #: Statuses that count as failures; None: every status from 500 up.
    failure_status_codes: frozenset[int] | None = None

    def verdict(self, status: int) -> bool | None:
        """Whether an answer is a failure (True), a success (False), or not counted (None)."""
        codes = self.failure_status_codes
        if status in codes if codes is not None else status >= 500:
            return True
        return False if 200 <= status < 300 else None


class CircuitStates(Protocol):
    """Where circuits are counted: this process, or a store shared by every gateway."""

    async def circuit_record(self, circuit: str, failed: bool, rule: CircuitRule) -> int:
        """Count one answer; the milliseconds the circuit is open from now (0: closed)."""
        ...

    async def circuits_open(self, circuits: Sequence[str]) -> list[int]:
        """Milliseconds each circuit is open from now (0: closed), in one look."""
        ...


class _Circuit:
    __slots__ = ("failures", "first_failure", "is_open", "opens", "rule", "successes")

    def __init__(self, rule: CircuitRule) -> None:
        self.rule = rule
        self.failures = 0
        self.successes = 0
        self.first_failure: float | None = None
        #: Open at the last look, and how often it opened (for metrics).
        self.is_open = False
        self.opens = 0

    def open_ms(self, now: float) -> int:
        """Milliseconds still open (0: closed); past the cool-down the counts start afresh."""
        first = self.first_failure
        if first is None:
            return 0
        rule = self.rule
        left = rule.cooldown_ms - (now - first) * 1000
        if left < 0:
            self.failures = self.successes = 0
            self.first_failure = None
            self.is_open = False
            return 0
        total = self.failures + self.successes
        tripped = (rule.failure_threshold > 0 and self.failures >= rule.failure_threshold) or (
            rule.failure_threshold_percentage > 0
            and total >= rule.minimum_requests
            and self.failures * 100 >= rule.failure_threshold_percentage * total
        )
        if tripped and not self.is_open:
            self.opens += 1
        self.is_open = tripped
        return max(1, int(left)) if tripped else 0


class LocalCircuits:
    """The circuits of this process (each worker counts its own)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._circuits: OrderedDict[str, _Circuit] = OrderedDict()

    async def circuit_record(self, circuit: str, failed: bool, rule: CircuitRule) -> int:
        now = self._clock()
        state = self._circuits.get(circuit)
        if state is None:
            state = self._circuits[circuit] = _Circuit(rule)
            if len(self._circuits) > MAX_TRACKED:
                self._circuits.popitem(last=False)
        else:
            self._circuits.move_to_end(circuit)
            state.rule = rule
            state.open_ms(now)  # past the cool-down: counted afresh
        if failed:
            state.failures += 1
            if state.first_failure is None:
                state.first_failure = now
        else:
            state.successes += 1
        return state.open_ms(now)

    async def circuits_open(self, circuits: Sequence[str]) -> list[int]:
        now = self._clock()
        get = self._circuits.get
        return [state.open_ms(now) if (state := get(c)) is not None else 0 for c in circuits]

    def circuits(self) -> list[tuple[str, bool, int, int]]:
        """``(circuit, open now, failures in its window, times opened)`` of every tracked circuit."""
        now = self._clock()
        return [(c, bool(s.open_ms(now)), s.failures, s.opens) for c, s in list(self._circuits.items())]


def circuit_name(config: str, path: str) -> str:
    """The circuit of the target at ``path`` (``config.targets[1]``) of a config."""
    return f"{config} {path}"


def circuit_parts(circuit: str) -> tuple[str, str]:
    """``(config, target path)`` of a circuit's name."""
    config, _, path = circuit.rpartition(" ")
    return config, path


class CircuitBreaker:
    """The gateway's view of the circuits: which are open, answers counted, skips shown."""

    def __init__(self, states: CircuitStates | None = None) -> None:
        self.states: CircuitStates = states if states is not None else LocalCircuits()
        self._out_of_reach = False
        #: Targets skipped because their circuit was open, by circuit name (config and path).
        self.skips: dict[str, int] = {}

    async def open_among(self, circuits: Sequence[str]) -> frozenset[str]:
        """The circuits of a plan that are open now; all closed while a shared store is out of
        reach (fail open: every target is tried, as a config without circuit breaking)."""
        try:
            left = await self.states.circuits_open(circuits)
        except ConnectionError as exc:
            self._unreachable(exc)
            return frozenset()
        self._out_of_reach = False
        return frozenset(c for c, ms in zip(circuits, left, strict=True) if ms)

    async def record(self, circuit: str, rule: CircuitRule, status: int) -> None:
        failed = rule.verdict(status)
        if failed is not None:
            try:
                await self.states.circuit_record(circuit, failed, rule)
            except ConnectionError as exc:
                self._unreachable(exc)

    def _unreachable(self, exc: ConnectionError) -> None:
        """Said once per outage, not once per request."""
        if not self._out_of_reach:
            self._out_of_reach = True
            log.warning("circuits read as closed while their store is out of reach: %s", exc)

    def skipped(self, config: str, paths: Sequence[str]) -> None:
        skips = self.skips
        for path in paths:
            name = circuit_name(config, path)
            skips[name] = skips.get(name, 0) + 1
            if len(skips) > MAX_TRACKED:
                del skips[next(iter(skips))]

    def circuits(self) -> list[tuple[str, bool, int, int]]:
        """The circuits counted in this process (see ``LocalCircuits.circuits``; none when a
        shared store counts them)."""
        states = self.states
        return states.circuits() if isinstance(states, LocalCircuits) else []
