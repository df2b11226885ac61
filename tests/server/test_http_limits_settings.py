"""The HTTP layer's timeouts and limits as settings: flags, ``FASTGATE_*`` variables and the
server config file's ``[server]`` table (a flag wins over a variable, a variable over the file),
read by a real ``fastgate serve``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from fastgate.cli import main
from fastgate.server.http_server import default_max_connections
from fastgate.settings import settings_from_env
from tests.test_cli import ROOT, free_port, wait_ready

SLOW_HEAD = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "fastgate.toml"
    path.write_text(
        "[server]\nclient_timeout = 5\nkeepalive_timeout = 6\nmax_connections = 7\nmax_body_bytes = 1000\n"
    )
    return path


def test_flags_win_over_variables_and_variables_over_the_server_table(
    config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTGATE_KEEPALIVE_TIMEOUT", "16")
    monkeypatch.setenv("FASTGATE_MAX_CONNECTIONS", "17")
    monkeypatch.setenv("FASTGATE_CONFIG", str(config))
    s = settings_from_env(max_connections=27)
    assert (s.client_timeout, s.keepalive_timeout, s.max_connections, s.max_body_bytes) == (5, 16, 27, 1000)


def test_without_a_file_or_variables_the_defaults_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONFIG", "CLIENT_TIMEOUT", "KEEPALIVE_TIMEOUT", "MAX_CONNECTIONS", "MAX_BODY_BYTES"):
        monkeypatch.delenv(f"FASTGATE_{name}", raising=False)
    s = settings_from_env()
    assert (s.client_timeout, s.keepalive_timeout, s.max_connections) == (60.0, 75.0, 0)
    limit = default_max_connections()
    assert 0 < limit < os.sysconf("SC_OPEN_MAX")  # half the descriptors, the rest for upstreams


def test_check_config_names_a_server_setting_it_does_not_know(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "fastgate.toml"
    path.write_text("[server]\nclient_timeout = 5\nport = 80\n")
    assert main(["check-config", str(path)]) == 2
    assert "server.port: not a server setting" in capsys.readouterr().err


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastgate", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(10.0)
    return s


def read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def assert_limits_hold(port: int, connections: int) -> None:
    """At the limit of ``connections`` a newcomer closes the oldest that has sent nothing; a slow
    head is cut by a 408 at the client timeout; an idle connection at the keep-alive timeout."""
    slow = connect(port)
    slow.sendall(SLOW_HEAD)
    idle = [connect(port) for _ in range(connections - 1)]
    newcomer = connect(port)
    try:
        idle[0].settimeout(2.0)  # at once: the keep-alive timeout is 4 s
        assert read_all(idle[0]) == b""
        answer = read_all(slow)  # at the client timeout, not the default minute
        assert answer.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in answer
        assert read_all(newcomer) == b""  # at the keep-alive timeout, not the default 75 s
    finally:
        for s in (slow, newcomer, *idle):
            s.close()


@pytest.mark.timeout(60)
def test_serve_takes_the_limits_as_flags() -> None:
    with serving("--client-timeout", "1", "--keepalive-timeout", "4", "--max-connections", "3") as port:
        assert_limits_hold(port, 3)


@pytest.mark.timeout(60)
def test_serve_takes_the_limits_from_the_server_table_and_variables(tmp_path: Path) -> None:
    path = tmp_path / "fastgate.toml"
    path.write_text("[server]\nclient_timeout = 1\nkeepalive_timeout = 4\nmax_connections = 9\n")
    with serving("--config", str(path), env={"FASTGATE_MAX_CONNECTIONS": "4"}) as port:
        assert_limits_hold(port, 4)
