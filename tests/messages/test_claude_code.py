"""Claude Code through fastgate: ``claude -p ... --output-format json`` with ``ANTHROPIC_BASE_URL``
at the gateway and the ``x-portkey-*`` headers in ``ANTHROPIC_CUSTOM_HEADERS``, to a provider that
speaks Messages (``anthropic`` at the mock over HTTP), to a translated one (``openai`` at the
mock), and to the built-in mock.

Claude Code calls other hosts besides its base URL, so the mock, the gateway and the CLI run in a
fresh network namespace that has only ``lo``: nothing any of them sends can leave the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mock.test_claude_code import claude_code

ROOT = Path(__file__).resolve().parents[2]
MOCK_PORT, GATEWAY_PORT = 8921, 8922

SCRIPT = """
ip link set lo up
wait_for() {{
  for i in $(seq 1 100); do
    {python} -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}}
{python} -m fastgate mock --port {mock} >{tmp}/mock.log 2>&1 &
{python} -m fastgate serve --port {gateway} >{tmp}/gateway.log 2>&1 &
wait_for {mock} && wait_for {gateway} || exit 97
cd {tmp}/work
HOME={tmp}/home ANTHROPIC_BASE_URL=http://127.0.0.1:{gateway} ANTHROPIC_API_KEY=sk-ant-from-claude-code \\
  ANTHROPIC_CUSTOM_HEADERS="$(cat {tmp}/headers)" \\
  DISABLE_AUTOUPDATER=1 CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \\
  timeout 90 node {claude} -p "say hi" --output-format json >{tmp}/out.json 2>{tmp}/err.log
status=$?
{python} -c "import urllib.request, sys; sys.stdout.buffer.write(urllib.request.urlopen( \\
  'http://127.0.0.1:{mock}/_mock/requests').read())" >{tmp}/requests.json
kill %1 %2
exit $status
"""

#: Each target: its headers (one per line, as ``ANTHROPIC_CUSTOM_HEADERS`` takes them) and the
#: path its requests must reach on the mock (None: the built-in mock, in-process).
TARGETS = {
    "native": (
        f"x-portkey-provider: anthropic\nx-portkey-custom-host: http://127.0.0.1:{MOCK_PORT}/v1",
        "/v1/messages",
    ),
    "translated": (
        f"x-portkey-provider: openai\nx-portkey-custom-host: http://127.0.0.1:{MOCK_PORT}/v1",
        "/v1/chat/completions",
    ),
    "builtin-mock": ("x-portkey-provider: mock", None),
}


@pytest.mark.timeout(150)
@pytest.mark.parametrize("target", list(TARGETS))
def test_claude_code_through_fastgate(tmp_path: Path, target: str) -> None:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.fail("unshare and root are needed to build a loopback-only network namespace")
    headers, path = TARGETS[target]
    (tmp_path / "home").mkdir()
    (tmp_path / "work").mkdir()
    (tmp_path / "headers").write_text(headers)
    script = SCRIPT.format(
        python=sys.executable, mock=MOCK_PORT, gateway=GATEWAY_PORT, tmp=tmp_path, claude=claude_code()
    )
    proc = subprocess.run(
        [unshare, "--net", "sh", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=140
    )
    logs = "".join((tmp_path / name).read_text()[-1500:] for name in ("err.log", "gateway.log"))
    assert proc.returncode == 0, proc.stderr[-2000:] + logs
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["is_error"] is False and result["subtype"] == "success", result
    assert result["result"].startswith("Mock reply to:"), result
    requests = json.loads((tmp_path / "requests.json").read_text())
    if path is None:
        assert requests == []  # answered in the gateway's process
        return
    reached = [r for r in requests if r["path"] == path]
    assert reached, [r["path"] for r in requests]
    assert {r["path"] for r in requests} <= {path, "/v1/messages/count_tokens"}
    last = reached[-1]
    body = json.loads(last["body"])
    if target == "native":
        # As Claude Code sent it: its beta headers and its key, the body untouched.
        assert last["headers"]["x-api-key"] == "sk-ant-from-claude-code"
        assert last["headers"].get("anthropic-beta")
        assert body["stream"] is True and body["thinking"]["type"] in ("enabled", "adaptive")
        assert "system" in [m["role"] for m in body["messages"]] or body.get("system")
    else:
        # The chat pivot: OpenAI's own fields, the key as a bearer token.
        assert last["headers"]["Authorization"] == "Bearer sk-ant-from-claude-code"
        assert body["messages"][0]["role"] == "system"
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        assert "thinking" not in body and "anthropic_version" not in body
