"""Time to the first streamed event: through the gateway vs. straight from the mock upstream.

Both servers run as real processes on loopback; one request at a time over a kept-alive
connection, timed from the request's last byte to the first ``data:`` byte of the answer.
Budget: the gateway adds under half a millisecond at the median (issue 6).
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.conftest import MEDIANS, require_measured

ROOT = Path(__file__).resolve().parents[1]
BODY = (
    b'{"model":"gpt-4o-mini","stream":true,'
    b'"messages":[{"role":"user","content":"Stream me a short answer."}]}'
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"port {port} did not open")


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[int, int]]:
    mock_port, gw_port = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "fastgate", "mock", "--port", str(mock_port)], env=env, cwd=ROOT
        ),
        subprocess.Popen(
            [sys.executable, "-m", "fastgate", "serve", "--port", str(gw_port)], env=env, cwd=ROOT
        ),
    ]
    try:
        _wait(mock_port)
        _wait(gw_port)
        yield mock_port, gw_port
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)


class Client:
    """One kept-alive HTTP/1.1 connection; reads each streamed answer to its end."""

    def __init__(self, port: int, headers: bytes) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + headers
            + b"Content-Length: %d\r\n\r\n" % len(BODY)
            + BODY
        )

    def first_event(self) -> float:
        self.sock.sendall(self.request)
        start = time.perf_counter()
        buf = b""
        first = 0.0
        while b"data: [DONE]" not in buf:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("connection closed")
            if not first and b"data:" in buf + data:
                first = time.perf_counter() - start
            buf += data
        # Chunked transfer encoding: the terminating zero-length chunk follows [DONE].
        while not buf.endswith(b"0\r\n\r\n"):
            buf += self.sock.recv(65536)
        return first


@pytest.mark.benchmark(group="ttfb")
def test_ttfb_interleaved(servers: tuple[int, int], benchmark) -> None:
    """Each round times one request straight to the mock and one through the gateway, so a
    burst from another tenant of this machine falls on both."""
    mock_port, gw_port = servers
    headers = b"x-portkey-provider: openai\r\nx-portkey-custom-host: http://127.0.0.1:%d/v1\r\n" % mock_port
    direct, gateway = Client(mock_port, b""), Client(gw_port, headers)
    try:
        for _ in range(20):
            direct.first_event()
            gateway.first_event()
        samples: list[tuple[float, float]] = []

        def run() -> None:
            samples.append((direct.first_event(), gateway.first_event()))

        benchmark.pedantic(run, rounds=300, iterations=1)
    finally:
        direct.sock.close()
        gateway.sock.close()
    MEDIANS["ttfb_direct"] = statistics.median(d for d, _ in samples)
    MEDIANS["ttfb_gateway"] = statistics.median(g for _, g in samples)
    MEDIANS["ttfb_added"] = statistics.median(g - d for d, g in samples)


def test_budget_gateway_adds_under_half_a_millisecond_to_first_event() -> None:
    require_measured("ttfb_direct", "ttfb_gateway", "ttfb_added")
    added = MEDIANS["ttfb_added"]
    print(
        f"\nfirst event: direct {MEDIANS['ttfb_direct'] * 1e3:.3f} ms, "
        f"gateway {MEDIANS['ttfb_gateway'] * 1e3:.3f} ms, added {added * 1e3:.3f} ms (median of pairs)"
    )
    assert added < 0.5e-3
