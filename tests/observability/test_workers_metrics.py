"""``fastgate serve --workers 2``: one scrape of either worker shows both workers' requests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.test_cli import free_port, running, wait_ready

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
REQUESTS = 40


def _requests_total(metrics: str) -> float:
    pattern = re.compile(r'^fastgate_requests_total\{[^}]*route="/v1/chat/completions"[^}]*\} (\S+)$', re.M)
    return sum(float(v) for v in pattern.findall(metrics))


def _workers(master: subprocess.Popen[bytes]) -> list[int]:
    pids = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True)
    return [int(p) for p in pids.stdout.split() if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


@pytest.mark.timeout(90)
def test_one_scrape_sums_both_workers() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running("serve", "--port", str(port), "--workers", "2", "--access-log", "off") as master:
        wait_ready(url + "/health")
        workers_seen: set[str] = set()
        for _ in range(REQUESTS):
            # A new connection each time, so the kernel spreads them over the workers.
            with httpx.Client() as client:
                resp = client.post(
                    url + "/v1/chat/completions", json=CHAT, headers={"x-portkey-provider": "mock"}
                )
            assert resp.status_code == 200
            workers_seen.add(resp.headers["x-portkey-trace-id"].split("-")[0])
        assert len(workers_seen) == 2, "both workers answered some of the requests"
        with httpx.Client() as client:
            scrape = client.get(url + "/metrics")
        assert scrape.status_code == 200
        assert _requests_total(scrape.text) == REQUESTS
        # The per-run directory exists while the gateway runs, and holds the workers' files.
        workers = _workers(master)
        assert len(workers) == 2
        environ = Path(f"/proc/{workers[0]}/environ").read_bytes().split(b"\0")
        run_dir = next(e.split(b"=", 1)[1] for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
        assert any(Path(os.fsdecode(run_dir)).glob("counter_*.db"))
        master.send_signal(signal.SIGTERM)
        assert master.wait(timeout=30) == 0
    assert not Path(os.fsdecode(run_dir)).exists(), "the run's metric files are removed at exit"
