"""Budgets as ratios: each benchmark records its median; a budget compares two from the same run.

The machine is shared and noisy, so absolute times mean little; a compiled kernel and its
pure-Python baseline measured back to back in one process share the same noise.
"""

from __future__ import annotations

from typing import Any

import pytest

MEDIANS: dict[str, float] = {}
#: Fastest rounds: for paths long enough that another tenant's burst lands in most rounds.
MINIMA: dict[str, float] = {}


@pytest.fixture
def measure(benchmark: Any, request: pytest.FixtureRequest) -> Any:
    """``measure(fn, *args)``: benchmark ``fn`` and record its median under the test's name."""

    def run(fn: Any, *args: Any) -> Any:
        result = benchmark(fn, *args)
        if benchmark.stats is not None:
            MEDIANS[request.node.name] = benchmark.stats.stats.median
            MINIMA[request.node.name] = benchmark.stats.stats.min
        return result

    return run


def ratio(numerator: str, denominator: str, stats: dict[str, float] = MEDIANS) -> float:
    """Median (or another statistic) of one recorded benchmark over another's; skips when
    either did not run."""
    if numerator not in stats or denominator not in stats:
        pytest.skip("benchmarks disabled or not run in this session")
    return stats[numerator] / stats[denominator]
