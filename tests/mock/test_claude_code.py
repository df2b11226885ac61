"""Claude Code itself against the mock's Messages API: what the most-used Messages client sends now
(``system`` turns in ``messages``, adaptive thinking, ``output_config``, ``context_management``,
beta headers) is answered, not refused.

Claude Code (``@anthropic-ai/claude-code`` from npm; .ci/run installs it) calls other hosts
besides its base URL, so it runs with the mock in a fresh network namespace that has only ``lo``:
nothing it sends can leave the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.loopback_cli import npm_cli

ROOT = Path(__file__).resolve().parents[2]
PORT = 8911


def claude_code() -> Path:
    """The CLI's entry point: its wrapper runs the native binary whether or not npm ran the
    package's install script (npm 11 asks before running it)."""
    return npm_cli("@anthropic-ai/claude-code", "cli-wrapper.cjs")


SCRIPT = """
ip link set lo up
{python} -m fastgate mock --port {port} >{tmp}/mock.log 2>&1 &
mock=$!
trap 'kill $mock' EXIT
for i in $(seq 1 100); do
  {python} -c "import socket; socket.create_connection(('127.0.0.1', {port}), 1)" 2>/dev/null && break
  sleep 0.1
done
cd {tmp}/work
HOME={tmp}/home ANTHROPIC_BASE_URL=http://127.0.0.1:{port} ANTHROPIC_API_KEY=sk-ant-test \\
  DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \\
  timeout 90 node {claude} -p "say hi" --output-format json >{tmp}/out.json 2>{tmp}/err.log
status=$?
{python} -c "import urllib.request, sys; sys.stdout.buffer.write(urllib.request.urlopen( \\
  'http://127.0.0.1:{port}/_mock/requests').read())" >{tmp}/requests.json
exit $status
"""


@pytest.mark.timeout(150)
def test_claude_code_is_answered_by_the_mock(tmp_path: Path) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.fail("unshare and root are needed to build a loopback-only network namespace")
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    script = SCRIPT.format(python=sys.executable, port=PORT, tmp=tmp_path, claude=claude_code())
    proc = subprocess.run(
        [unshare, "--net", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=140
    )
    err = (tmp_path / "err.log").read_text()[-2000:]
    assert proc.returncode == 0, proc.stderr[-2000:] + err
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["is_error"] is False and result["subtype"] == "success", result
    assert result["result"].startswith("Mock reply to:")
    requests = json.loads((tmp_path / "requests.json").read_text())
    sent = [json.loads(r["body"]) for r in requests if r["path"] == "/v1/messages"]
    # One request: Claude Code sends a refused one again in another shape (without its system
    # turn), which the mock refused before it took system turns.
    assert len(sent) == 1, [[m["role"] for m in body["messages"]] for body in sent]
    assert "system" in [m["role"] for m in sent[0]["messages"]]
    assert sent[0]["thinking"]["type"] in ("enabled", "adaptive") and sent[0]["stream"] is True
