"""A worker's capacity for long-lived streams out of the box: ``serve`` raises its soft
open-file limit to the hard one (each stream holds a client and an upstream descriptor), and
requests in flight, a stream for its whole length, are bounded by ``--max-in-flight``; its
descriptor table is grown before any thread starts, so no ``accept4`` or ``socket`` call stalls the
worker growing it; what start-up built is kept out of the collector's full passes, which thousands
of streams make often."""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import msgspec
import pytest

from fastgate.gateway.app import make_app, serve
from fastgate.server.http_server import DESCRIPTOR_TABLE_MOST
from fastgate.settings import Settings
from tests.conftest import Upstream, openai_headers
from tests.test_cli import ROOT, free_port, wait_ready

#: Connections held at once: more than the 512 a soft limit of 1024 allowed a worker.
HELD = 700


def table_size_of(pid: int) -> int:
    """The slots of the process's descriptor table (``FDSize``), which only ever grows."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("FDSize:"):
            return int(line.split()[1])
    raise AssertionError("no FDSize")


def soft_limit_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-file limit")


@contextmanager
def serving(*args: str, soft_limit: int | None = None) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``fastgate serve`` on a free port; ``soft_limit``: started with that soft open-file limit,
    as a shell or a service manager with the usual 1024 would start it."""
    port = free_port()
    argv = [sys.executable, "-m", "fastgate", "serve", "--port", str(port), *args]
    if soft_limit is not None:
        argv = ["sh", "-c", f'ulimit -S -n {soft_limit} && exec "$@"', "sh", *argv]
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/health")
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.mark.timeout(60)
def test_serve_raises_its_soft_open_file_limit_and_holds_more_than_512_clients() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2 * HELD + 100:
        pytest.skip(f"the hard open-file limit ({hard}) is too low for this test")
    if soft < HELD + 100:  # this process holds the clients' ends
        resource.setrlimit(resource.RLIMIT_NOFILE, (HELD + 100, hard))
    try:
        with serving(soft_limit=1024) as (port, proc):
            assert soft_limit_of(proc.pid) == (hard if hard != resource.RLIM_INFINITY else 1 << 20)
            clients = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(HELD)]
            try:
                # Every one is still open (at half of 1024 the 513th would have closed the oldest
                # of them) and is answered, the first one last.
                for client in reversed(clients):
                    client.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert client.recv(4096).startswith(b"HTTP/1.1 200 ")
            finally:
                for client in clients:
                    client.close()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(60)
def test_a_served_worker_grows_its_descriptor_table_once_at_start_up() -> None:
    with serving() as (_, proc):
        soft = soft_limit_of(proc.pid)
        assert table_size_of(proc.pid) >= min(soft, DESCRIPTOR_TABLE_MOST)
        # The descriptor that grew it is closed again: the worker holds only its own few.
        assert max(int(fd) for fd in os.listdir(f"/proc/{proc.pid}/fd")) < 100


_PRESIZE = """
import json, os
from fastgate.server.http_server import presize_descriptor_table
os.dup2(0, 4000)  # a descriptor the process holds near the top: never closed by the growing
size = presize_descriptor_table()
table = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("FDSize:")]
print(json.dumps([size, table[0], sorted(int(fd) for fd in os.listdir("/proc/self/fd"))[-1]]))
"""


def test_growing_the_table_leaves_nothing_open_and_closes_nothing() -> None:
    out = subprocess.run(
        ["sh", "-c", 'ulimit -S -n 4096 && exec "$@"', "sh", sys.executable, "-c", _PRESIZE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    # Grown to the limit; the top slot that grew it free again; the process's own 4000 still open.
    assert msgspec.json.decode(out.stdout) == [4096, 4096, 4000]


@pytest.mark.timeout(60)
async def test_max_in_flight_is_a_flag(upstream: Upstream) -> None:
    with serving("--max-in-flight", "1") as (port, _):
        slow = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "mock": {"delay_ms": 400}}
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        async with aiohttp.ClientSession() as session:

            async def post() -> int:
                async with session.post(url, json=slow, headers=openai_headers(upstream)) as resp:
                    await resp.read()
                    return resp.status

            first = asyncio.ensure_future(post())
            while upstream.state.active == 0:
                await asyncio.sleep(0.01)
            assert await post() == 503
            assert await first == 200


@pytest.mark.timeout(60)
async def test_a_worker_keeps_its_start_up_heap_out_of_full_collections() -> None:
    app = make_app(Settings(port=0))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    gc.unfreeze()
    worker = asyncio.ensure_future(serve(app, sock))
    try:
        for _ in range(500):
            if gc.get_freeze_count() or worker.done():
                break
            await asyncio.sleep(0.01)
        # Start-up's objects, the app among them, are in the permanent generation: no collection
        # walks them.
        assert gc.get_freeze_count() > 10_000
        assert not any(obj is app for obj in gc.get_objects())
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # serve's own handler: it stops and drains
        await asyncio.wait_for(worker, 30)
        gc.unfreeze()
