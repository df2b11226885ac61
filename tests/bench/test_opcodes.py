"""bench/opcodes.py counts the bytecodes of the gateway's functions over real requests in process."""

from __future__ import annotations

import dis
import re
import subprocess
import sys
from collections import Counter

from bench.instructions import REPO
from bench.opcodes import _tracer


def _three_adds(a: int) -> int:
    return a + a + a + a


def test_each_bytecode_a_function_runs_is_counted_under_its_name() -> None:
    counts: Counter[str] = Counter()
    sys.settrace(_tracer(counts))
    try:
        _three_adds(1)
        _three_adds(2)
    finally:
        sys.settrace(None)
    (name, count), *_ = counts.most_common()
    assert name.endswith(":_three_adds") and name.startswith("tests/bench/test_opcodes.py:")
    # Straight-line code: each of its bytecodes once a call, but the RESUME that comes before
    # the trace's call event.
    ran = [i for i in dis.get_instructions(_three_adds) if i.opname != "RESUME"]
    assert len(ran) >= 8 and count == 2 * len(ran)


def test_a_request_path_is_counted_function_by_function() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.opcodes", "-n", "20", "--top", "5"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    head, *rows = out.splitlines()
    total = int(re.match(r"openai: ([\d,]+) bytecodes per request", head)[1].replace(",", ""))  # type: ignore[index]
    assert 500 < total < 20_000
    assert len(rows) == 5 and any(row.endswith("Gateway._route") for row in rows)
    assert sum(float(row.split()[0]) for row in rows) < total
