"""bench/load.py kept honest: its pieces run against real loopback servers for a few seconds.

The servers are the harness's own subprocesses (``fastgate mock``, ``fastgate serve``, the bare
relay and, where installed, nginx), so a change that breaks the script breaks this test.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import math
import os
import pstats
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import latency, load, peers
from bench.load import Processes, Settings, Target
from tests.support.sse import data_payloads

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
needs_nginx = pytest.mark.skipif(
    load.nginx_binary() is None, reason="nginx is not installed (apt-get install nginx)"
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
    expected = [t for t in load.TARGETS if t != "nginx" or load.nginx_binary()]
    assert list(targets) == expected
    for target in targets.values():
        status, body = load._post(target.url, load.chat_body(stream=False), target.headers)
        assert status == 200, (target.name, body[:200])
        assert b'"chat.completion"' in body
    # The mapped provider really went through Anthropic's Messages API (the mock's message id).
    _, body = load._post(
        targets["fastgate-anthropic"].url, load.chat_body(False), targets["fastgate"].headers
    )
    assert b'"id":"chatcmpl-mock' in body
    _, body = load._post(
        targets["fastgate-anthropic"].url, load.chat_body(False), targets["fastgate-anthropic"].headers
    )
    assert b'"id":"msg_mock' in body


@pytest.mark.parametrize("name", load.TARGETS)
def test_streams_arrive_whole(servers: tuple[Processes, dict[str, Target]], name: str) -> None:
    _, targets = servers
    if name not in targets:
        pytest.skip("nginx is not installed (apt-get install nginx): the harness skips it too")
    url, headers = targets[name].endpoint(stream=True)
    status, body = load._post(url, load.chat_body(stream=True), headers)
    assert status == 200
    events = [line for line in body.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"data: [DONE]"
    assert sum(1 for e in events if b'"content":' in e) >= load.STREAM_CHUNKS


def test_servers_are_pinned_to_the_server_core(servers: tuple[Processes, dict[str, Target]]) -> None:
    if not load.taskset_prefix(load.SERVER_CORE):
        pytest.skip("taskset is missing or the machine has one core: the harness pins nothing")
    procs, targets = servers
    assert os.sched_getaffinity(procs.procs["mock"].pid) == {load.CLIENT_CORE}
    for name in ("fastgate", "relay", "protocol-relay"):
        assert os.sched_getaffinity(targets[name].pid) == {load.SERVER_CORE}
    # Two workers on both cores: the supervisor and its workers (which inherit its affinity).
    workers = load.process_tree(targets["fastgate-2w"].pid)
    assert len(workers) >= 2
    assert all(os.sched_getaffinity(pid) == set(load.BOTH_CORES) for pid in workers)


def test_open_loop_keeps_its_schedule(servers: tuple[Processes, dict[str, Target]]) -> None:
    _, targets = servers
    target = targets["fastgate"]
    result = latency.open_loop(target.url, target.headers, load.chat_body(False), rate=200, duration=0.5)
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
    target = targets["direct"]
    result = latency.open_loop(target.url, target.headers, dropping, rate=50, duration=0.2)
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
    assert run["c1"]["failures"] == run["c1_raw"]["failures"] == run["fixed"]["failures"] == 0
    assert run["c1_raw"]["requests"] > 10 and 0 < run["c1_raw"]["p50_ms"] < run["c1_raw"]["max_ms"] + 1e-9
    summary = load.medians({"fastgate": [run]})
    table = load.render_table(summary, settings.rate, {"fastgate": 50.0})
    row = table.splitlines()[2]
    assert row.startswith("| fastgate | ") and f"{run['rps']:,.0f}" in row and "50.0" in row


@needs_wrk
def test_memory_run_reads_rss_after_each_slice_of_load(tmp_path: Path) -> None:
    samples = load.memory_run(5, tmp_path, "mock", slice_s=1)
    assert [s.seconds for s in samples] == [1, 2, 3, 4, 5]
    loads = [(s.target, s.stream) for s in samples]
    assert loads == [*load.MEMORY_LOADS, load.MEMORY_LOADS[0]]
    assert all(s.valid and s.rps > 10 for s in samples), samples
    assert all(20 < s.rss_mb < 500 for s in samples), samples


def test_memory_report_measures_growth_after_the_warm_up() -> None:
    def sample(seconds: int, rss: float, valid: bool = True) -> load.MemorySample:
        target, stream = load.MEMORY_LOADS[(seconds - 1) % len(load.MEMORY_LOADS)]
        return load.MemorySample(seconds * 5, target, stream, 1000.0, valid, rss)

    rss = [30.0, 38.0, 39.0, 40.0, 40.5, 41.0, 42.0]  # warm after the fourth slice: 40 MB
    report = load.render_memory([sample(i + 1, mb, valid=i != 5) for i, mb in enumerate(rss)])
    assert "| 10 | fastgate stream | 1,000 | 38.0 |" in report
    assert "RSS after 35 s of load: 42.0 MB" in report
    assert "after the warm-up (20 s) 40.0 MB, then +5.0% to the end; peak 42.0 MB" in report
    assert "| 30 | fastgate stream | ! 1,000 | 41.0 |" in report
    assert "slices with errors or non-2xx answers (ending at s): [30]" in report


def test_measurements_wait_for_busy_servers_to_go_idle() -> None:
    spin = "import time\nend = time.monotonic() + {s}\nwhile time.monotonic() < end: pass\ntime.sleep(30)"
    busy_for_a_while = subprocess.Popen([sys.executable, "-c", spin.format(s=1.5)])
    busy_for_good = subprocess.Popen([sys.executable, "-c", spin.format(s=30)])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.2)
        waited = load.wait_quiet([busy_for_a_while.pid, idle.pid], limit_s=10)
        assert waited is not None and 1.0 <= waited < 4.0
        quick = load.wait_quiet([idle.pid], limit_s=10)
        assert quick is not None and quick < 1.5
        assert load.wait_quiet([busy_for_good.pid, idle.pid], limit_s=1.5) is None
    finally:
        for proc in (busy_for_a_while, busy_for_good, idle):
            proc.kill()
            proc.wait()


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
            "c1_raw_p50_ms": p50 / 2,
            "c1_raw_p99_ms": p50,
            "fixed_p50_ms": p50,
            "fixed_p99_ms": math.inf,
        }

    summary = {
        "direct": row(8000, 3000, 0.3),
        "fastgate": row(3000, 1500, 0.8),
        "relay": row(4000, 2000, 0.6),
    }
    throughput, latencies = load.render_table(summary, 400, {"fastgate": 44.0}).split("\n\n")
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
    assert "400/s p99 ms" in latencies.splitlines()[0]
    cells = [c.strip() for c in latencies.splitlines()[3].split("|")][1:-1]
    assert cells == [
        "fastgate",
        "0.800",
        "1.600",
        "0.400",
        "0.800",
        "0.800",
        "timeout",
        "0.500",
        "0.250",
        "0.500",
    ]
    direct = [c.strip() for c in latencies.splitlines()[2].split("|")][1:-1]
    assert direct[-2:] == ["", ""]


def test_percentile_is_nearest_rank() -> None:
    values = [float(i) for i in range(1, 101)]
    assert latency.percentile(values, 50) == 50.0
    assert latency.percentile(values, 99) == 99.0
    assert latency.percentile(values, 100) == 100.0
    assert latency.percentile([5.0], 99) == 5.0


def test_answers_are_framed_by_length_or_by_the_last_chunk() -> None:
    sized = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert latency.parse_answer(sized) == (200, len(sized), False)
    assert latency.parse_answer(sized[:-1]) is None
    assert latency.parse_answer(sized + b"HTTP/1.1") == (200, len(sized), False)  # the next one is left
    chunked = b"HTTP/1.1 502 Bad Gateway\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    assert latency.parse_answer(chunked) == (502, len(chunked), False)
    assert latency.parse_answer(chunked[:-2]) is None
    empty = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: Close\r\n\r\n0\r\n\r\n"
    assert latency.parse_answer(empty) == (200, len(empty), True)
    assert latency.parse_answer(b"HTTP/1.1 200 OK\r\nContent-Le") is None


def test_open_loop_opens_connections_for_overlapping_requests_and_survives_closes() -> None:
    """A server that answers each request on its own connection after 30 ms, then closes it:
    at 100/s three requests overlap, and every closed connection is replaced."""
    served: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
        await reader.readexactly(length)
        served.append(length)
        await asyncio.sleep(0.03)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def run() -> latency.LatencyResult:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            url = f"http://127.0.0.1:{port}/v1/x"
            return await asyncio.to_thread(latency.open_loop, url, {}, b"{}", 100, 0.3)

    result = asyncio.run(run())
    assert result.failures == 0 and len(result.latencies) == 30
    assert all(0.03 <= x < 1 for x in result.latencies)
    # The warm-up's first request, after which its connection closed and the warm-up gave up.
    assert len(served) == 1 + 30


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
    assert load.package_of("/w/fastgate/upstream/pool.py") == "fastgate.upstream.pool"


def test_a_dead_server_is_named(tmp_path: Path) -> None:
    with Processes(tmp_path) as procs:
        procs.start("mock", [sys.executable, "-c", "import time; time.sleep(60)"], core=None)
        relay = procs.start("relay", [sys.executable, "-c", "pass"], core=None)
        target = Target("relay", "http://127.0.0.1:9/", {}, relay.pid, "relay")
        relay.wait(timeout=10)
        assert load.exited(procs, target) == "relay"
        assert math.isnan(load.rss_mb([relay.pid]))
        assert load.rss_mb([procs.procs["mock"].pid]) > 1


# ---------------------------------------------------------------- the static upstream


@pytest.fixture(scope="module")
def static_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Path, dict[str, Target]]]:
    if load.nginx_binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx): --upstream static needs it")
    workdir = tmp_path_factory.mktemp("static")
    names = ["direct", "fastgate", "fastgate-anthropic", "relay", "protocol-relay", "nginx"]
    with Processes(workdir) as procs:
        yield workdir, load.start_servers(procs, names, workdir, upstream_kind="static")
        assert procs.procs["mock"].poll() is not None, "the mock outlived the capture of its answers"
    assert all(p.poll() is not None for p in procs.procs.values()), "a server outlived the harness"


def test_static_upstream_replays_the_mock_byte_for_byte(
    static_servers: tuple[Path, dict[str, Target]],
) -> None:
    workdir, targets = static_servers
    direct = targets["direct"]
    assert direct.process == "static" and direct.core == load.CLIENT_CORE
    site = workdir / "static" / "site"
    expected_types = {False: "application/json", True: "text/event-stream"}
    for path in (load.CHAT, "/v1/messages"):
        for stream in (False, True):
            static_path = load.static_prefix(stream) + path
            req = urllib.request.Request(direct.url.split("/plain")[0] + static_path, data=b"{}")
            with urllib.request.urlopen(req, timeout=5) as resp:
                assert resp.headers["Content-Type"] == expected_types[stream]
                assert resp.read() == (site / static_path.lstrip("/")).read_bytes()
    # What was captured is the mock's answer to the benchmark body, in each format.
    chat = json.loads((site / "plain/v1/chat/completions").read_bytes())
    assert chat["object"] == "chat.completion" and chat["model"] == "mock-small"
    assert chat["choices"][0]["message"]["content"].startswith("Mock reply to: Summarise")
    events = data_payloads((site / "stream/v1/chat/completions").read_bytes())
    assert events[-1] == b"[DONE]" and sum(b'"content":' in e for e in events) > load.STREAM_CHUNKS
    message = json.loads((site / "plain/v1/messages").read_bytes())
    assert (
        message["type"] == "message"
        and message["content"][0]["text"] == chat["choices"][0]["message"]["content"]
    )
    frames = (site / "stream/v1/messages").read_bytes()
    assert frames.startswith(b"event: message_start\n") and frames.endswith(
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    # Anything else is a 404, not a replayed answer.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(direct.url.split("/plain")[0] + "/v1/chat/completions", data=b"{}", timeout=5)
    assert refused.value.code == 404
    refused.value.close()


@pytest.mark.parametrize("name", ["fastgate", "fastgate-anthropic", "relay", "protocol-relay", "nginx"])
def test_every_target_is_served_from_the_static_upstream(
    static_servers: tuple[Path, dict[str, Target]], name: str
) -> None:
    _, targets = static_servers
    target = targets[name]
    assert target.upstream == "static"
    status, body = load._post(target.url, load.chat_body(stream=False), target.headers)
    assert status == 200, body[:300]
    answer = json.loads(body)
    assert answer["choices"][0]["message"]["content"].startswith("Mock reply to: Summarise")
    assert answer["id"].startswith("msg_mock" if name == "fastgate-anthropic" else "chatcmpl-mock")
    url, headers = target.endpoint(stream=True)
    status, body = load._post(url, load.chat_body(stream=True), headers)
    assert status == 200
    events = data_payloads(body)
    assert events[-1] == b"[DONE]"
    text = "".join(
        json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1] if b'"choices"' in e
    )
    assert text == answer["choices"][0]["message"]["content"]


def test_static_nginx_conf_serves_each_answer_with_its_type(tmp_path: Path) -> None:
    answers = [
        load.Canned(load.CHAT, False, "application/json", b"{}"),
        load.Canned(load.CHAT, True, "text/event-stream", b"data: [DONE]\n\n"),
        load.Canned("/v1/messages", False, "application/json", b"{}"),
    ]
    conf = load.static_nginx_conf(tmp_path, 18080, tmp_path / "site", answers)
    assert "listen 127.0.0.1:18080;" in conf and f"root {tmp_path / 'site'};" in conf
    locations = re.findall(r"location = (\S+) \{\s+default_type (\S+);", conf)
    assert locations == [
        ("/plain/v1/chat/completions", "application/json"),
        ("/stream/v1/chat/completions", "text/event-stream"),
        ("/plain/v1/messages", "application/json"),
    ]
    assert conf.count("error_page 405 =200 $uri;") == 3
    binary = load.nginx_binary()
    if binary is not None:  # nginx itself accepts the file
        (tmp_path / "nginx.conf").write_text(conf)
        argv = [binary, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "err.log"), "-c", "nginx.conf"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        assert done.returncode == 0, done.stderr


def test_anthropic_capture_body_is_the_benchmark_body_mapped() -> None:
    chat, messages = json.loads(load.chat_body(True)), json.loads(load.messages_body(True))
    assert messages["system"] == chat["messages"][0]["content"]
    assert messages["messages"] == chat["messages"][1:]
    assert messages["max_tokens"] == chat["max_tokens"] and messages["stream"] is True


# ---------------------------------------------------------------- options, pieces


def test_arguments() -> None:
    args = load.parse_args([])
    assert (args.upstream, args.peers, args.targets) == ("mock", [], list(load.TARGETS))
    args = load.parse_args(["--upstream", "static", "--peers", "litellm, portkey,litellm", "--quick"])
    assert args.upstream == "static" and args.peers == ["litellm", "portkey"]
    assert (args.runs, args.duration) == (1, 2)
    args = load.parse_args(["--targets", "fastgate-anthropic,fastgate-2w"])
    assert args.targets == ["fastgate-anthropic", "fastgate-2w"]
    assert load.parse_args(["--memory"]).memory == 60 and load.parse_args([]).memory is None
    assert load.parse_args(["--memory", "90"]).memory == 90
    bad_args = (
        ["--upstream", "openai"],
        ["--peers", "kong"],
        ["--targets", ""],
        ["--runs", "0"],
        ["--memory", "0"],
    )
    for bad in bad_args:
        with pytest.raises(SystemExit):
            load.parse_args(bad)


def test_endpoints_for_plain_and_streaming_requests() -> None:
    same = Target("relay", "http://127.0.0.1:1/plain", {"a": "1"}, 1, "relay")
    assert same.endpoint(False) == same.endpoint(True) == ("http://127.0.0.1:1/plain", {"a": "1"})
    apart = Target("x", "u", {"a": "1"}, 1, "x", stream_url="s", stream_headers={"a": "2"})
    assert apart.endpoint(False) == ("u", {"a": "1"}) and apart.endpoint(True) == ("s", {"a": "2"})
    mock = load.Upstream("mock", "http://127.0.0.1:2")
    static = load.Upstream("static", "http://127.0.0.1:3")
    assert mock.base(True) == mock.base(False) == "http://127.0.0.1:2"
    assert (static.base(False), static.base(True)) == (
        "http://127.0.0.1:3/plain",
        "http://127.0.0.1:3/stream",
    )
    assert (mock.process, static.process, static.port) == ("mock", "static", 3)


def test_litellm_config_points_each_model_at_its_upstream_answer() -> None:
    text = peers.litellm_config({False: "http://127.0.0.1:5/plain", True: "http://127.0.0.1:5/stream/"}, "k")
    config = json.loads(text)  # JSON is YAML: LiteLLM's loader reads it
    models = {m["model_name"]: m["litellm_params"] for m in config["model_list"]}
    assert models == {
        "bench-plain": {
            "model": "openai/mock-small",
            "api_base": "http://127.0.0.1:5/plain/v1",
            "api_key": "k",
        },
        "bench-stream": {
            "model": "openai/mock-small",
            "api_base": "http://127.0.0.1:5/stream/v1",
            "api_key": "k",
        },
    }
    assert config["general_settings"]["master_key"] == "k"
    assert peers.litellm_path(True) == "/engines/bench-stream/chat/completions"
    assert peers.litellm_path(False) == "/engines/bench-plain/chat/completions"
    argv = peers.litellm_argv(Path("/x/litellm"), Path("c.yaml"), Path("l.json"), 9)
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "9"
    # Nothing LiteLLM would fetch at start-up may leave the machine.
    urls = [v for k, v in peers.LITELLM_ENV.items() if k.endswith("_URL")]
    assert urls and all(u.startswith("http://127.0.0.1:") for u in urls)


def test_a_failed_install_is_a_note_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("npm", "node"):  # an npm that cannot reach its registry
        (bin_dir / tool).write_text("#!/bin/sh\necho 'npm error network ENOTFOUND' >&2\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert peers.install_portkey(tmp_path / "peers") is None
    err = capsys.readouterr().err
    assert (
        "skipping portkey" in err and "ENOTFOUND" in (tmp_path / "peers" / "portkey-install.log").read_text()
    )
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert peers.install_portkey(tmp_path / "peers") is None
    assert "node/npm not found" in capsys.readouterr().err


def test_a_peer_that_does_not_start_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    broken = tmp_path / "start-server.js"
    broken.write_text("console.error('no such gateway'); process.exit(3);\n")
    monkeypatch.setattr(peers, "install_portkey", lambda: broken)
    with Processes(tmp_path) as procs:
        targets = load.start_servers(procs, ["direct", "portkey"], tmp_path)
        assert list(targets) == ["direct"]
        assert procs.procs["portkey"].poll() == 3
    assert "portkey did not start, skipping it" in capsys.readouterr().err


def test_comparison_lines() -> None:
    def row(rps: float, streams: float) -> dict[str, float]:
        return {
            "rps": rps,
            "streams_per_s": streams,
            "cpu_us_per_req": 1e6 / rps,
            "cpu_us_per_stream": math.nan,
        }

    lines = load.comparisons({"fastgate": row(4000, 2000), "fastgate-anthropic": row(3600, 1000)})
    assert len(lines) == 1 and lines[0].startswith("anthropic / openai")
    assert lines[0].endswith("req/s 0.90x, streams/s 0.50x, CPU µs/req 1.11x, CPU µs/stream !")
    lines = load.comparisons({"fastgate": row(4000, 2000), "fastgate-2w": row(6000, 4000)})
    assert len(lines) == 1 and lines[0].startswith("2 workers / 1 worker") and "req/s 1.50x" in lines[0]
    assert load.comparisons({"fastgate": row(1, 1)}) == []
    paired = {("fastgate-anthropic", "fastgate"): {"cpu_us_per_req": 1.234, "cpu_us_per_stream": 1.1}}
    summary = {"fastgate": row(4000, 2000), "fastgate-anthropic": row(3600, 1000)}
    lines = load.comparisons(summary, paired)
    assert len(lines) == 2
    assert lines[1].startswith("anthropic / openai")
    assert lines[1].endswith(", alternating 1 s slices: CPU µs/req 1.23x, CPU µs/stream 1.10x")
    # The gateway against the floor: the ratios, and how many µs above it.
    paired = {("fastgate", "protocol-relay"): {"cpu_us_per_req": 1.5, "cpu_us_per_req_added": 12.25}}
    lines = load.comparisons({"fastgate": row(4000, 2000), "protocol-relay": row(8000, 4000)}, paired)
    assert lines[0].startswith("fastgate / protocol-relay") and "req/s 0.50x" in lines[0]
    assert lines[1].endswith(", alternating 1 s slices: CPU µs/req 1.50x (+12.2 µs)")
    # ... and of those µs, how many in user space (the gateway's own code) and in the kernel.
    paired[("fastgate", "protocol-relay")]["cpu_us_per_req_added_user"] = 8.0
    lines = load.comparisons({"fastgate": row(4000, 2000), "protocol-relay": row(8000, 4000)}, paired)
    assert lines[1].endswith(", alternating 1 s slices: CPU µs/req 1.50x (+12.2 µs: user +8.0, kernel +4.2)")


@needs_wrk
def test_paired_cpu_alternates_short_slices_of_two_rows(
    servers: tuple[Processes, dict[str, Target]], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, targets = servers
    files = {"plain": workdir / "paired.json", "stream": workdir / "paired-stream.json"}
    files["plain"].write_bytes(load.chat_body(stream=False))
    files["stream"].write_bytes(load.chat_body(stream=True))
    order = []
    results = []
    run_wrk = load.run_wrk

    def recorded(target: Target, body: Path, duration: int, stream: bool = False) -> load.WrkResult:
        order.append((target.name, stream))
        results.append(run_wrk(target, body, duration, stream=stream))
        return results[-1]

    monkeypatch.setattr(load, "run_wrk", recorded)
    ratios = load.paired_cpu(targets["fastgate-anthropic"], targets["fastgate"], files, slices=2)
    a, b = "fastgate-anthropic", "fastgate"
    assert order == [
        (a, False),
        (b, False),
        (b, False),
        (a, False),
        (a, True),
        (b, True),
        (b, True),
        (a, True),
    ]
    # Both ratios measured from real CPU time: the two paths cost within a few times each other.
    assert ratios.keys() == {
        "cpu_us_per_req",
        "cpu_us_per_stream",
        "cpu_us_per_req_added",
        "cpu_us_per_stream_added",
        "cpu_us_per_req_added_user",
        "cpu_us_per_stream_added_user",
    }
    assert all(0.3 < ratios[k] < 3 for k in ("cpu_us_per_req", "cpu_us_per_stream"))
    assert all(ratios[k + "_added"] * (ratios[k] - 1) >= 0 for k in ("cpu_us_per_req", "cpu_us_per_stream"))
    # Each slice's CPU time split from /proc: a gateway's Python runs mostly in user space.
    assert all(0 < r.server_user_s <= r.server_cpu_s for r in results)
    assert not any(math.isnan(ratios[k + "_added_user"]) for k in ("cpu_us_per_req", "cpu_us_per_stream"))


def test_added_latency_against_nginx_line() -> None:
    def row(c1: float, raw: float) -> dict[str, float]:
        return {"c1_p50_ms": c1, "c1_raw_p50_ms": raw}

    summary = {"direct": row(0.1, 0.02), "nginx": row(0.3, 0.12), "fastgate": row(0.5, 0.17)}
    assert load.comparisons(summary) == [
        "fastgate c=1 added p50 ÷ nginx's (target: at most 1.5x): "
        "library client 2.00x, raw-socket client 1.50x"
    ]
    assert load.comparisons({"direct": row(0.1, 0.02), "fastgate": row(0.5, 0.17)}) == []
    # With the protocol relay: how far the floor is from nginx, and the gateway from the floor.
    summary["protocol-relay"] = row(0.2, 0.07)
    assert load.comparisons(summary) == [
        "fastgate c=1 added p50 ÷ nginx's (target: at most 1.5x): "
        "library client 2.00x, raw-socket client 1.50x",
        "protocol-relay c=1 added p50 ÷ nginx's (the floor of a Python relay): "
        "library client 0.50x, raw-socket client 0.50x",
        "fastgate c=1 added p50 ÷ protocol-relay's (the gateway's own work): "
        "library client 4.00x, raw-socket client 3.00x",
    ]


def test_cores_and_their_busy_ticks() -> None:
    busy0, total0 = load.core_busy_ticks(0)
    busy, total = load.core_busy_ticks(load.BOTH_CORES)
    assert 0 < busy0 <= total0
    if (os.cpu_count() or 1) >= 2:
        assert total > total0 and busy >= busy0
        if shutil.which("taskset"):
            assert load.taskset_prefix(load.BOTH_CORES) == ["taskset", "-c", "0,1"]
    assert load.taskset_prefix((0, 4096)) == []


def test_stopping_a_server_stops_its_children(tmp_path: Path) -> None:
    with Processes(tmp_path) as procs:
        # A supervisor that stops on SIGTERM, and a child of it that ignores SIGTERM (a stuck
        # worker): the child is killed with its group, not left running.
        pid_file = tmp_path / "child.pid"
        script = (
            f"(trap '' TERM; exec sleep 60) & echo $! > {pid_file}.tmp && mv {pid_file}.tmp {pid_file}; wait"
        )
        procs.start("supervisor", ["sh", "-c", script], core=None)
        deadline = time.monotonic() + 5
        while not pid_file.exists():
            assert time.monotonic() < deadline, "the supervisor did not start its child"
            time.sleep(0.02)
        child = Path(f"/proc/{int(pid_file.read_text())}")
        started = time.monotonic()
        procs.stop("supervisor")
        assert time.monotonic() - started < 5
        while child.exists() and child.joinpath("stat").read_text().split(")")[1].split()[0] != "Z":
            assert time.monotonic() - started < 5, "the child outlived its stopped supervisor"
            time.sleep(0.02)
