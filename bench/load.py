"""Load benchmark: fastgate vs. clients hitting the mock directly vs. a bare aiohttp relay vs. nginx.

    python bench/load.py [--quick] [--duration S] [--runs N] [--rate R]
                         [--targets fastgate,direct,relay,nginx]
    python bench/load.py --profile [stream]  # the gateway under cProfile: its per-request costs

Everything runs on 127.0.0.1. The script starts every server it measures and stops them all on
exit, Ctrl-C or error; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
POST_LUA = BENCH / "post.lua"
TARGETS = ("direct", "fastgate", "relay", "nginx")
#: Core of the load generators and the mock, and core of the server under test.
CLIENT_CORE, SERVER_CORE = 0, 1
STREAM_CHUNKS = 20
WRK_CONNECTIONS = 64
#: The open-loop generator wakes this much before a send is due (libuv timers have 1 ms
#: resolution), so sends are on time or slightly early, never systematically late.
TIMER_LEAD_S = 0.001
#: Longest wait for one request; a request that takes longer counts as infinitely slow.
REQUEST_TIMEOUT_S = 5.0
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
METHOD = f"""\
Method
- Layout: load generators (wrk, the latency generator) and the mock upstream pinned to core \
{CLIENT_CORE}; the server under test (one fastgate worker, the relay, one nginx worker) pinned to \
core {SERVER_CORE}. Direct = the generators against the mock itself. All traffic on 127.0.0.1.
- Body: a ~1 KB chat completion request. Streams: "stream": true, the mock sends \
{STREAM_CHUNKS} content chunks per stream.
- Throughput: wrk, 1 thread, {WRK_CONNECTIONS} keep-alive connections, fixed duration, \
bench/post.lua; any non-2xx answer or socket error marks the run invalid (shown as "!").
- CPU µs/req: user+system CPU time of the server process(es) during the non-streaming wrk run, \
per request; "busy" is that CPU time over the run's duration, beside how busy the server's core \
was in all (other tenants included): a server well below 100% was not what limited req/s (the \
shared core {CLIENT_CORE} or other tenants were); "req/s per core" = \
1e6 / CPU µs/req, what one fully busy core would carry (the steadiest number on a noisy machine); \
CPU µs/stream likewise for the streaming run.
- Latency c=1: one request at a time on one keep-alive connection, from send to last byte.
- Latency at a fixed rate: open loop (requests sent on a fixed schedule whatever the answers), \
latency counted from the scheduled send time (or the actual send, if earlier), so a stall is \
charged to every request it delays (no coordinated omission); failures and requests still \
unanswered after {REQUEST_TIMEOUT_S:.0f} s count as infinitely slow.
- Each configuration is measured once per run, the order rotated from run to run (interleaved); \
the table shows the median over runs. Ratios: each row's value divided by the relay's and by \
nginx's. RSS: resident memory of the server process(es) after the load.
"""


# ---------------------------------------------------------------- processes


def taskset_prefix(core: int) -> list[str]:
    """``taskset -c core`` when taskset exists and the core does; otherwise no pinning."""
    if shutil.which("taskset") is None or core >= (os.cpu_count() or 1):
        return []
    return ["taskset", "-c", str(core)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """The servers this script started; all of them are stopped on exit, whatever happens."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[TextIO] = []

    def start(self, name: str, argv: list[str], core: int | None) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "w")  # noqa: SIM115 - closed in stop_all
        self._logs.append(log)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        prefix = taskset_prefix(core) if core is not None else []
        # A session of its own: a Ctrl-C reaches this script only, which then stops the servers.
        proc = subprocess.Popen(
            prefix + argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def _children(pid: int) -> list[int]:
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        return [int(c) for t in tasks for c in (t / "children").read_text().split()]
    except OSError:
        return []


def process_tree(pid: int) -> list[int]:
    """A process and its descendants (nginx: master and worker)."""
    out: list[int] = []
    todo = [pid]
    while todo and len(out) < 64:
        p = todo.pop()
        out.append(p)
        todo.extend(_children(p))
    return out


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime
    return total


def core_busy_ticks(core: int) -> tuple[int, int]:
    """(busy, total) clock ticks of one core since boot, from /proc/stat; (0, 0) if unreadable."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{core} "):
                ticks = [int(x) for x in line.split()[1:]]
                idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
                return sum(ticks[:8]) - idle, sum(ticks[:8])
    return 0, 0


def rss_mb(pids: list[int]) -> float:
    """Resident memory of the processes, in MiB; NaN when none of them is alive."""
    total, seen = 0, False
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    seen = True
    return total / 1024 if seen else math.nan


# ---------------------------------------------------------------- targets


def chat_body(stream: bool) -> bytes:
    """A ~1 KB chat request, the size of a short prompt with a system message."""
    text = (
        "Summarise the following notes in one sentence. "
        + "The quick brown fox jumps over the lazy dog. " * 19
    )
    body = {
        "model": "mock-small",
        "messages": [
            {"role": "system", "content": "You are a concise assistant used by a load test."},
            {"role": "user", "content": text},
        ],
        "max_tokens": 64,
        "temperature": 0.2,
        "stream": stream,
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    #: The process whose CPU and memory are the server's (the mock itself for ``direct``).
    pid: int
    #: Its name in :class:`Processes` (for its log), and the core it is pinned to.
    process: str
    core: int = SERVER_CORE


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float = 2.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(procs: Processes, name: str, target: Target) -> None:
    """Poll the target with a real chat request until it answers one correctly (bounded)."""
    proc = procs.procs[name]
    body = chat_body(stream=False)
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.log_tail(name)}")
        try:
            status, answer = _post(target.url, body, target.headers)
        except OSError as exc:
            last = repr(exc)
        else:
            if status == 200 and b'"choices"' in answer:
                return
            raise RuntimeError(f"{name} answered {status}: {answer[:300]!r}")
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready after {READY_TIMEOUT_S:.0f} s ({last}):\n{procs.log_tail(name)}")


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    upstream mock {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # Relay SSE chunks as they come, like the gateway does.
            proxy_buffering off;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def start_servers(
    procs: Processes, names: list[str], workdir: Path, profile_to: Path | None = None
) -> dict[str, Target]:
    """Start the mock and the servers ``names`` needs, each pinned, and wait until each answers."""
    py = sys.executable
    mock_port = free_port()
    mock_url = f"http://127.0.0.1:{mock_port}"
    mock = procs.start(
        "mock",
        [py, "-m", "fastgate", "mock", "--port", str(mock_port), "--chunks", str(STREAM_CHUNKS)],
        CLIENT_CORE,
    )
    chat = "/v1/chat/completions"
    targets: dict[str, Target] = {
        "direct": Target("direct", mock_url + chat, {}, mock.pid, "mock", CLIENT_CORE)
    }
    wait_ready(procs, "mock", targets["direct"])
    if "fastgate" in names:
        port = free_port()
        profiler = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
        proc = procs.start(
            "fastgate", [py, *profiler, "-m", "fastgate", "serve", "--port", str(port)], SERVER_CORE
        )
        headers = {
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": mock_url + "/v1",
            "Authorization": "Bearer sk-bench-not-a-real-key",
        }
        targets["fastgate"] = Target(
            "fastgate", f"http://127.0.0.1:{port}{chat}", headers, proc.pid, "fastgate"
        )
    if "relay" in names:
        port = free_port()
        argv = [py, str(BENCH / "relay_baseline.py"), "--port", str(port), "--upstream", mock_url]
        proc = procs.start("relay", argv, SERVER_CORE)
        targets["relay"] = Target("relay", f"http://127.0.0.1:{port}{chat}", {}, proc.pid, "relay")
    if "nginx" in names:
        binary = nginx_binary()
        if binary is None:
            print("note: nginx is not installed, skipping it (apt-get install -y nginx)", file=sys.stderr)
        else:
            port = free_port()
            conf = workdir / "nginx.conf"
            conf.write_text(NGINX_CONF.format(dir=workdir, port=port, upstream_port=mock_port))
            argv = [binary, "-p", str(workdir), "-e", str(workdir / "nginx-error.log"), "-c", str(conf)]
            proc = procs.start("nginx", argv, SERVER_CORE)
            targets["nginx"] = Target("nginx", f"http://127.0.0.1:{port}{chat}", {}, proc.pid, "nginx")
    for name, target in targets.items():
        if name != "direct":
            wait_ready(procs, name, target)
    return {name: targets[name] for name in names if name in targets}


# ---------------------------------------------------------------- throughput (wrk)


@dataclass
class WrkResult:
    requests: int
    rps: float
    non_2xx: int
    socket_errors: int
    #: CPU seconds the server used during the run, and the run's wall time.
    server_cpu_s: float
    wall_s: float
    #: Share of the server's core busy with anything (this server, other tenants) during the run.
    core_busy: float

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.server_cpu_s / self.requests if self.requests else math.nan

    @property
    def server_busy(self) -> float:
        """Share of one core the server used."""
        return self.server_cpu_s / self.wall_s if self.wall_s else math.nan


def parse_wrk(output: str) -> tuple[int, float, int, int]:
    """Requests, requests/s, non-2xx answers and socket errors from wrk's report."""
    done = re.search(r"(\d+) requests in", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if done is None or rps is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = sum(int(g) for g in sock.groups()) if sock else 0
    return int(done.group(1)), float(rps.group(1)), int(non_2xx.group(1)) if non_2xx else 0, errors


def run_wrk(target: Target, body_file: Path, duration: int, connections: int = WRK_CONNECTIONS) -> WrkResult:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    argv = [*taskset_prefix(CLIENT_CORE), wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s"]
    argv += ["-s", str(POST_LUA), "-H", "Content-Type: application/json"]
    for name, value in target.headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv += [target.url, "--", str(body_file)]
    pids = process_tree(target.pid)
    cpu_before, core_before, started = cpu_seconds(pids), core_busy_ticks(target.core), time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    server_cpu, wall = cpu_seconds(pids) - cpu_before, time.perf_counter() - started
    core_after = core_busy_ticks(target.core)
    total_ticks = core_after[1] - core_before[1]
    core_busy = (core_after[0] - core_before[0]) / total_ticks if total_ticks else math.nan
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    requests, rps, non_2xx, errors = parse_wrk(out.stdout)
    return WrkResult(requests, rps, non_2xx, errors, server_cpu, wall, core_busy)


# ---------------------------------------------------------------- latency (own generator)


@dataclass
class LatencyResult:
    #: Seconds per request; failures and timeouts are ``inf``.
    latencies: list[float] = field(repr=False)
    #: How late the generator sent each request after its scheduled time (open loop only).
    send_lag: list[float] = field(default_factory=list, repr=False)
    elapsed_s: float = 0.0

    @property
    def failures(self) -> int:
        return sum(1 for x in self.latencies if x == math.inf)

    def percentile_ms(self, q: float) -> float:
        return 1000 * percentile(self.latencies, q)

    def summary(self) -> dict[str, float]:
        return {
            "requests": len(self.latencies),
            "failures": self.failures,
            "rate": len(self.latencies) / self.elapsed_s if self.elapsed_s else math.nan,
            "p50_ms": self.percentile_ms(50),
            "p99_ms": self.percentile_ms(99),
            "max_ms": self.percentile_ms(100),
            "send_lag_p99_ms": 1000 * percentile(self.send_lag, 99) if self.send_lag else 0.0,
        }


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 of 100 values is the 99th)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def _client_session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        skip_auto_headers=("User-Agent",),
    )


async def _one(session: aiohttp.ClientSession, target: Target, body: bytes, headers: dict[str, str]) -> bool:
    try:
        async with session.post(target.url, data=body, headers=headers) as resp:
            await resp.read()
            return bool(resp.status == 200)
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


async def closed_loop(
    target: Target, body: bytes, duration: float, max_requests: int = 200_000
) -> LatencyResult:
    """One request at a time: each sent when the previous one's last byte has arrived."""
    headers = {"Content-Type": "application/json", **target.headers}
    latencies: list[float] = []
    async with _client_session(limit=1) as session:
        for _ in range(5):  # open the connection and warm the path before timing
            await _one(session, target, body, headers)
        start = time.perf_counter()
        deadline = start + duration
        while len(latencies) < max_requests:
            t0 = time.perf_counter()
            if t0 >= deadline:
                break
            ok = await _one(session, target, body, headers)
            latencies.append(time.perf_counter() - t0 if ok else math.inf)
    return LatencyResult(latencies, elapsed_s=time.perf_counter() - start)


async def open_loop(
    target: Target, body: bytes, rate: float, duration: float, max_inflight: int = 1024
) -> LatencyResult:
    """Requests on a fixed schedule (``rate`` per second), whether or not earlier ones answered.

    Latency is counted from the scheduled send time, so a server stall is charged to every
    request it delays; a sent-early request (timer lead) counts from its actual send.
    """
    headers = {"Content-Type": "application/json", **target.headers}
    count = max(1, int(rate * duration))
    interval = 1.0 / rate
    latencies: list[float] = [math.inf] * count
    send_lag: list[float] = [0.0] * count

    async def fire(i: int, scheduled: float) -> None:
        sent = time.perf_counter()
        send_lag[i] = max(0.0, sent - scheduled)
        if await _one(session, target, body, headers):
            latencies[i] = time.perf_counter() - min(sent, scheduled)

    async with _client_session(limit=max_inflight) as session:
        for _ in range(5):
            await _one(session, target, body, headers)
        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.01
        for i in range(count):
            scheduled = start + i * interval
            delay = scheduled - time.perf_counter() - TIMER_LEAD_S
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(fire(i, scheduled))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 1)
            for task in pending:  # left as inf: counted as infinitely slow
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
    return LatencyResult(latencies, send_lag, elapsed_s=count * interval)


