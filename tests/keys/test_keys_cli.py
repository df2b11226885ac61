"""``fastgate keys`` and ``fastgate virtual-keys`` as real processes, and a server beside records
it cannot all open: sealed virtual keys never get in the way of what does not need them."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_cli import ROOT, free_port, running, wait_ready
from tests.test_cli_errors import fastgate, one_line

CHAT = {"model": "mock-small", "messages": [{"role": "user", "content": "hi"}]}


def virtual_keys_add(
    *args: str, secret: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``fastgate virtual-keys add ARGS`` with ``secret`` on stdin (a pipe, as a script gives it)."""
    return fastgate("virtual-keys", "add", *args, stdin=secret + "\n", env=env)


def add_virtual_key(*args: str, secret: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    proc = virtual_keys_add(*args, secret=secret, env=env)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


@pytest.fixture
def secret_key() -> str:
    return fastgate("keys", "new-secret-key").stdout.strip()


def test_listing_never_needs_the_secret_key(secret_key: str) -> None:
    sealed = add_virtual_key(
        "--provider", "openai", secret="sk-sealed-1", env={"FASTGATE_SECRET_KEY": secret_key}
    )
    assert fastgate("keys", "add", "--name", "team-a").returncode == 0
    keys = fastgate("keys", "list")
    assert keys.returncode == 0, keys.stderr
    assert json.loads(keys.stdout)["name"] == "team-a"
    listed = fastgate("virtual-keys", "list")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) | {"created": 0} == sealed | {"created": 0, "sealed": True}
    assert "sk-sealed-1" not in keys.stdout + listed.stdout
    # Nor does a malformed one get in the way of commands that do not seal.
    assert fastgate("keys", "list", env={"FASTGATE_SECRET_KEY": "not-a-key"}).returncode == 0
    assert fastgate("virtual-keys", "revoke", sealed["slug"]).returncode == 0


@pytest.mark.timeout(60)
def test_a_server_without_the_secret_key_serves_every_other_key_and_says_once_which_it_cannot_open(
    secret_key: str,
) -> None:
    port, mock_port = free_port(), free_port()
    upstream = f"http://127.0.0.1:{mock_port}/v1"
    env = {"FASTGATE_SECRET_KEY": secret_key}
    sealed = add_virtual_key("--provider", "openai", "--custom-host", upstream, secret="sk-a", env=env)
    plain = add_virtual_key("--provider", "openai", "--custom-host", upstream, secret="sk-b")
    url = f"http://127.0.0.1:{port}"
    with running("mock", "--port", str(mock_port)), running("serve", "--port", str(port)) as proc:
        wait_ready(upstream + "/models")
        wait_ready(url + "/health")
        ok = httpx.post(
            url + "/v1/chat/completions", json=CHAT, headers={"x-portkey-virtual-key": plain["slug"]}
        )
        assert ok.status_code == 200
        refused = httpx.post(
            url + "/v1/chat/completions", json=CHAT, headers={"x-portkey-virtual-key": sealed["slug"]}
        )
        assert refused.status_code == 500
        assert refused.json()["error"]["code"] == "virtual_key_sealed"
        # A key added while it runs is picked up (the records are refreshed, not given up on).
        later = add_virtual_key("--provider", "openai", "--custom-host", upstream, secret="sk-c")
        deadline = time.monotonic() + 10
        headers = {"x-portkey-virtual-key": later["slug"]}
        while httpx.post(url + "/v1/chat/completions", json=CHAT, headers=headers).status_code != 200:
            assert time.monotonic() < deadline, "the new virtual key was not picked up"
            time.sleep(0.2)
        time.sleep(2.5)  # refreshes happen every second: room for any repeated complaint
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        assert proc.stderr is not None
        log = proc.stderr.read().decode()
    complaints = [line for line in log.splitlines() if sealed["slug"] in line]
    assert len(complaints) == 1, log
    assert "FASTGATE_SECRET_KEY" in complaints[0]
    assert "not refreshed" not in log
    assert "sk-a" not in log


def test_virtual_keys_add_asks_for_the_secret_without_echo_on_a_terminal(tmp_path: Path) -> None:
    primary, secondary = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastgate", "virtual-keys", "add", "--provider", "openai"],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        cwd=ROOT,
        start_new_session=True,  # no controlling terminal: the prompt cannot reach the user's own
    )
    os.close(secondary)
    screen = b""

    def read_until(marker: bytes, timeout: float) -> None:
        nonlocal screen
        deadline = time.monotonic() + timeout
        while marker not in screen and time.monotonic() < deadline:
            if select.select([primary], [], [], 0.1)[0]:
                try:
                    screen += os.read(primary, 4096)
                except OSError:  # the other side closed
                    return

    try:
        read_until(b"(not shown): ", 15)
        assert b"openai secret (not shown): " in screen, screen
        os.write(primary, b"sk-typed-at-the-prompt\n")
        out, _ = proc.communicate(timeout=15)
        read_until(b"\n", 1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    assert proc.returncode == 0
    assert json.loads(out)["provider"] == "openai"
    assert b"sk-typed-at-the-prompt" not in screen  # not echoed
    assert b"stored unencrypted" in screen  # and told where it went


def test_virtual_keys_add_refuses_an_empty_secret() -> None:
    for args, secret in (((), ""), (("--secret-env", "EMPTY"), "")):
        proc = virtual_keys_add("--provider", "openai", *args, secret=secret, env={"EMPTY": ""})
        assert "empty" in one_line(proc)
    assert not fastgate("virtual-keys", "list").stdout
    # --no-secret says so on purpose: the options carry the credentials.
    assert add_virtual_key("--provider", "bedrock", "--no-secret", "--option", "aws_api_key=k", secret="")


def test_virtual_keys_add_refuses_an_option_the_provider_does_not_read() -> None:
    line = one_line(virtual_keys_add("--provider", "openai", "--option", "organization=org-1", secret="sk-x"))
    assert "organization" in line
    assert "openai_beta, openai_organization, openai_project" in line
    assert not fastgate("virtual-keys", "list").stdout
    vk = add_virtual_key("--provider", "openai", "--option", "openai-organization=org-1", secret="sk-x")
    assert vk["options"] == ["openai_organization"]
    takes_none = virtual_keys_add("--provider", "groq", "--option", "x=1", secret="gsk-x")
    assert "takes none" in one_line(takes_none)


def test_virtual_keys_add_warns_when_the_secret_is_stored_unsealed(secret_key: str) -> None:
    def added(env: dict[str, str]) -> str:
        proc = virtual_keys_add("--provider", "openai", secret="sk-x", env=env)
        assert proc.returncode == 0, proc.stderr
        return proc.stderr

    assert "stored unencrypted" in added({})
    assert "FASTGATE_SECRET_KEY" in added({})
    assert added({"FASTGATE_SECRET_KEY": secret_key}) == ""
