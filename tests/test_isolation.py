"""The suite runs on its own state: a user's keys, settings and privileges change no result."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _pytest(*args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args]


def test_each_test_has_its_own_data_folder_home_and_settings(isolated_environment: Path) -> None:
    assert Path(os.environ["FASTGATE_DATA_DIR"]).parent == isolated_environment
    assert Path.home().parent == isolated_environment
    assert not [name for name in os.environ if name.startswith("FASTGATE_") and name != "FASTGATE_DATA_DIR"]


@pytest.mark.timeout(120)
def test_the_cli_tests_pass_after_the_users_own_fastgate_keys_add(tmp_path: Path) -> None:
    """The README's ``fastgate keys add`` writes to the user's data folder; a gateway a test
    starts must not read it (it answered 401 to the test's requests)."""
    user = tmp_path / "user"
    env = {
        **os.environ,
        "HOME": str(user / "home"),
        "FASTGATE_DATA_DIR": str(user / "data"),
        "FASTGATE_DEFAULT_PROVIDER": "no-such-provider",
    }
    subprocess.run(
        [sys.executable, "-m", "fastgate", "keys", "add", "--name", "mine"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=30,
    )
    assert (user / "data" / "keys.json").exists()
    proc = subprocess.run(
        _pytest("tests/test_cli.py::test_serve_and_mock_processes_answer_and_stop_on_sigterm"),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


@pytest.mark.timeout(120)
def test_tests_that_need_root_skip_with_the_reason_for_another_user() -> None:
    command = _pytest("tests/security/test_in_netns.py")
    if os.geteuid() == 0:
        # Run as an ordinary user: uid 1000 in a user namespace of its own (no capabilities).
        unshare = shutil.which("unshare")
        if unshare is None:
            pytest.skip("unshare (util-linux) is needed to run the suite as another user")
        command = [unshare, "--user", "--map-user=1000", "--map-group=1000", *command]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 skipped" in proc.stdout
    assert "needs root" in proc.stdout
