"""Circuit breaking: a target that keeps failing is skipped for a cool-down, then probed again.

A target is known by its identity: provider, host (custom host, or the provider's default) and
a short hash of its key, never the key itself, since the identity shows up in metrics. Only
targets that failed are tracked, so the table stays small however many keys clients send.
Portkey's open-source gateway has only the hooks for this (``cb_config``); the state machine is ours:

    closed --N failures in a row--> open --cool-down elapsed--> half-open (one probe)
    half-open --probe ok--> closed;  half-open --probe failed--> open again
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import NamedTuple

#: Statuses that count against a target: it is down, overloaded or too slow. Client errors
#: (400, 401, 404 ...) are the request's fault, not the target's.
_FAILURE_FLOOR = 500
_FAILURES = frozenset({408, 429})
#: Tracked targets kept at most (the oldest entries go first).
MAX_TRACKED = 10_000


class Identity(NamedTuple):
    provider: str
    host: str
    key: str


def key_hash(api_key: str | None) -> str:
    """A short, stable fingerprint of a key: enough to tell keys apart, useless to recover one."""
    if not api_key:
        return ""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


def is_failure(status: int) -> bool:
    return status >= _FAILURE_FLOOR or status in _FAILURES


class _Circuit:
    __slots__ = ("failures", "opened_at", "opens", "probe_at")

    def __init__(self) -> None:
        self.failures = 0
        self.opened_at: float | None = None
        self.probe_at: float | None = None
        self.opens = 0


class CircuitBreaker:
    """Per-target failure counts and open circuits of one process."""

    def __init__(
        self, threshold: int = 5, cooldown_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        #: Consecutive failures that open a circuit; 0 turns circuit breaking off.
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._circuits: dict[Identity, _Circuit] = {}
        self._open = 0

    @property
    def any_open(self) -> bool:
        """False on the fast path: no circuit open, so planning need not consult the breaker."""
        return self._open > 0

    def is_open(self, identity: Identity) -> bool:
        """Whether to skip this target now (open and cooling down, or a probe already under way)."""
        circuit = self._circuits.get(identity)
        if circuit is None or circuit.opened_at is None:
            return False
        now = self._clock()
        if now - circuit.opened_at < self.cooldown_s:
            return True
        # Half-open: one probe at a time; a probe that never reported is given up after a cool-down.
        return circuit.probe_at is not None and now - circuit.probe_at < self.cooldown_s

    def started(self, identity: Identity) -> None:
        """An attempt is about to go to this target: if its circuit is half-open, this is the probe."""
        circuit = self._circuits.get(identity)
        if circuit is not None and circuit.opened_at is not None:
            circuit.probe_at = self._clock()

    def record(self, identity: Identity, status: int) -> None:
        """The answer of one attempt (statuses the gateway made for network failures included)."""
        if self.threshold <= 0:
            return
        circuit = self._circuits.get(identity)
        if not is_failure(status):
            if circuit is not None:
                if circuit.opened_at is not None:
                    self._open -= 1
                    circuit.opened_at = circuit.probe_at = None
                circuit.failures = 0
                if not circuit.opens:  # kept only while metrics have something to say about it
                    del self._circuits[identity]
            return
        if circuit is None:
            if len(self._circuits) >= MAX_TRACKED:
                self._evict()
            circuit = self._circuits[identity] = _Circuit()
        circuit.failures += 1
        if circuit.opened_at is not None:
            # A failed probe (or a straggler that started before the circuit opened): open again.
            circuit.opened_at = self._clock()
            circuit.probe_at = None
        elif circuit.failures >= self.threshold:
            circuit.opened_at = self._clock()
            circuit.opens += 1
            self._open += 1

    def _evict(self) -> None:
        oldest = next(iter(self._circuits))
        if self._circuits.pop(oldest).opened_at is not None:
            self._open -= 1

    def state(self, identity: Identity) -> str:
        circuit = self._circuits.get(identity)
        if circuit is None or circuit.opened_at is None:
            return "closed"
        return "open" if self._clock() - circuit.opened_at < self.cooldown_s else "half_open"

    def prometheus(self) -> str:
        """The tracked targets in Prometheus text format (0.0.4)."""
        lines = [
            "# HELP fastgate_circuit_state Circuit of an upstream target: 0 closed, 1 open, 2 half-open.",
            "# TYPE fastgate_circuit_state gauge",
        ]
        codes = {"closed": 0, "open": 1, "half_open": 2}
        failures = [
            "# HELP fastgate_circuit_failures Consecutive failed attempts of an upstream target.",
            "# TYPE fastgate_circuit_failures gauge",
        ]
        opens = [
            "# HELP fastgate_circuit_opens_total Times the circuit of an upstream target opened.",
            "# TYPE fastgate_circuit_opens_total counter",
        ]
        for identity, circuit in self._circuits.items():
            labels = _labels(identity)
            lines.append(f"fastgate_circuit_state{{{labels}}} {codes[self.state(identity)]}")
            failures.append(f"fastgate_circuit_failures{{{labels}}} {circuit.failures}")
            opens.append(f"fastgate_circuit_opens_total{{{labels}}} {circuit.opens}")
        return "\n".join([*lines, *failures, *opens]) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(identity: Identity) -> str:
    return (
        f'provider="{_escape(identity.provider)}",host="{_escape(identity.host)}",'
        f'key="{_escape(identity.key)}"'
    )
