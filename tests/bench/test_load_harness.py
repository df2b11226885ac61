"""bench/load.py kept honest: its pieces run against real loopback servers for a few seconds.

The servers are the harness's own subprocesses (``fastgate mock``, ``fastgate serve``, the bare
relay and, where installed, nginx), so a change that breaks the script breaks this test.
"""

from __future__ import annotations

import asyncio
import cProfile
import math
import os
import pstats
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import load
from bench.load import Processes, Settings, Target

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("load")


@pytest.fixture(scope="module")
def servers(workdir: Path) -> Iterator[tuple[Processes, dict[str, Target]]]:
    with Processes(workdir) as procs:
        yield procs, load.start_servers(procs, list(load.TARGETS), workdir)
    assert all(p.poll() is not None for p in procs.procs.values()), "a server outlived the harness"


def test_every_target_answers_a_chat_request(servers: tuple[Processes, dict[str, Target]]) -> None:
    _, targets = servers
    expected = ["direct", "fastgate", "relay"] + (["nginx"] if load.nginx_binary() else [])
    assert list(targets) == expected
    for target in targets.values():
        status, body = load._post(target.url, load.chat_body(stream=False), target.headers)
        assert status == 200, (target.name, body[:200])
        assert b'"chat.completion"' in body


@pytest.mark.parametrize("name", ["direct", "fastgate", "relay", "nginx"])
def test_streams_arrive_whole(servers: tuple[Processes, dict[str, Target]], name: str) -> None:
    _, targets = servers
    if name not in targets:
        pytest.skip("nginx is not installed (apt-get install nginx): the harness skips it too")
    status, body = load._post(targets[name].url, load.chat_body(stream=True), targets[name].headers)
    assert status == 200
    events = [line for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"data: [DONE]"
    assert sum(1 for e in events if b'"content":' in e) >= load.STREAM_CHUNKS


def test_servers_are_pinned_to_the_server_core(servers: tuple[Processes, dict[str, Target]]) -> None:
    if not load.taskset_prefix(load.SERVER_CORE):
        pytest.skip("taskset is missing or the machine has one core: the harness pins nothing")
    procs, targets = servers
    assert os.sched_getaffinity(procs.procs["mock"].pid) == {load.CLIENT_CORE}
    for name in ("fastgate", "relay"):
        assert os.sched_getaffinity(targets[name].pid) == {load.SERVER_CORE}


def test_open_loop_keeps_its_schedule(servers: tuple[Processes, dict[str, Target]]) -> None:
    _, targets = servers
    result = load._run_async(
        load.open_loop(targets["fastgate"], load.chat_body(False), rate=200, duration=0.5)
    )
    summary = result.summary()
    assert summary["requests"] == 100
    assert summary["failures"] == 0
    assert 0 < summary["p50_ms"] <= summary["p99_ms"] < 1000
    # Sends are due every 5 ms over 500 ms; a generator that fell behind for good (sending only
    # as answers come back) would lag by a large part of the run. The bound is loose because a
    # shared CI machine can stall any process for tens of milliseconds: this is not a benchmark.
    assert summary["send_lag_p99_ms"] < 250


def test_failed_requests_count_as_infinitely_slow(servers: tuple[Processes, dict[str, Target]]) -> None:
    _, targets = servers
    dropping = b'{"model":"m","messages":[{"role":"user","content":"[mock fail=drop] hi"}]}'
    result = load._run_async(load.open_loop(targets["direct"], dropping, rate=50, duration=0.2))
    assert result.failures == len(result.latencies) == 10
    assert math.isinf(result.percentile_ms(50))


@needs_wrk
def test_one_measurement_through_the_gateway(
    servers: tuple[Processes, dict[str, Target]], workdir: Path
) -> None:
    _, targets = servers
    files = {"plain": workdir / "plain.json", "stream": workdir / "stream.json"}
    files["plain"].write_bytes(load.chat_body(stream=False))
    files["stream"].write_bytes(load.chat_body(stream=True))
    settings = Settings(
        targets=["fastgate"], runs=1, duration=1, latency_duration=0.3, rate=100, pause_s=0.05
    )
    run = load.measure_once(targets["fastgate"], settings, files)
    assert run["wrk"]["non_2xx"] == 0 and run["wrk_stream"]["non_2xx"] == 0
    assert run["rps"] > 100 and run["streams_per_s"] > 20
    assert 0 < run["cpu_us_per_req"] < 100_000 and 0 < run["cpu_us_per_stream"] < 100_000
    assert 0 < run["server_busy"] < 1.5
    assert 0 < run["core_busy"] <= 1
    assert run["c1"]["failures"] == run["fixed"]["failures"] == 0
    summary = load.medians({"fastgate": [run]})
    table = load.render_table(summary, settings.rate, {"fastgate": 50.0})
    row = table.splitlines()[2]
    assert row.startswith("| fastgate | ") and f"{run['rps']:,.0f}" in row and "50.0" in row


def test_table_ratios_and_added_latency() -> None:
    def row(rps: float, streams: float, p50: float) -> dict[str, float]:
        return {
            "rps": rps,
            "streams_per_s": streams,
            "cpu_us_per_req": 1e6 / rps,
            "cpu_us_per_stream": 2e6 / streams,
            "server_busy": 0.5,
            "core_busy": 0.75,
            "c1_p50_ms": p50,
            "c1_p99_ms": 2 * p50,
            "fixed_p50_ms": p50,
            "fixed_p99_ms": math.inf,
        }

    summary = {
        "direct": row(8000, 3000, 0.3),
        "fastgate": row(3000, 1500, 0.8),
        "relay": row(4000, 2000, 0.6),
    }
    throughput, latency = load.render_table(summary, 400, {"fastgate": 44.0}).split("\n\n")
    cells = [c.strip() for c in throughput.splitlines()[3].split("|")][1:-1]
    assert cells == [
        "fastgate",
        "3,000",
        "333",
        "3,000",
        "50% / 75%",
        "1,500",
        "1,333",
        "0.75x",
        "",
        "0.75x",
        "",
        "44.0",
    ]
    assert "400/s p99 ms" in latency.splitlines()[0]
    cells = [c.strip() for c in latency.splitlines()[3].split("|")][1:-1]
    assert cells == ["fastgate", "0.800", "1.600", "0.800", "timeout", "0.500", "0.500"]
    direct = [c.strip() for c in latency.splitlines()[2].split("|")][1:-1]
    assert direct[-2:] == ["", ""]


def test_percentile_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert load.percentile(values, 50) == 50.0
    assert load.percentile(values, 99) == 99.0
    assert load.percentile(values, 100) == 100.0
    assert load.percentile([5.0], 99) == 5.0


def test_processes_are_stopped_when_the_harness_fails(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    procs = Processes(tmp_path)
    with pytest.raises(RuntimeError), procs:
        proc = procs.start("sleeper", sleeper, core=None)
        raise RuntimeError("a measurement failed")
    assert proc.poll() is not None


def test_wrk_output_is_parsed() -> None:
    output = (
        "Running 1s test @ http://127.0.0.1:1/v1/chat/completions\n"
        "  4321 requests in 1.00s, 2.1MB read\n"
        "  Socket errors: connect 0, read 2, write 0, timeout 1\n"
        "  Non-2xx or 3xx responses: 7\n"
        "Requests/sec:   4317.25\n"
    )
    assert load.parse_wrk(output) == (4321, 4317.25, 7, 3)
    with pytest.raises(RuntimeError):
        load.parse_wrk("wrk: connection refused")


def test_script_refuses_unknown_targets() -> None:
    out = subprocess.run(
        [sys.executable, str(load.BENCH / "load.py"), "--targets", "fastgate,haproxy"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert out.returncode == 2 and "haproxy" in out.stderr


def test_profile_keeps_the_per_request_path_only() -> None:
    def per_request() -> int:
        return sum(range(100))

    def start_up() -> None:
        for _ in range(10):
            per_request()

    profiler = cProfile.Profile()
    profiler.runcall(start_up)
    rows = load.request_path(pstats.Stats(profiler), requests=10)
    names = {row.name for row in rows}
    assert "per_request" in names and "start_up" not in names
    assert load.package_of(load.__file__) == "load"
    assert load.package_of(asyncio.__file__) == "stdlib __init__"
    assert load.package_of("/x/site-packages/aiohttp/client.py") == "aiohttp"
    assert load.package_of("/w/fastgate/server/http1.py") == "fastgate.server.http1"


def test_a_dead_server_is_named(tmp_path: Path) -> None:
    with Processes(tmp_path) as procs:
        procs.start("mock", [sys.executable, "-c", "import time; time.sleep(60)"], core=None)
        relay = procs.start("relay", [sys.executable, "-c", "pass"], core=None)
        target = Target("relay", "http://127.0.0.1:9/", {}, relay.pid, "relay")
        relay.wait(timeout=10)
        assert load.exited(procs, target) == "relay"
        assert math.isnan(load.rss_mb([relay.pid]))
        assert load.rss_mb([procs.procs["mock"].pid]) > 1
