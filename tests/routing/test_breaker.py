"""The circuit breaker's state machine, on a clock the test moves."""

from __future__ import annotations

from fastgate.routing.breaker import CircuitBreaker, Identity, is_failure, key_hash


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


A = Identity("openai", "http://a", key_hash("sk-a"))
B = Identity("openai", "http://b", key_hash("sk-b"))


def test_failures_that_count() -> None:
    assert [is_failure(s) for s in (200, 400, 401, 404, 408, 429, 500, 502, 503, 504)] == [
        False,
        False,
        False,
        False,
        True,
        True,
        True,
        True,
        True,
        True,
    ]


def test_key_hash_hides_the_key() -> None:
    digest = key_hash("sk-secret-123")
    assert len(digest) == 12 and "secret" not in digest
    assert digest == key_hash("sk-secret-123") != key_hash("sk-secret-124")
    assert key_hash(None) == ""


def test_opens_after_threshold_then_probes_after_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        breaker.record(A, 503)
    assert not breaker.is_open(A) and not breaker.any_open
    breaker.record(A, 200)  # a success resets the count
    for _ in range(3):
        breaker.record(A, 502)
    assert breaker.is_open(A) and breaker.any_open and breaker.state(A) == "open"
    assert not breaker.is_open(B)
    clock.now += 9.9
    assert breaker.is_open(A)
    clock.now += 0.2
    assert breaker.state(A) == "half_open" and not breaker.is_open(A)
    breaker.started(A)  # the probe
    assert breaker.is_open(A), "others skip the target while its probe is under way"
    breaker.record(A, 500)
    assert breaker.is_open(A) and breaker.state(A) == "open"
    clock.now += 10.1
    breaker.started(A)
    breaker.record(A, 200)
    assert breaker.state(A) == "closed" and not breaker.any_open


def test_a_probe_that_never_reports_is_given_up() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=5, clock=clock)
    breaker.record(A, 504)
    clock.now += 6
    breaker.started(A)
    assert breaker.is_open(A)
    clock.now += 6
    assert not breaker.is_open(A)


def test_client_errors_do_not_open_and_zero_threshold_disables() -> None:
    breaker = CircuitBreaker(threshold=1, cooldown_s=5)
    breaker.record(A, 401)
    assert not breaker.is_open(A)
    off = CircuitBreaker(threshold=0)
    for _ in range(10):
        off.record(A, 503)
    assert not off.is_open(A) and off.prometheus().count("fastgate_circuit_state{") == 0


def test_prometheus_text() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cooldown_s=5, clock=clock)
    breaker.record(A, 503)
    breaker.record(A, 503)
    breaker.record(B, 429)
    text = breaker.prometheus()
    labels_a = f'provider="openai",host="http://a",key="{A.key}"'
    assert f"fastgate_circuit_state{{{labels_a}}} 1\n" in text
    assert f"fastgate_circuit_failures{{{labels_a}}} 2\n" in text
    assert f"fastgate_circuit_opens_total{{{labels_a}}} 1\n" in text
    assert 'fastgate_circuit_state{provider="openai",host="http://b"' in text
    assert "# TYPE fastgate_circuit_state gauge" in text
    assert "sk-a" not in text
    clock.now += 6
    assert f"fastgate_circuit_state{{{labels_a}}} 2\n" in breaker.prometheus()
    breaker.record(A, 200)
    assert f"fastgate_circuit_state{{{labels_a}}} 0\n" in breaker.prometheus()
