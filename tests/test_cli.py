"""The command line: ``fastgate serve`` (one and several workers) and ``fastgate mock`` as real processes."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fastgate.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@contextmanager
def running(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastgate", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()


@pytest.mark.timeout(60)
def test_serve_and_mock_processes_answer_and_stop_on_sigterm() -> None:
    mock_port, gw_port = free_port(), free_port()
    with running("mock", "--port", str(mock_port)) as mock, running("serve", "--port", str(gw_port)) as gw:
        wait_ready(f"http://127.0.0.1:{mock_port}/v1/models")  # both start together: wait for the mock too
        wait_ready(f"http://127.0.0.1:{gw_port}/health")
        headers = {
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": f"http://127.0.0.1:{mock_port}/v1",
        }
        resp = httpx.post(f"http://127.0.0.1:{gw_port}/v1/chat/completions", json=CHAT, headers=headers)
        assert resp.status_code == 200
        assert resp.json()["choices"][0]["message"]["content"] == "Mock reply to: hi"
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(timeout=15) == 0
        mock.send_signal(signal.SIGTERM)
        mock.wait(timeout=15)


def _worker_of(resp: httpx.Response) -> str:
    # Trace ids are "<per-process random prefix>-<counter>": the prefix names the worker.
    return resp.headers["x-portkey-trace-id"].split("-")[0]


@pytest.mark.timeout(90)
def test_workers_share_the_port_and_a_dead_worker_is_replaced() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running("serve", "--port", str(port), "--workers", "2") as master:
        wait_ready(url + "/health")
        seen: set[str] = set()
        deadline = time.monotonic() + 20
        while len(seen) < 2 and time.monotonic() < deadline:
            # A new connection each time, so the kernel spreads them over the workers.
            with httpx.Client() as client:
                resp = client.post(
                    url + "/v1/chat/completions", json=CHAT, headers={"x-portkey-provider": "mock"}
                )
            assert resp.status_code == 200
            seen.add(_worker_of(resp))
        assert len(seen) == 2
        pids = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True)
        workers = [
            int(p) for p in pids.stdout.split() if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()
        ]
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        time.sleep(1.0)
        fresh: set[str] = set()
        deadline = time.monotonic() + 20
        while len(fresh - seen) < 1 and time.monotonic() < deadline:
            with httpx.Client() as client:
                resp = client.post(
                    url + "/v1/chat/completions", json=CHAT, headers={"x-portkey-provider": "mock"}
                )
            assert resp.status_code == 200
            fresh.add(_worker_of(resp))
        assert fresh - seen, "no replacement worker answered"


def _options(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.Action]]:
    """Every option of every (sub)command, with the command's name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _options(sub)
        elif action.option_strings and action.dest != "help" and not action.required and action.nargs != 0:
            yield parser.prog, action


def test_help_shows_every_default() -> None:
    missing = [
        f"{prog} {a.option_strings[0]}"
        for prog, a in _options(build_parser())
        if "default" not in (a.help or "")
    ]
    assert not missing
    top = subprocess.run(
        [sys.executable, "-m", "fastgate", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert "127.0.0.1:8787" in top.stdout and "127.0.0.1:8788" in top.stdout
    serve = subprocess.run(
        [sys.executable, "-m", "fastgate", "serve", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    for shown in ("default 127.0.0.1", "default 8787", "default 1,", "default 250", "default info"):
        assert shown in " ".join(serve.stdout.split()), shown
    mock = subprocess.run(
        [sys.executable, "-m", "fastgate", "mock", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert "default 8788" in " ".join(mock.stdout.split())
