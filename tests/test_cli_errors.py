"""Ordinary mistakes on the command line end in one clear line on stderr and status 2, never a
traceback: the CLI runs as a real process, as a user runs it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_cli import ROOT, free_port

#: The README's own slip (``[prices.gpt-4o] input = 2.5, output = 10``), in a server config.
README_SLIP = (
    'default = "main"\n[configs.main]\nprovider = "mock"\n[prices.gpt-4o] input = 2.5, output = 10\n'
)


def fastgate(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``fastgate ARGS`` run to its end, with ``stdin`` as its input (else none)."""
    return subprocess.run(
        [sys.executable, "-m", "fastgate", *args],
        input=stdin if stdin is not None else "",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=30,
    )


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The error line, after checking there is one and only one, and the status 2."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.returncode == 2, proc.stderr
    assert lines[0].startswith("fastgate"), lines[0]
    return lines[0]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port another program listens on (as a first ``fastgate serve`` would)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    "command",
    [("serve",), ("serve", "--workers", "2"), ("mock",)],
    ids=["serve", "serve-workers", "mock"],
)
def test_a_port_in_use(taken_port: int, command: tuple[str, ...]) -> None:
    line = one_line(fastgate(*command, "--port", str(taken_port)))
    assert f"127.0.0.1:{taken_port}" in line
    assert "in use" in line


@pytest.mark.parametrize(
    ("env", "args", "named"),
    [
        ({"FASTGATE_MAX_BODY_BYTES": "abc"}, (), "FASTGATE_MAX_BODY_BYTES='abc'"),
        ({"FASTGATE_BUSY_POLL_US": "-5"}, (), "FASTGATE_BUSY_POLL_US='-5'"),
        ({"FASTGATE_PORT": "99999"}, (), "FASTGATE_PORT='99999'"),
        ({"FASTGATE_SHUTDOWN_GRACE": "soon"}, (), "FASTGATE_SHUTDOWN_GRACE='soon'"),
        ({"FASTGATE_LOG_LEVEL": "loud"}, (), "FASTGATE_LOG_LEVEL='loud'"),
        ({}, ("--busy-poll-us", "-5"), "--busy-poll-us -5"),
        ({}, ("--workers", "0"), "--workers 0"),
        ({}, ("--port", "abc"), "--port"),
    ],
)
def test_a_bad_setting_names_where_it_came_from(
    env: dict[str, str], args: tuple[str, ...], named: str
) -> None:
    line = one_line(fastgate("serve", *args, env=env))
    assert named in line


def test_redis_out_of_reach_in_keys_add() -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    assert "cannot connect to Redis" in one_line(fastgate("keys", "add", "--redis-url", url))
    assert "cannot connect to Redis" in one_line(fastgate("keys", "list", env={"FASTGATE_REDIS_URL": url}))
    assert "redis://" in one_line(fastgate("keys", "add", "--redis-url", "http://127.0.0.1:1"))


def test_redis_out_of_reach_when_serving() -> None:
    url = f"redis://127.0.0.1:{free_port()}"
    line = one_line(fastgate("serve", "--port", str(free_port()), "--redis-url", url))
    assert "key records unavailable" in line


def test_a_toml_config_not_named_toml_is_read_as_toml(tmp_path: Path) -> None:
    conf = tmp_path / "fastgate.conf"
    conf.write_text('default = "main"\n[configs.main]\nprovider = "mock"\n')
    proc = fastgate("check-config", str(conf))
    assert (proc.returncode, proc.stdout.strip()) == (0, f"{conf}: ok")
    conf.write_text('default = "main"\n[configs.main\n')
    line = one_line(fastgate("check-config", str(conf)))
    assert "not valid TOML" in line
    assert "JSON" not in line.split("TOML", 2)[-1]  # no JSON parser's complaint


def test_the_readme_inline_toml_slip_shows_the_right_syntax(tmp_path: Path) -> None:
    config = tmp_path / "fastgate.toml"
    config.write_text(README_SLIP)
    for command in (("check-config", str(config)), ("serve", "--config", str(config), "--port", "0")):
        line = one_line(fastgate(*command))
        assert "line 4" in line
        assert "`[prices.gpt-4o]`, then `input = 2.5` and `output = 10` on lines of their own" in line
        assert "`prices.gpt-4o = { input = 2.5, output = 10 }`" in line
    # What it suggests parses.
    config.write_text(
        README_SLIP.replace("[prices.gpt-4o] input", "prices.gpt-4o = { input").replace("10\n", "10 }\n")
    )
    assert fastgate("check-config", str(config)).returncode == 0


def test_a_dotted_model_name_in_prices_says_to_quote_it(tmp_path: Path) -> None:
    config = tmp_path / "fastgate.toml"
    config.write_text("[prices.gpt-4.1]\ninput = 2\noutput = 8\n")
    assert '[prices."gpt-4.1"]' in one_line(fastgate("check-config", str(config)))
