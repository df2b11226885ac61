"""Long-lived streams through one worker (issue 27, target 5): thousands of concurrent streams
paced like a model, through fastgate and directly (and through nginx, where installed).

    python bench/streams.py [--streams 2000,5000,10000] [--targets direct,fastgate,nginx] [--append]
                            [--runs N] [--ramp S] [--gateway-flag=--max-in-flight=...]

The upstream is ``bench/paced_upstream.c``, compiled at start-up (``cc``): the mock's own
20-chunk OpenAI stream, captured from ``fastgate mock``, replayed with its events 50-100 ms apart
(deterministic gaps from a seed). The generator (``bench/stream_clients.py``) opens N streams
evenly over the ramp, one connection each, reads every one to its end and checks it byte for
byte. Generator and upstream run on core 0, the server under test (one fastgate worker, one nginx
worker) alone on core 1; ``direct`` is the generator against the upstream itself. Every server is
started afresh for each measurement, so its peak RSS (``VmHWM``) is that measurement's. The
figures go to ``bench/results/streams.md`` (committed) and the raw numbers to
``bench/results/streams-<timestamp>.json``. Everything runs on 127.0.0.1; every loop is bounded in
count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    from bench import load
    from bench.latency import percentile, raw_request
    from bench.stream_clients import raise_open_files
except ImportError:  # run as a script: bench/ is on sys.path, the repository root is not
    import load  # type: ignore[no-redef]
    from latency import percentile, raw_request  # type: ignore[no-redef]
    from stream_clients import raise_open_files  # type: ignore[no-redef]

REPO = load.REPO
RESULTS = load.RESULTS
FIGURES = RESULTS / "streams.md"
UPSTREAM_SOURCE = load.BENCH / "paced_upstream.c"
LEVELS = (2000, 5000, 10000)
TARGETS = ("direct", "fastgate", "nginx")
#: The pace of a model: gaps between a stream's writes, drawn from this range from SEED.
GAP_MS = (50, 100)
SEED = 27
#: Streams through each fresh server before it is measured (warm-up; its code paths and pools).
WARM_STREAMS = 20
#: Descriptors a server keeps besides its connections (listener, epoll, logs, the loop's pipes):
#: a level that needs more than the hard limit leaves is run at the largest count that fits.
FD_RESERVE = 64
#: Seconds a run may take past its ramp and twice a stream's paced length before the streams
#: still open are given up.
RUN_SLACK_S = 30.0
READY_TIMEOUT_S = 20.0

NGINX_CONF = """\
worker_processes 1;
worker_rlimit_nofile {files};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 1000000;
    upstream paced {{
        server 127.0.0.1:{upstream_port};
        keepalive 1024;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://paced;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
"""


# ---------------------------------------------------------------- the upstream


def build_upstream(workdir: Path) -> Path:
    """``paced_upstream.c`` compiled into ``workdir``."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler: apt-get install -y build-essential")
    binary = workdir / "paced_upstream"
    subprocess.run(
        [compiler, "-O2", "-Wall", "-o", str(binary), str(UPSTREAM_SOURCE)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return binary


def capture_stream(procs: load.Processes) -> bytes:
    """The mock's 20-chunk answer to the benchmark's streaming request, byte for byte."""
    mock, _ = load.launch_upstream(procs, "mock")
    try:
        load.wait_ready(procs, "mock", load.direct_target(procs, mock))
        answers = load.capture_answers(mock.url)
    finally:
        procs.stop("mock")
    return next(a.body for a in answers if a.stream and a.path == load.CHAT)


def start_upstream(
    procs: load.Processes, binary: Path, body: Path, gaps_ms: tuple[int, int] = GAP_MS, seed: int = SEED
) -> int:
    port = load.free_port()
    low, high = gaps_ms
    argv = [str(binary), str(port), str(body), str(load.STREAM_CHUNKS), str(low), str(high), str(seed)]
    procs.start("paced", argv, load.CLIENT_CORE)
    wait_listening(procs, "paced", port)
    return port


def upstream_stats(port: int) -> dict[str, int]:
    """The paced upstream's stream counters; its ``peak`` (most streams open at once) starts
    again from the streams open now."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stats", timeout=5) as resp:
        stats: dict[str, int] = json.loads(resp.read())
    return stats


def wait_listening(procs: load.Processes, name: str, port: int, timeout: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if procs.procs[name].poll() is not None:
            raise RuntimeError(f"{name} exited:\n{procs.log_tail(name)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} not listening after {timeout:.0f} s:\n{procs.log_tail(name)}")


# ---------------------------------------------------------------- servers under test


@dataclass
class Server:
    """A target as the generator sees it: where to connect, what to send, whose figures."""

    name: str
    port: int
    request: bytes
    #: The process whose CPU and memory are measured (the upstream itself for ``direct``).
    pid: int
    #: Descriptors the server holds per stream (a client and an upstream connection for a proxy).
    fds_per_stream: int


def stream_request(port: int, headers: dict[str, str]) -> bytes:
    _, request = raw_request(f"http://127.0.0.1:{port}{load.CHAT}", headers, load.chat_body(stream=True))
    return request


def start_server(
    procs: load.Processes, name: str, upstream_port: int, workdir: Path, gateway_flags: list[str]
) -> Server:
    """A fresh server for one measurement (``direct``: the running upstream)."""
    if name == "direct":
        return Server(name, upstream_port, stream_request(upstream_port, {}), procs.procs["paced"].pid, 1)
    port = load.free_port()
    if name == "fastgate":
        argv = [sys.executable, "-m", "fastgate", "serve", "--port", str(port), *gateway_flags]
        procs.start(name, argv, load.SERVER_CORE)
        headers = load.portkey_headers("openai", f"http://127.0.0.1:{upstream_port}")
    else:
        binary = load.nginx_binary()
        assert binary is not None
        files = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        home = workdir / name
        conf = NGINX_CONF.format(
            files=files,
            connections=max(files - FD_RESERVE, 1024),
            dir=home,
            upstream_port=upstream_port,
            port=port,
        )
        load._start_nginx(procs, name, binary, conf, workdir, load.SERVER_CORE)
        headers = {}
    wait_listening(procs, name, port)
    return Server(name, port, stream_request(port, headers), procs.procs[name].pid, 2)


def capacity(server: Server) -> int:
    """The most streams the server's descriptors can hold under the hard open-file limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        return 1 << 30
    return max((hard - FD_RESERVE) // server.fds_per_stream, 1)


# ---------------------------------------------------------------- one measurement


def run_limit(ramp_s: float, gaps_ms: tuple[int, int]) -> float:
    """Seconds a run of streams may take in all."""
    return ramp_s + 2 * load.STREAM_CHUNKS * gaps_ms[1] / 1000 + RUN_SLACK_S


def generate(
    server: Server, workdir: Path, body: Path, streams: int, ramp_s: float, limit: float
) -> dict[str, Any]:
    """Run the generator (its own process, on the client core) against ``server``."""
    request = workdir / f"{server.name}.request"
    request.write_bytes(server.request)
    argv = [
        sys.executable,
        "-m",
        "bench.stream_clients",
        "--port",
        str(server.port),
        "--request",
        str(request),
        "--expected",
        str(body),
        "--streams",
        str(streams),
        "--ramp",
        str(ramp_s),
        "--limit",
        str(limit),
    ]
    out = subprocess.run(
        load.taskset_prefix(load.CLIENT_CORE) + argv,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=limit + 60,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the generator failed ({out.returncode}):\n{out.stderr.decode()[-2000:]}")
    record: dict[str, Any] = json.loads(out.stdout)
    return record


def status_mb(pid: int, field: str) -> float:
    """A ``/proc/<pid>/status`` memory field (``VmRSS``, ``VmHWM``) in MiB; NaN if unreadable."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return math.nan


def _finite(values: list[float | None]) -> list[float]:
    return [v if v is not None else math.inf for v in values]


def measure(
    server: Server,
    workdir: Path,
    body: Path,
    streams: int,
    ramp_s: float,
    limit: float,
    upstream_port: int,
    helpers: list[int],
) -> dict[str, Any]:
    """Warm the server up, then one run of ``streams``: what the generator saw, how many streams
    the upstream had open at once (what the server really held), the server's peak RSS and CPU
    (and the client core's other processes' CPU, ``helpers``)."""
    warm = generate(server, workdir, body, WARM_STREAMS, 0.1, limit)
    if sum(warm["complete"]) != WARM_STREAMS:
        raise RuntimeError(
            f"{server.name}: {sum(warm['complete'])}/{WARM_STREAMS} warm-up streams came whole"
        )
    load.wait_quiet([server.pid, *helpers])
    pids = load.process_tree(server.pid)
    rss_before = sum(status_mb(p, "VmRSS") for p in pids)
    cpu_before, helpers_before = load.cpu_seconds(pids), load.cpu_seconds(helpers)
    core_before = load.core_busy_ticks(load.SERVER_CORE)
    loadavg = os.getloadavg()[0]
    upstream_before = upstream_stats(upstream_port)
    record = generate(server, workdir, body, streams, ramp_s, limit)
    upstream_after = upstream_stats(upstream_port)
    pids = load.process_tree(server.pid)  # nginx's worker, a gateway's children
    cpu = load.cpu_seconds(pids) - cpu_before
    core_after = load.core_busy_ticks(load.SERVER_CORE)
    peak = sum(status_mb(p, "VmHWM") for p in pids)
    elapsed = record["elapsed_s"]
    ttfe, total = _finite(record["ttfe"]), _finite(record["total"])
    busy_ticks, all_ticks = (a - b for a, b in zip(core_after, core_before, strict=True))
    return {
        "streams": streams,
        "completed": sum(record["complete"]),
        "statuses": record["statuses"],
        "peak_open": record["peak_open"],
        "held": upstream_after["peak"],
        "upstream_cut": upstream_after["cut"] - upstream_before["cut"],
        "ttfe_p50_ms": 1000 * percentile(ttfe, 50),
        "ttfe_p99_ms": 1000 * percentile(ttfe, 99),
        "ttfe_max_ms": 1000 * percentile(ttfe, 100),
        "total_p50_s": percentile(total, 50),
        "total_p99_s": percentile(total, 99),
        "rss_before_mb": rss_before,
        "rss_peak_mb": peak,
        "rss_per_stream_kb": 1024 * (peak - rss_before) / max(upstream_after["peak"], 1),
        "server_cpu_s": cpu,
        "server_busy": cpu / elapsed,
        "server_core_busy": busy_ticks / all_ticks if all_ticks else math.nan,
        "cpu_us_per_stream": 1e6 * cpu / streams,
        "generator_busy": record["cpu_s"] / elapsed,
        "helpers_busy": (load.cpu_seconds(helpers) - helpers_before) / elapsed,
        "start_lag_p99_ms": record["start_lag_p99_ms"],
        "elapsed_s": elapsed,
        "loadavg_1m": loadavg,
    }


# ---------------------------------------------------------------- the benchmark


@dataclass
class Settings:
    levels: list[int]
    targets: list[str]
    runs: int = 1
    ramp_s: float = 1.0
    gaps_ms: tuple[int, int] = GAP_MS
    gateway_flags: tuple[str, ...] = ()


def benchmark(settings: Settings, workdir: Path) -> dict[str, Any]:
    """Every (level, target) measured ``runs`` times, targets interleaved within each level."""
    raise_open_files(1 << 20)  # up to the hard limit; the servers inherit it
    binary = build_upstream(workdir)
    raw: dict[str, list[dict[str, Any]]] = {}
    notes: list[str] = []
    with load.Processes(workdir) as procs:
        body = workdir / "stream.sse"
        body.write_bytes(capture_stream(procs))
        upstream_port = start_upstream(procs, binary, body, settings.gaps_ms)
        helpers = [procs.procs["paced"].pid]
        for level in settings.levels:
            for run, name in load.interleaved(settings.targets, settings.runs):
                server = start_server(procs, name, upstream_port, workdir, list(settings.gateway_flags))
                streams = min(level, capacity(server))
                if streams < level:
                    note = (
                        f"{name} at {level:,}: run with {streams:,} streams, the most the hard open-file "
                        f"limit ({resource.getrlimit(resource.RLIMIT_NOFILE)[1]:,}) leaves "
                        f"{server.fds_per_stream} descriptors each"
                    )
                    if note not in notes:
                        notes.append(note)
                print(
                    f"{level:,} streams, run {run + 1}/{settings.runs}: {name}", file=sys.stderr, flush=True
                )
                try:
                    limit = run_limit(settings.ramp_s, settings.gaps_ms)
                    result = measure(
                        server, workdir, body, streams, settings.ramp_s, limit, upstream_port, helpers
                    )
                finally:
                    if name != "direct":
                        procs.stop(name)
                raw.setdefault(f"{level}/{name}", []).append({"run": run, **result})
    summary = {key: medians(runs) for key, runs in raw.items()}
    return {"raw": raw, "medians": summary, "notes": notes, "table": render(summary)}


#: The figures a table row shows, by key (medians over runs).
FIGURES_KEYS = (
    "streams",
    "completed",
    "peak_open",
    "held",
    "ttfe_p50_ms",
    "ttfe_p99_ms",
    "ttfe_max_ms",
    "total_p99_s",
    "rss_before_mb",
    "rss_peak_mb",
    "rss_per_stream_kb",
    "server_busy",
    "server_core_busy",
    "cpu_us_per_stream",
    "generator_busy",
    "helpers_busy",
    "start_lag_p99_ms",
    "loadavg_1m",
)


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    out = {}
    for key in FIGURES_KEYS:
        values = [r[key] for r in runs if not math.isnan(r[key])]
        out[key] = statistics.median(values) if values else math.nan
    out["runs"] = len(runs)
    out["all_complete"] = all(r["completed"] == r["streams"] for r in runs)
    return out


def render(summary: dict[str, dict[str, float]]) -> str:
    """The figures as a Markdown table, and per level the gateway's TTFE p99 over the direct path's."""
    head = [
        "streams",
        "path",
        "complete",
        "held at once",
        "TTFE p50 ms",
        "TTFE p99 ms",
        "p99 vs direct's",
        "stream p99 s",
        "RSS start → peak MB",
        "KB/stream",
        "server CPU",
        "µs CPU/stream",
        "core 0: generator + upstream",
        "load avg",
    ]
    rows = []
    for key, m in summary.items():
        level, name = key.split("/")
        direct = summary.get(f"{level}/direct")
        added = m["ttfe_p99_ms"] - direct["ttfe_p99_ms"] if direct and name != "direct" else math.nan
        rows.append(
            [
                f"{int(level):,}",
                name,
                f"{m['completed']:,.0f}/{m['streams']:,.0f}" + ("" if m["all_complete"] else " !"),
                f"{m['held']:,.0f}",
                f"{m['ttfe_p50_ms']:.2f}",
                f"{m['ttfe_p99_ms']:.2f}",
                "" if math.isnan(added) else f"{added:+.2f}",
                f"{m['total_p99_s']:.2f}",
                f"{m['rss_before_mb']:.0f} → {m['rss_peak_mb']:.0f}",
                f"{m['rss_per_stream_kb']:.1f}",
                f"{m['server_busy']:.0%} (core {m['server_core_busy']:.0%})",
                f"{m['cpu_us_per_stream']:,.0f}",
                f"{m['generator_busy']:.0%} + {m['helpers_busy']:.0%}",
                f"{m['loadavg_1m']:.1f}",
            ]
        )
    return load._table(head, rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--streams", default=",".join(str(n) for n in LEVELS), help="concurrent streams, comma-separated"
    )
    parser.add_argument("--targets", default=",".join(TARGETS), help="from " + ",".join(TARGETS))
    parser.add_argument("--runs", type=int, default=1, help="interleaved runs per level (default 1)")
    parser.add_argument("--ramp", type=float, default=1.0, help="seconds over which a run's streams start")
    parser.add_argument(
        "--gaps",
        default=",".join(str(g) for g in GAP_MS),
        help="ms between a stream's writes, MIN,MAX (default 50,100: a model's pace)",
    )
    parser.add_argument(
        "--gateway-flag",
        action="append",
        default=[],
        help="a flag for `fastgate serve` (repeat; e.g. --gateway-flag=--max-in-flight=20000)",
    )
    parser.add_argument(
        "--append", action="store_true", help="add this run's figures to streams.md instead of replacing them"
    )
    args = parser.parse_args(argv)
    try:
        args.streams = [int(n) for n in load._names(args.streams)]
    except ValueError:
        parser.error("--streams takes numbers")
    args.targets = load._names(args.targets)
    try:
        low, high = (int(g) for g in args.gaps.split(","))
    except ValueError:
        parser.error("--gaps takes MIN,MAX in ms")
    if not 0 <= low <= high < 1024:
        parser.error("--gaps must satisfy 0 <= MIN <= MAX < 1024")
    args.gaps = (low, high)
    if unknown := set(args.targets) - set(TARGETS):
        parser.error(f"unknown targets {sorted(unknown)}; choose from {','.join(TARGETS)}")
    if not args.streams or min(args.streams) < 1 or args.runs < 1 or args.ramp <= 0 or not args.targets:
        parser.error("--streams and --runs must be at least 1, --ramp positive, --targets not empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    targets = args.targets
    if "nginx" in targets and load.nginx_binary() is None:
        print(
            "note: nginx is not installed (apt-get install -y nginx): its rows are left out", file=sys.stderr
        )
        targets = [t for t in targets if t != "nginx"]
    settings = Settings(args.streams, targets, args.runs, args.ramp, args.gaps, tuple(args.gateway_flag))
    with tempfile.TemporaryDirectory(prefix="fastgate-streams-") as tmp:
        result = benchmark(settings, Path(tmp))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    raw_path = RESULTS / f"streams-{stamp}.json"
    raw_path.write_text(json.dumps(load._json_safe({"started": stamp, **result}), indent=2, allow_nan=False))
    lines = [
        f"# bench/streams.py, {stamp}",
        "",
        f"`python bench/streams.py --streams {','.join(map(str, settings.levels))} --targets "
        f"{','.join(settings.targets)} --runs {settings.runs} --ramp {settings.ramp_s:g} "
        f"--gaps {settings.gaps_ms[0]},{settings.gaps_ms[1]}"
        + "".join(f" --gateway-flag={f}" for f in settings.gateway_flags)
        + f"` (medians of {settings.runs} run(s); raw numbers in {raw_path.relative_to(REPO)})",
        "",
        result["table"],
        *(f"\n- {note}" for note in result["notes"]),
    ]
    earlier = FIGURES.read_text() + "\n" if args.append and FIGURES.exists() else ""
    FIGURES.write_text(earlier + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted: servers stopped", file=sys.stderr)
        raise SystemExit(130) from None