def _run_async(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


# ---------------------------------------------------------------- the benchmark


@dataclass
class Settings:
    targets: list[str]
    runs: int
    duration: int
    latency_duration: float
    rate: float
    pause_s: float = 0.3


def measure_once(target: Target, settings: Settings, files: dict[str, Path]) -> dict[str, Any]:
    """All four measurements of one target, in one run."""
    out: dict[str, Any] = {}
    plain = run_wrk(target, files["plain"], settings.duration)
    out["rps"] = plain.rps if plain.valid else math.nan
    out["cpu_us_per_req"] = plain.cpu_us_per_request
    out["server_busy"] = plain.server_busy
    out["core_busy"] = plain.core_busy
    out["wrk"] = asdict(plain)
    time.sleep(settings.pause_s)
    stream = run_wrk(target, files["stream"], settings.duration)
    out["streams_per_s"] = stream.rps if stream.valid else math.nan
    out["cpu_us_per_stream"] = stream.cpu_us_per_request
    out["wrk_stream"] = asdict(stream)
    time.sleep(settings.pause_s)
    body = chat_body(stream=False)
    c1 = _run_async(closed_loop(target, body, settings.latency_duration))
    out["c1"] = c1.summary()
    time.sleep(settings.pause_s)
    fixed = _run_async(open_loop(target, body, settings.rate, settings.latency_duration))
    out["fixed"] = fixed.summary()
    time.sleep(settings.pause_s)
    return out


def _median(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else math.nan


def medians(raw: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per target, the median over runs of each number the table shows."""
    out: dict[str, dict[str, float]] = {}
    for name, runs in raw.items():
        out[name] = {
            "rps": _median([r["rps"] for r in runs]),
            "streams_per_s": _median([r["streams_per_s"] for r in runs]),
            "cpu_us_per_req": _median([r["cpu_us_per_req"] for r in runs]),
            "cpu_us_per_stream": _median([r["cpu_us_per_stream"] for r in runs]),
            "server_busy": _median([r["server_busy"] for r in runs]),
            "core_busy": _median([r["core_busy"] for r in runs]),
            "c1_p50_ms": _median([r["c1"]["p50_ms"] for r in runs]),
            "c1_p99_ms": _median([r["c1"]["p99_ms"] for r in runs]),
            "fixed_p50_ms": _median([r["fixed"]["p50_ms"] for r in runs]),
            "fixed_p99_ms": _median([r["fixed"]["p99_ms"] for r in runs]),
            "send_lag_p99_ms": _median([r["fixed"]["send_lag_p99_ms"] for r in runs]),
            "runs": len(runs),
            "invalid_runs": sum(1 for r in runs if math.isnan(r["rps"]) or math.isnan(r["streams_per_s"])),
        }
    return out


def _fmt(value: float, digits: int = 0) -> str:
    if math.isnan(value):
        return "!"
    if math.isinf(value):
        return "timeout"
    return f"{value:,.{digits}f}"


def _ratio(a: float, b: float | None) -> str:
    return "" if b is None or not b or math.isnan(a) or math.isnan(b) else f"{a / b:.2f}x"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def render_table(summary: dict[str, dict[str, float]], rate: float, rss: dict[str, float]) -> str:
    """Two Markdown tables of medians: throughput (with ratios vs. relay and nginx) and latency."""
    direct, relay, nginx = summary.get("direct"), summary.get("relay"), summary.get("nginx")
    throughput, latency = [], []
    for name, m in summary.items():
        throughput.append(
            [
                name,
                _fmt(m["rps"]),
                _fmt(m["cpu_us_per_req"]),
                _fmt(1e6 / m["cpu_us_per_req"]),
                f"{_fmt(100 * m['server_busy'])}% / {_fmt(100 * m['core_busy'])}%",
                _fmt(m["streams_per_s"]),
                _fmt(m["cpu_us_per_stream"]),
                _ratio(m["rps"], relay["rps"] if relay else None),
                _ratio(m["rps"], nginx["rps"] if nginx else None),
                _ratio(m["streams_per_s"], relay["streams_per_s"] if relay else None),
                _ratio(m["streams_per_s"], nginx["streams_per_s"] if nginx else None),
                _fmt(rss[name], 1) if name in rss else "",
            ]
        )
        added = ["", ""]
        if direct is not None and name != "direct":
            added = [
                _fmt(m["c1_p50_ms"] - direct["c1_p50_ms"], 3),
                _fmt(m["fixed_p50_ms"] - direct["fixed_p50_ms"], 3),
            ]
        latency.append(
            [
                name,
                _fmt(m["c1_p50_ms"], 3),
                _fmt(m["c1_p99_ms"], 3),
                _fmt(m["fixed_p50_ms"], 3),
                _fmt(m["fixed_p99_ms"], 3),
                *added,
            ]
        )
    r = f"{rate:g}/s"
    throughput_head = [
        "target",
        "req/s",
        "CPU µs/req",
        "req/s per core",
        "busy: server / its core",
        "streams/s",
        "CPU µs/stream",
        "req/s ÷ relay",
        "req/s ÷ nginx",
        "streams/s ÷ relay",
        "streams/s ÷ nginx",
        "RSS MB",
    ]
    latency_head = [
        "target",
        "c=1 p50 ms",
        "c=1 p99 ms",
        f"{r} p50 ms",
        f"{r} p99 ms",
        "+p50 vs direct, c=1",
        f"+p50 vs direct, {r}",
    ]
    return _table(throughput_head, throughput) + "\n\n" + _table(latency_head, latency)


def interleaved(names: list[str], runs: int) -> Iterator[tuple[int, str]]:
    """(run, target) in the order measured: every target once per run, rotated each run."""
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            yield run, name


def exited(procs: Processes, target: Target) -> str | None:
    """Which process a target depends on has exited (the mock, or its own server), if any."""
    for name in ("mock", target.process):
        if procs.procs[name].poll() is not None:
            return name
    return None


def benchmark(settings: Settings, workdir: Path) -> dict[str, Any]:
    files = {"plain": workdir / "chat.json", "stream": workdir / "chat-stream.json"}
    files["plain"].write_bytes(chat_body(stream=False))
    files["stream"].write_bytes(chat_body(stream=True))
    with Processes(workdir) as procs:
        targets = start_servers(procs, settings.targets, workdir)
        names = list(targets)
        rss_start = {n: rss_mb(process_tree(t.pid)) for n, t in targets.items()}
        for target in targets.values():  # warm-up: pools filled, code paths hot
            run_wrk(target, files["plain"], 1)
        raw: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        failures: list[dict[str, Any]] = []

        def fail(run: int, name: str, error: str) -> None:
            process = targets[name].process
            proc, log = procs.procs[process], procs.log_tail(process)
            state = "running" if proc.poll() is None else f"exited with {proc.returncode}"
            print(f"run {run + 1}: {name} failed ({state}): {error}\n{log}", file=sys.stderr, flush=True)
            failures.append({"run": run, "target": name, "error": error, "server": state, "log": log})

        given_up: set[str] = set()
        for run, name in interleaved(names, settings.runs):
            target = targets[name]
            if name in given_up:
                continue
            if dead := exited(procs, target):
                fail(run, name, f"{dead} exited before the run; no further runs of {name}")
                given_up.add(name)
                continue
            print(f"run {run + 1}/{settings.runs}: {name}", file=sys.stderr, flush=True)
            try:
                result = measure_once(target, settings, files)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                fail(run, name, str(exc))
                continue
            if dead := exited(procs, target):
                # Its numbers show the death (errors, timeouts), not the server's speed.
                fail(run, name, f"{dead} exited during the run; its numbers are left out")
            else:
                raw[name].append(result)
        rss_end = {n: rss_mb(process_tree(t.pid)) for n, t in targets.items()}
    summary = medians(raw)
    return {
        "targets": names,
        "raw": raw,
        "medians": summary,
        "rss_mb_start": rss_start,
        "rss_mb_end": rss_end,
        "failures": failures,
        "table": render_table(summary, settings.rate, rss_end),
    }


def profile_gateway(duration: int, workdir: Path, stream: bool, top: int = 25) -> str:
    """The gateway under cProfile during one wrk run: where its per-request CPU time goes."""
    prof = workdir / "fastgate.prof"
    body_file = workdir / "chat.json"
    body_file.write_bytes(chat_body(stream=stream))
    with Processes(workdir) as procs:
        target = start_servers(procs, ["fastgate"], workdir, profile_to=prof)["fastgate"]
        result = run_wrk(target, body_file, duration)
    if not prof.exists():
        raise RuntimeError("the profiled gateway wrote no profile:\n" + procs.log_tail("fastgate"))
    RESULTS.mkdir(exist_ok=True)
    kept = RESULTS / time.strftime("%Y%m%dT%H%M%SZ-fastgate.prof", time.gmtime())
    shutil.copyfile(prof, kept)
    rows = request_path(pstats.Stats(str(prof)), result.requests)
    total = sum(r.own for r in rows) or 1.0
    kind = "streams" if stream else "requests"
    lines = [
        f"{result.requests} {kind} under cProfile ({result.rps:.0f}/s, slowed by the profiler); "
        f"{1e6 * total / max(1, result.requests):.0f} µs of profiled time per request on its path; "
        f"profile kept in {kept.relative_to(REPO)}",
        "Shares are of that per-request time (cProfile inflates pure-Python code more than C).",
        "\n# own time by package",
    ]
    by_package: dict[str, float] = {}
    for r in rows:
        by_package[package_of(r.filename)] = by_package.get(package_of(r.filename), 0.0) + r.own
    lines += [f"{v / total:6.1%}  {k}" for k, v in sorted(by_package.items(), key=lambda kv: -kv[1])[:15]]
    lines.append(f"\n# top {top} functions by own time (own, cumulative, calls per request)")
    lines += [r.describe(total, result.requests) for r in sorted(rows, key=lambda r: -r.own)[:top]]
    lines.append("\n# fastgate functions by cumulative time")
    ours = sorted((r for r in rows if "fastgate" in Path(r.filename).parts), key=lambda r: -r.cumulative)
    lines += [r.describe(total, result.requests) for r in ours[:top]]
    return "\n".join(lines)


@dataclass
class ProfiledFunction:
    filename: str
    line: int
    name: str
    calls: int
    own: float
    cumulative: float

    def describe(self, total: float, requests: int) -> str:
        where = Path(self.filename)
        if "fastgate" in where.parts:
            where = Path(*where.parts[where.parts.index("fastgate") :])
        elif "site-packages" in where.parts:
            where = Path(*where.parts[where.parts.index("site-packages") + 1 :])
        return (
            f"{self.own / total:6.1%} {self.cumulative / total:6.1%} {self.calls / requests:5.1f}  "
            f"{where}:{self.line} {self.name}"
        )


def request_path(stats: pstats.Stats, requests: int) -> list[ProfiledFunction]:
    """Functions called at least every other request: the per-request path, without start-up
    and without the event loop's frame (called once, its time is mostly waiting)."""
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        if calls >= requests / 2:
            rows.append(ProfiledFunction(filename, line, name, calls, own, cumulative))
    return rows


def package_of(filename: str) -> str:
    """The package a profiled function belongs to: fastgate modules by name, libraries by top level."""
    if filename.startswith("<") or filename == "~":
        return "builtins (C functions: socket, msgspec, ...)"
    parts = Path(filename).parts
    if "fastgate" in parts:
        return ".".join(parts[parts.index("fastgate") :]).removesuffix(".py")
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return rest[0].removesuffix(".py") if len(rest) > 1 else rest[0]
    return ("stdlib " if filename.startswith(sys.base_prefix) else "") + Path(filename).stem


def _json_safe(value: Any) -> Any:
    """NaN (a failed run) and inf (a timed-out request) as null and "inf": JSON has neither."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else "inf"
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "taskset": shutil.which("taskset") is not None,
        "wrk": shutil.which("wrk"),
        "nginx": nginx_binary(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run of 2 s per measurement (a smoke test)")
    parser.add_argument("--duration", type=int, default=None, help="seconds per measurement (default 5)")
    parser.add_argument("--runs", type=int, default=None, help="interleaved runs (default 3)")
    parser.add_argument("--rate", type=float, default=400.0, help="requests/s of the open-loop latency run")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated, from " + ",".join(TARGETS)
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="plain",
        choices=("plain", "stream"),
        help="instead: profile the gateway (cProfile) under non-streaming (default) or streaming load",
    )
    args = parser.parse_args(argv)
    args.targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(args.targets) - set(TARGETS)
    if unknown or not args.targets:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {','.join(TARGETS)}")
    if args.duration is None:
        args.duration = 2 if args.quick else 5
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.duration < 1 or args.runs < 1 or args.rate <= 0:
        parser.error("--duration and --runs must be at least 1, --rate positive")
    return args


def _stop_on_sigterm() -> None:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed; install it with: apt-get install -y wrk", file=sys.stderr)
        return 2
    _stop_on_sigterm()
    if taskset_prefix(CLIENT_CORE):
        os.sched_setaffinity(0, {CLIENT_CORE})  # the latency generator runs in this process
    else:
        print("note: taskset missing or one core only: nothing is pinned", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="fastgate-load-") as tmp:
        workdir = Path(tmp)
        if args.profile:
            print(profile_gateway(args.duration, workdir, stream=args.profile == "stream"))
            return 0
        settings = Settings(
            targets=args.targets,
            runs=args.runs,
            duration=args.duration,
            latency_duration=float(args.duration),
            rate=args.rate,
        )
        result = benchmark(settings, workdir)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp}.json"
    record = {
        "started": stamp,
        "machine": _machine(),
        "settings": asdict(settings),
        "method": METHOD,
        **result,
    }
    path.write_text(json.dumps(_json_safe(record), indent=2, allow_nan=False))
    print(result["table"])
    lags = ", ".join(f"{n} {m['send_lag_p99_ms']:.2f}" for n, m in result["medians"].items())
    print(f"\nOpen-loop generator, p99 of its own send lag in ms (included in the latencies): {lags}")
    for failure in result["failures"]:
        run, name, state = failure["run"] + 1, failure["target"], failure["server"]
        print(f"\n! run {run} of {name} failed ({state}): {failure['error']}")
    print(
        f"\n(medians of {settings.runs} runs of {settings.duration} s each; "
        f"raw numbers in {path.relative_to(REPO)})\n"
    )
    print(METHOD)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
