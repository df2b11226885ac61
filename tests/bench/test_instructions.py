"""bench/instructions.py reads callgrind_annotate's report (valgrind itself is not needed here)."""

from __future__ import annotations

from bench.instructions import parse_annotate

REPORT = """\
--------------------------------------------------------------------------------
Ir
--------------------------------------------------------------------------------
3,044,672,262 (100.0%)  PROGRAM TOTALS

--------------------------------------------------------------------------------
Ir                    file:function
--------------------------------------------------------------------------------
329,015,237 (10.81%)  Python/ceval.c:_PyEval_EvalFrameDefault'2 [/usr/lib/libpython3.11.so.1.0]
 28,473,000 ( 0.94%)  fastgate/_transforms.c:__pyx_f_parse_head [/work/fastgate/_transforms.so]
  1,000,000 ( 0.03%)  fastgate/_transforms.c:__pyx_f_parse_head [/work/fastgate/_transforms.so]
"""


def test_totals_and_functions_are_read() -> None:
    total, per = parse_annotate(REPORT)
    assert total == 3_044_672_262
    assert per == {
        "Python/ceval.c:_PyEval_EvalFrameDefault'2": 329_015_237,
        "fastgate/_transforms.c:__pyx_f_parse_head": 29_473_000,
    }
