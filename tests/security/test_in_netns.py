"""Runs the refusal tests in a fresh network namespace that has only ``lo``.

Building one needs root (``unshare --net``): for another user the test is skipped, saying why,
rather than failed (the refusal tests then do not run: outside such a namespace a regression
could reach the network).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_refusal_suite_passes_in_loopback_only_namespace() -> None:
    unshare = shutil.which("unshare")
    if os.geteuid() != 0:
        pytest.skip("needs root: the refusal tests run in a loopback-only network namespace (unshare --net)")
    if unshare is None:
        pytest.fail("unshare (util-linux) is needed to build a loopback-only network namespace")
    script = (
        f"ip link set lo up && exec {sys.executable} -m pytest -q -m netns -p no:cacheprovider tests/security"
    )
    proc = subprocess.run(
        [unshare, "--net", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=110
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout, proc.stdout[-2000:]
