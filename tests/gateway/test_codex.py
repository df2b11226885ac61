"""Codex CLI (``@openai/codex`` from npm; .ci/run installs it) through fastgate: ``codex exec
--json`` with a model provider whose ``base_url`` is the gateway and whose ``http_headers`` carry
the ``x-portkey-*`` headers, to a provider that speaks the Responses API (``openai`` at the mock),
to a translated one (``anthropic`` at the mock, through the chat pivot), and to the built-in mock.

Codex's own tools are function tools, some grouped in a ``namespace`` (its sub-agents); by
default it also offers OpenAI's hosted ``web_search``, which a provider reached through chat cannot
be given (docs/responses.md): the configuration turns it off, as a user of such a provider would.
Codex, the mock and the gateway run in a loopback-only network namespace
(tests/support/loopback_cli.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.loopback_cli import GATEWAY, MOCK, npm_cli, run_through_gateway

KEY = "sk-from-codex"

#: Each target: its x-portkey-* headers, the model, and the path its requests must reach on the
#: mock (None: the built-in mock, in-process).
TARGETS: dict[str, tuple[dict[str, str], str, str | None]] = {
    "native": (
        {"x-portkey-provider": "openai", "x-portkey-custom-host": MOCK + "/v1"},
        "gpt-mock",
        "/v1/responses",
    ),
    "translated": (
        {"x-portkey-provider": "anthropic", "x-portkey-custom-host": MOCK + "/v1"},
        "claude-mock-1",
        "/v1/messages",
    ),
    "builtin-mock": ({"x-portkey-provider": "mock"}, "gpt-mock", None),
}


def toml_table(values: dict[str, str]) -> str:
    """An inline TOML table of strings (JSON's string escapes are TOML's basic strings')."""
    return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in values.items()) + " }"


def config(headers: dict[str, str], model: str) -> str:
    """``$CODEX_HOME/config.toml``: fastgate as the model provider, speaking the Responses API."""
    return f"""model = {json.dumps(model)}
model_provider = "fastgate"
web_search = "disabled"

[model_providers.fastgate]
name = "fastgate"
base_url = "{GATEWAY}/v1"
env_key = "FASTGATE_API_KEY"
wire_api = "responses"
http_headers = {toml_table(headers)}
"""


def events(out: str) -> list[dict[str, Any]]:
    """``codex exec --json``'s JSON lines."""
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.mark.timeout(150)
@pytest.mark.parametrize("target", list(TARGETS))
def test_codex_through_fastgate(tmp_path: Path, target: str) -> None:
    headers, model, path = TARGETS[target]
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "config.toml").write_text(config(headers, model))
    run = run_through_gateway(
        tmp_path,
        [str(npm_cli("@openai/codex", "bin/codex.js")), "exec", "--skip-git-repo-check", "--json", "say hi"],
        {"CODEX_HOME": str(tmp_path / "home"), "FASTGATE_API_KEY": KEY},
    )
    said = events(run.out)
    kinds = [e["type"] for e in said]
    assert "turn.completed" in kinds and "turn.failed" not in kinds, said
    [answer] = [
        e["item"] for e in said if e["type"] == "item.completed" and e["item"]["type"] == "agent_message"
    ]
    assert answer["text"] == "Mock reply to: say hi"
    [done] = [e for e in said if e["type"] == "turn.completed"]
    assert done["usage"]["input_tokens"] > 0 and done["usage"]["output_tokens"] > 0
    if path is None:
        assert run.requests == []  # answered in the gateway's process
        return
    assert {r["path"] for r in run.requests} == {path}, [r["path"] for r in run.requests]
    last = run.requests[-1]
    body = json.loads(last["body"])
    if target == "native":
        # As Codex sent it: a stateless stream asking for its reasoning back encrypted, its key
        # as a bearer token, its own headers.
        assert last["headers"]["Authorization"] == f"Bearer {KEY}"
        assert last["headers"]["originator"] == "codex_exec"
        assert body["stream"] is True and body["store"] is False
        assert body["include"] == ["reasoning.encrypted_content"]
        assert body["input"][-1]["content"][0]["text"] == "say hi"
        assert {t["type"] for t in body["tools"]} <= {"function", "custom", "namespace"}
    else:
        # The chat pivot, then Anthropic's own mapping: Codex's instructions as the system
        # prompt, its function tools as Anthropic's, the key as x-api-key.
        assert last["headers"]["x-api-key"] == KEY
        assert body["stream"] is True and body["system"]
        names = [t["name"] for t in body["tools"]]
        assert "exec_command" in names and "close_agent" in names  # close_agent: in a namespace
        assert "say hi" in json.dumps(body["messages"][-1])
