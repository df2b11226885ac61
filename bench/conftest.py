"""Budgets as ratios: each benchmark records its median; a budget compares two from the same run.

The machine is shared and noisy, so absolute times mean little; a compiled kernel and its
pure-Python baseline measured back to back in one process share the same noise.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any

import pytest

MEDIANS: dict[str, float] = {}


@pytest.fixture
def measure(benchmark: Any, request: pytest.FixtureRequest) -> Any:
    """``measure(fn, *args)``: benchmark ``fn`` and record its median under the test's name."""

    def run(fn: Any, *args: Any) -> Any:
        result = benchmark(fn, *args)
        if benchmark.stats is not None:
            MEDIANS[request.node.name] = benchmark.stats.stats.median
        return result

    return run


def require_measured(*names: str) -> None:
    """Skips the calling budget unless these benchmarks recorded a median in this session
    (benchmarks disabled, or deselected)."""
    if any(name not in MEDIANS for name in names):
        pytest.skip("benchmarks disabled or not run in this session")


def ratio(numerator: str, denominator: str) -> float:
    """Median of one recorded benchmark over another's; skips when either did not run."""
    require_measured(numerator, denominator)
    return MEDIANS[numerator] / MEDIANS[denominator]


def interleaved_ratio(
    mapping: Callable[[], object], baseline: Callable[[], object], rounds: int = 60
) -> float:
    """Best-of-N time of ``mapping`` over ``baseline``, measured alternately so both see the same
    machine load (the minimum is the estimate least disturbed by other processes, as ``timeit``'s
    documentation advises). The pytest-benchmark medians make the tables; measured one after the
    other, a burst of load during one of them skews their ratio (a request mapping read 1.7x its
    floor in most runs and 3.05x in one), so budgets are checked on this."""
    best_mapping = best_baseline = float("inf")
    for _ in range(rounds):
        best_mapping = min(best_mapping, timeit.timeit(mapping, number=100))
        best_baseline = min(best_baseline, timeit.timeit(baseline, number=100))
    return best_mapping / best_baseline
