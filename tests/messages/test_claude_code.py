"""Claude Code through fastgate: ``claude -p ... --output-format json`` with ``ANTHROPIC_BASE_URL``
at the gateway and the ``x-portkey-*`` headers in ``ANTHROPIC_CUSTOM_HEADERS``, to a provider that
speaks Messages (``anthropic`` at the mock over HTTP), to a translated one (``openai`` at the
mock), and to the built-in mock.

Claude Code calls other hosts besides its base URL, so the mock, the gateway and the CLI run in a
fresh network namespace that has only ``lo``: nothing any of them sends can leave the machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.mock.test_claude_code import claude_code
from tests.support.loopback_cli import GATEWAY, MOCK, run_through_gateway

#: Each target: its headers (one per line, as ``ANTHROPIC_CUSTOM_HEADERS`` takes them) and the
#: path its requests must reach on the mock (None: the built-in mock, in-process).
TARGETS = {
    "native": (
        f"x-portkey-provider: anthropic\nx-portkey-custom-host: {MOCK}/v1",
        "/v1/messages",
    ),
    "translated": (
        f"x-portkey-provider: openai\nx-portkey-custom-host: {MOCK}/v1",
        "/v1/chat/completions",
    ),
    "builtin-mock": ("x-portkey-provider: mock", None),
}


@pytest.mark.timeout(150)
@pytest.mark.parametrize("target", list(TARGETS))
def test_claude_code_through_fastgate(tmp_path: Path, target: str) -> None:
    headers, path = TARGETS[target]
    env = {
        "ANTHROPIC_BASE_URL": GATEWAY,
        "ANTHROPIC_API_KEY": "sk-ant-from-claude-code",
        "ANTHROPIC_CUSTOM_HEADERS": headers,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    run = run_through_gateway(
        tmp_path, ["node", str(claude_code()), "-p", "say hi", "--output-format", "json"], env
    )
    result = json.loads(run.out)
    assert result["is_error"] is False and result["subtype"] == "success", result
    assert result["result"].startswith("Mock reply to:"), result
    requests = run.requests
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
