"""A command-line client (Claude Code, Codex) driven through a real gateway to the mock, inside a
fresh network namespace that has only ``lo``: such clients call other hosts besides their base URL,
and nothing any of them sends can leave the machine.

The mock and ``fastgate serve`` run in the namespace as their own processes, on fixed ports (the
namespace is the run's alone); the client runs once with ``HOME`` in the test's directory; then the
mock's record of what it received is read, and both servers are stopped by their process ids.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
MOCK_PORT, GATEWAY_PORT = 8921, 8922
#: The gateway's address inside the namespace, and the mock's (a custom host for a provider).
GATEWAY = f"http://127.0.0.1:{GATEWAY_PORT}"
MOCK = f"http://127.0.0.1:{MOCK_PORT}"

_SCRIPT = """
ip link set lo up
wait_for() {{
  for i in $(seq 1 100); do
    {python} -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}}
{python} -m fastgate mock --port {mock} >{tmp}/mock.log 2>&1 &
mock=$!
{python} -m fastgate serve --port {gateway} >{tmp}/gateway.log 2>&1 &
gateway=$!
if wait_for {mock} && wait_for {gateway}; then
  cd {tmp}/work
  env HOME={tmp}/home {env} timeout 90 {command} >{tmp}/out 2>{tmp}/err.log </dev/null
  status=$?
  {python} -c "import urllib.request, sys; sys.stdout.buffer.write(urllib.request.urlopen( \\
    'http://127.0.0.1:{mock}/_mock/requests').read())" >{tmp}/requests.json
else
  status=97
fi
kill $mock $gateway
wait
exit $status
"""


@dataclass
class Run:
    #: What the client wrote on its standard output.
    out: str
    #: What the mock received, oldest first (``path``, ``headers``, ``body``, ...).
    requests: list[dict[str, Any]]
    #: The test's directory: ``home`` (the client's ``HOME``) and ``work`` (where it ran).
    tmp: Path


def npm_cli(package: str, entry: str) -> Path:
    """A CLI installed from the npm registry (.ci/run installs it): its entry point."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"npm is needed: {package} installs from the npm registry")
    root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, check=True).stdout.strip()
    path = Path(root) / package / entry
    if not path.exists():
        pytest.fail(f"{package} is not installed: npm install -g {package}")
    return path


def run_through_gateway(tmp: Path, command: list[str], env: dict[str, str]) -> Run:
    """Run ``command`` (with ``env``) in a loopback-only namespace with the mock and a gateway."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.fail("unshare and root are needed to build a loopback-only network namespace")
    (tmp / "home").mkdir(exist_ok=True)
    (tmp / "work").mkdir(exist_ok=True)
    script = _SCRIPT.format(
        python=shlex.quote(sys.executable),
        mock=MOCK_PORT,
        gateway=GATEWAY_PORT,
        tmp=shlex.quote(str(tmp)),
        env=" ".join(f"{name}={shlex.quote(value)}" for name, value in env.items()),
        command=shlex.join(command),
    )
    proc = subprocess.run(
        [unshare, "--net", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=140
    )
    logs = "".join(
        (tmp / name).read_text()[-1500:] for name in ("err.log", "gateway.log") if (tmp / name).exists()
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + logs
    return Run(
        out=(tmp / "out").read_text(), requests=json.loads((tmp / "requests.json").read_text()), tmp=tmp
    )
