"""Time to the first streamed event: through the gateway vs. straight from the mock upstream.

Both servers run as real processes on loopback; one request at a time over a kept-alive
connection, timed from the request's send to the first ``data:`` byte of the answer (for
speech, its first audio byte). Budgets: the gateway adds under half a millisecond at the median
to a chat stream's first event (issue 6), under one to speech's first audio byte (issue 24).
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

from bench.conftest import MEDIANS, free_port, require_measured, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
BODY = (
    b'{"model":"gpt-4o-mini","stream":true,'
    b'"messages":[{"role":"user","content":"Stream me a short answer."}]}'
)
#: Speech as WAV in 8 pieces 2 ms apart: the first audio byte comes well before the last.
SPEECH = (
    b'{"model":"tts-1","voice":"alloy","input":"Say this as it is written.","response_format":"wav",'
    b'"mock":{"chunks":8,"chunk_delay_ms":2}}'
)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[int, int]]:
    mock_port, gw_port = free_port(), free_port()
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
        wait_for_port(mock_port)
        wait_for_port(gw_port)
        yield mock_port, gw_port
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=15)


class Client:
    """One kept-alive HTTP/1.1 connection; reads each streamed (chunked) answer to its end."""

    def __init__(
        self, port: int, headers: bytes, path: bytes = b"/v1/chat/completions", body: bytes = BODY
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = (
            b"POST %b HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" % path
            + headers
            + b"Content-Length: %d\r\n\r\n" % len(body)
            + body
        )

    def first_event(self, marker: bytes = b"data:") -> float:
        """Seconds from sending the request to the first ``marker`` of the answer, which is read
        to its end. (Timed from before the send: a client descheduled as its send returns would
        otherwise find a fast answer already there and time next to nothing.)"""
        start = time.perf_counter()
        self.sock.sendall(self.request)
        buf = b""
        first = 0.0
        # Chunked transfer encoding: the terminating zero-length chunk ends the answer.
        while not (first and buf.endswith(b"\r\n0\r\n\r\n")):
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("connection closed")
            if not first and marker in buf + data:
                first = time.perf_counter() - start
            buf += data
        return first


def _pairs(
    direct: Client, gateway: Client, marker: bytes, warm: int, rounds: int, benchmark
) -> list[tuple[float, float]]:
    """(direct, gateway) times to ``marker``, the two sides one after the other in each round."""
    try:
        for _ in range(warm):
            direct.first_event(marker)
            gateway.first_event(marker)
        samples: list[tuple[float, float]] = []

        def run() -> None:
            samples.append((direct.first_event(marker), gateway.first_event(marker)))

        benchmark.pedantic(run, rounds=rounds, iterations=1)
        return samples
    finally:
        direct.sock.close()
        gateway.sock.close()


@pytest.mark.benchmark(group="ttfb")
def test_ttfb_interleaved(servers: tuple[int, int], benchmark) -> None:
    """Each round times one request straight to the mock and one through the gateway, so a
    burst from another tenant of this machine falls on both."""
    mock_port, gw_port = servers
    headers = b"x-portkey-provider: openai\r\nx-portkey-custom-host: http://127.0.0.1:%d/v1\r\n" % mock_port
    _record("ttfb", _pairs(Client(mock_port, b""), Client(gw_port, headers), b"data:", 20, 300, benchmark))


def test_budget_gateway_adds_under_half_a_millisecond_to_first_event() -> None:
    assert _added("ttfb", "first event") < 0.5e-3


@pytest.mark.benchmark(group="ttfb")
def test_speech_first_byte_interleaved(servers: tuple[int, int], benchmark) -> None:
    """Speech's first audio byte (the WAV's ``RIFF``), straight from the mock and through the
    gateway, timed in alternation."""
    mock_port, gw_port = servers
    headers = b"x-portkey-provider: openai\r\nx-portkey-custom-host: http://127.0.0.1:%d/v1\r\n" % mock_port
    path = b"/v1/audio/speech"
    direct, gateway = Client(mock_port, b"", path, SPEECH), Client(gw_port, headers, path, SPEECH)
    _record("speech", _pairs(direct, gateway, b"RIFF", 10, 150, benchmark))


def test_budget_speech_first_audio_byte_within_a_millisecond() -> None:
    assert _added("speech", "speech first byte") < 1e-3


def _record(name: str, samples: list[tuple[float, float]]) -> None:
    MEDIANS[f"{name}_direct"] = statistics.median(d for d, _ in samples)
    MEDIANS[f"{name}_gateway"] = statistics.median(g for _, g in samples)
    MEDIANS[f"{name}_added"] = statistics.median(g - d for d, g in samples)


def _added(name: str, label: str) -> float:
    """The median of what the gateway added to each pair (the budget tests skip without it)."""
    require_measured(f"{name}_direct", f"{name}_gateway", f"{name}_added")
    added = MEDIANS[f"{name}_added"]
    print(
        f"\n{label}: direct {MEDIANS[f'{name}_direct'] * 1e3:.3f} ms, "
        f"gateway {MEDIANS[f'{name}_gateway'] * 1e3:.3f} ms, added {added * 1e3:.3f} ms (median of pairs)"
    )
    return added
