"""The compiled cosine kernel of the semantic cache against a plain Python reference."""

from __future__ import annotations

import math
from array import array

from hypothesis import given
from hypothesis import strategies as st

from fastgate._transforms import best_match

floats = st.floats(min_value=-100, max_value=100, allow_nan=False, width=32)


def reference(query: list[float], candidates: list[list[float]]) -> tuple[int, float]:
    def norm(v: list[float]) -> float:
        return math.sqrt(sum(x * x for x in v))

    best, best_index = -1.0, -1
    for i, c in enumerate(candidates):
        if len(c) != len(query) or norm(c) == 0 or norm(query) == 0:
            continue
        sim = sum(a * b for a, b in zip(query, c, strict=True)) / (norm(query) * norm(c))
        if sim > best:
            best, best_index = sim, i
    return best_index, best


def packed(v: list[float]) -> bytes:
    return array("f", v).tobytes()


@given(st.integers(1, 16).flatmap(lambda n: st.tuples(st.lists(floats, min_size=n, max_size=n),
       st.lists(st.lists(floats, min_size=n, max_size=n), max_size=8))))  # fmt: skip
def test_matches_the_reference(case: tuple[list[float], list[list[float]]]) -> None:
    query, candidates = case
    index, similarity = best_match(packed(query), [packed(c) for c in candidates])
    want_index, want = reference(query, candidates)
    if want_index >= 0:
        # Ties may pick either; the similarity found is the best one.
        assert math.isclose(similarity, want, rel_tol=1e-6, abs_tol=1e-9)
        assert math.isclose(reference(query, [candidates[index]])[1], want, rel_tol=1e-6, abs_tol=1e-9)
    else:
        assert (index, similarity) == (-1, -1.0)


def test_other_lengths_and_zero_vectors_are_skipped() -> None:
    query = packed([1.0, 0.0])
    assert best_match(query, [packed([1.0, 0.0, 0.0]), packed([0.0, 0.0]), packed([0.5, 0.5])])[0] == 2
    assert best_match(packed([0.0, 0.0]), [query]) == (-1, -1.0)
    assert best_match(query, []) == (-1, -1.0)
