"""Load benchmark: fastgate vs. clients hitting the upstream directly vs. a bare aiohttp relay vs.
a relay with no gateway in it (uvloop protocols) vs. nginx, and optionally Portkey's gateway and
LiteLLM's proxy.

    python bench/load.py [--quick] [--duration S] [--runs N] [--rate R] [--upstream mock|static]
                         [--targets direct,fastgate,fastgate-anthropic,fastgate-nopoll,fastgate-2w,relay,
                                   protocol-relay,nginx]
                         [--peers portkey,litellm]
    python bench/load.py --profile [stream]  # the gateway under cProfile: its per-request costs
    python bench/load.py --memory [SECONDS]  # one worker's RSS through SECONDS (60) of full load

Everything runs on 127.0.0.1. The script starts every server it measures and stops them all on
exit, Ctrl-C or error; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import pstats
import pwd
import random
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
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

try:
    from bench import peers
    from bench.latency import REQUEST_TIMEOUT_S, closed_loop, open_loop, raw_closed_loop
except ImportError:  # run as a script: bench/ is on sys.path, the repository root is not
    import peers  # type: ignore[no-redef]
    from latency import REQUEST_TIMEOUT_S, closed_loop, open_loop, raw_closed_loop  # type: ignore[no-redef]

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
POST_LUA = BENCH / "post.lua"
TARGETS = (
    "direct",
    "fastgate",
    "fastgate-anthropic",
    "fastgate-nopoll",
    "fastgate-2w",
    "relay",
    "protocol-relay",
    "nginx",
)
PEERS = peers.PEERS
UPSTREAMS = ("mock", "static")
#: Core of the load generators and the upstream, and core of the server under test.
CLIENT_CORE, SERVER_CORE = 0, 1
#: fastgate-2w's workers may run on both cores (this box has two: they share them with the load).
BOTH_CORES = (CLIENT_CORE, SERVER_CORE)
STREAM_CHUNKS = 20
WRK_CONNECTIONS = 64
CHAT = "/v1/chat/completions"
#: Every target's client and upstream key (the mock and the static upstream take any).
API_KEY = "sk-bench-not-a-real-key"
ANTHROPIC_VERSION = "2023-06-01"
READY_TIMEOUT_S = 20.0
#: LiteLLM's proxy takes 10-20 s to import and start on this machine.
PEER_READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
#: Before a measurement the servers must be idle: together under this share of a core, over
#: windows of QUIET_WINDOW_S, waited for up to QUIET_LIMIT_S. A server still working off a backlog
#: (LiteLLM's proxy takes ~30 s to answer what the 400/s run queued) would otherwise take the core
#: from the next target and halve its numbers.
QUIET_SHARE = 0.05
QUIET_WINDOW_S = 0.5
QUIET_LIMIT_S = 120.0
#: Pairs of rows whose CPU ratio is also measured in alternating slices (see ``paired_cpu``).
PAIRED = (("fastgate-anthropic", "fastgate"), ("fastgate", "fastgate-nopoll"), ("fastgate", "protocol-relay"))
#: Slices of PAIRED_SLICE_S per row of a pair and kind of request (whole answers, streams).
PAIRED_SLICES = 8
PAIRED_SLICE_S = 1
METHOD = f"""\
Method
- Layout: load generators (wrk, the latency generator) and the upstream pinned to core \
{CLIENT_CORE}; the server under test (one fastgate worker, a relay, one nginx worker, a peer \
gateway) pinned to core {SERVER_CORE}. Direct = the generators against the upstream itself. All \
traffic on 127.0.0.1.
- Upstream: "mock" = `fastgate mock` (Python; on the shared core it caps req/s near 5-9k); \
"static" = one nginx worker answering every request with the mock's answer to the benchmark body, \
captured byte for byte at start-up (OpenAI JSON, the SSE stream, Anthropic's Messages JSON and \
stream), so the upstream costs little and core {CLIENT_CORE} is less of a limit.
- fastgate-anthropic: the same OpenAI-format request through fastgate with \
x-portkey-provider: anthropic (mapped to /v1/messages and back); fastgate = the OpenAI passthrough.
- relay: bench/relay_baseline.py, the barest aiohttp+uvloop relay (the issue's baseline); \
protocol-relay: bench/protocol_relay.py, a relay with no gateway in it on uvloop's protocols and \
fastgate's compiled HTTP parsers (no routing, options, validation, tasks or futures), the floor \
under any Python gateway on uvloop.
- fastgate-nopoll: the passthrough through `fastgate serve --busy-poll-us 0`, a worker that sleeps \
through every wait (by default a worker serving one request at a time polls through an upstream's \
answer or a client's next request expected within 250 µs).
- fastgate-2w: `fastgate serve --workers 2` on both cores, which it shares with the load \
generators and the upstream on this 2-core machine: its req/s is bounded by that, not a measure \
of scaling; "busy" may exceed 100% (two cores), "its core" is both cores' average.
- Peers (--peers): Portkey's gateway (node, provider openai with a custom host) and LiteLLM's \
proxy (one uvicorn worker, the upstream as an OpenAI-compatible model, a master key, no access \
log), installed under bench/.peers, pinned like the other servers.
- Body: a ~1 KB chat completion request. Streams: "stream": true, the upstream sends \
{STREAM_CHUNKS} content chunks per stream.
- Throughput: wrk, 1 thread, {WRK_CONNECTIONS} keep-alive connections, fixed duration, \
bench/post.lua; any non-2xx answer or socket error marks the run invalid (shown as "!").
- CPU µs/req: user+system CPU time of the server process(es) during the non-streaming wrk run, \
per request; "busy" is that CPU time over the run's duration, beside how busy the server's core \
was in all (other tenants included): a server well below 100% was not what limited req/s (the \
shared core {CLIENT_CORE} or other tenants were); "req/s per core" = \
1e6 / CPU µs/req, what one fully busy core would carry (the steadiest number on a noisy machine); \
CPU µs/stream likewise for the streaming run.
- Latency c=1: one request at a time on one keep-alive connection, from send to last byte: with the
  aiohttp client ("c=1"), and from a blocking socket with the request bytes built once ("c=1 raw"), whose
  few µs between requests let the server's core go less idle and cold than a client library's tens.
- Latency at a fixed rate: open loop (requests sent on a fixed schedule whatever the answers), \
from raw sockets (bench/latency.py: the request bytes built once, kept-alive connections, one \
more opened whenever all are waiting, one thread on epoll, sends timed by a sleep and a short \
poll), latency counted from the scheduled send time (or the actual send, if earlier), so a stall \
is charged to every request it delays (no coordinated omission), the generator's own lateness \
included; failures and requests still unanswered after {REQUEST_TIMEOUT_S:.0f} s count as \
infinitely slow.
- Alternating slices (anthropic / openai, busy polling / none, fastgate / protocol-relay): after \
the runs, the two rows' CPU µs per request and per stream again, in {PAIRED_SLICES} wrk slices of \
{PAIRED_SLICE_S} s each, the two rows alternating (the order flipped each time); the ratio of the \
medians, and their difference in µs, split into user space (the server's own code) and kernel \
(/proc's utime and stime). Other tenants' load drifts over minutes, which adjacent slices mostly \
cancel and runs of the two rows minutes apart do not. The kernel's part of a difference is not all \
the server's own: on loopback, a send that wakes a sleeping peer (the load generator, the \
upstream) pays for the wake-up, and a slower server finds its peers asleep more often.
- Each configuration is measured once per run, the order rotated from run to run (interleaved); \
before each measurement every server started waits until it is idle (under {QUIET_SHARE:.0%} of \
a core; LiteLLM's proxy works off what the 400/s run queued for ~30 s, on the core the next \
target runs on); the table shows the median over runs. Ratios: each row's value divided by the \
relay's and by nginx's. RSS: resident memory of the server process(es) after the load.
"""

Cores = int | tuple[int, ...]


# ---------------------------------------------------------------- processes


def _cores(core: Cores) -> tuple[int, ...]:
    return (core,) if isinstance(core, int) else core


def taskset_prefix(core: Cores) -> list[str]:
    """``taskset -c core[,core]`` when taskset exists and the cores do; otherwise no pinning."""
    cores = _cores(core)
    if shutil.which("taskset") is None or max(cores) >= (os.cpu_count() or 1):
        return []
    return ["taskset", "-c", ",".join(str(c) for c in cores)]


_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A port free now, for a server started later. Not one ``bind(0)`` hands out: that comes
    from the ephemeral range, where any outgoing connection (a client warming up another
    server) may take it as its source port before the server binds it (nginx then exits with
    "address already in use"). Below that range only explicit binds compete, and none of this
    script's picks repeats."""
    low = _ephemeral_low()
    for port in random.sample(range(10000, max(low, 10001)), k=min(200, max(low - 10000, 1))):
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:  # nothing free below the range: take the kernel's pick
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """The servers this script started; all of them are stopped on exit, whatever happens."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: list[TextIO] = []

    def start(
        self, name: str, argv: list[str], core: Cores | None, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "w")  # noqa: SIM115 - closed in stop_all
        self._logs.append(log)
        full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
        prefix = taskset_prefix(core) if core is not None else []
        # A session of its own: a Ctrl-C reaches this script only, which then stops the servers;
        # and its process group holds its children (workers), which are stopped with it.
        proc = subprocess.Popen(
            prefix + argv,
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        return proc

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logdir / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def stop(self, *names: str) -> None:
        """SIGTERM to each process group, SIGKILL to what is left after STOP_TIMEOUT_S."""
        procs = [self.procs[n] for n in names if n in self.procs]
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            # Whatever of its group outlived it (or it, if it would not stop).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=STOP_TIMEOUT_S)

    def stop_all(self) -> None:
        self.stop(*self.procs)
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


def cpu_times(pids: list[int]) -> tuple[float, float]:
    """CPU seconds the processes spent in user space and in the kernel."""
    user = system = 0.0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            user += int(fields[11]) / CLOCK_TICKS  # utime
            system += int(fields[12]) / CLOCK_TICKS  # stime
    return user, system


def cpu_seconds(pids: list[int]) -> float:
    return sum(cpu_times(pids))


def core_busy_ticks(core: Cores) -> tuple[int, int]:
    """(busy, total) clock ticks of the core(s) since boot, from /proc/stat; (0, 0) if unreadable."""
    wanted = {f"cpu{c}" for c in _cores(core)}
    busy = total = 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/stat").read_text().splitlines():
            fields = line.split()
            if fields and fields[0] in wanted:
                ticks = [int(x) for x in fields[1:9]]
                idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
                busy, total = busy + sum(ticks) - idle, total + sum(ticks)
    return busy, total


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


def messages_body(stream: bool) -> bytes:
    """The benchmark body in Anthropic's Messages format (the system prompt apart, as the
    ``anthropic`` provider maps it): the request whose answer the static upstream replays."""
    chat = json.loads(chat_body(stream))
    system = [m["content"] for m in chat["messages"] if m["role"] == "system"]
    body = {
        "model": chat["model"],
        "max_tokens": chat["max_tokens"],
        "system": "\n".join(system),
        "messages": [m for m in chat["messages"] if m["role"] != "system"],
        "temperature": chat["temperature"],
        "stream": stream,
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    #: The process whose CPU and memory are the server's (the upstream itself for ``direct``).
    pid: int
    #: Its name in :class:`Processes` (for its log), and the core(s) it is pinned to.
    process: str
    core: Cores = SERVER_CORE
    #: Where streaming requests go, if not to ``url`` with ``headers``: the static upstream tells
    #: its two answers apart by path, so a target is pointed at the streaming one separately.
    stream_url: str | None = None
    stream_headers: dict[str, str] | None = None
    #: The upstream's name in :class:`Processes`: the target is dead when it is.
    upstream: str = "mock"

    def endpoint(self, stream: bool) -> tuple[str, dict[str, str]]:
        """URL and headers of a non-streaming or a streaming request."""
        if not stream:
            return self.url, self.headers
        headers = self.headers if self.stream_headers is None else self.stream_headers
        return self.stream_url or self.url, headers


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float = 2.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _answers_correctly(target: Target, stream: bool) -> bool:
    """True for a correct answer, False for none yet (refused); RuntimeError for a wrong one."""
    url, headers = target.endpoint(stream)
    try:
        status, answer = _post(url, chat_body(stream), headers)
    except OSError:
        return False
    expected = b"data: [DONE]" if stream else b'"choices"'
    if status != 200 or expected not in answer:
        raise RuntimeError(f"{target.name} answered {status}: {answer[:300]!r}")
    return True


def wait_ready(
    procs: Processes, name: str, target: Target, timeout: float = READY_TIMEOUT_S, streams: bool = True
) -> None:
    """Poll the target with real chat requests until it answers one correctly, then check that a
    stream arrives whole too (bounded); ``streams=False``: a failed stream is noted, not raised
    (its streaming runs then show as failed in the table)."""
    proc = procs.procs[name]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{procs.log_tail(name)}")
        if _answers_correctly(target, stream=False):
            try:
                if not _answers_correctly(target, stream=True):
                    raise RuntimeError(f"{target.name} answered but refused a stream")
            except RuntimeError as exc:
                if streams:
                    raise
                peers.note(f"{exc}; its streaming runs will fail (shown as !)\n{procs.log_tail(name, 8)}")
            return
        time.sleep(0.05)
    raise RuntimeError(f"{name} not ready after {timeout:.0f} s:\n{procs.log_tail(name)}")


NGINX_HEAD = """\
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
"""

NGINX_CONF = (
    NGINX_HEAD
    + """\
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
)

STATIC_NGINX_CONF = (
    "{user}"
    + NGINX_HEAD
    + """\
    sendfile on;
    etag off;
    open_file_cache max=64;
    server {{
        listen 127.0.0.1:{port};
        root {root};
{locations}
    }}
}}
"""
)

STATIC_LOCATION = """\
        location = {path} {{
            default_type {content_type};
            # nginx's static files refuse POST (405): serve the file as to a GET instead.
            error_page 405 =200 $uri;
        }}"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def _start_nginx(procs: Processes, name: str, binary: str, conf_text: str, workdir: Path, core: int) -> int:
    """One nginx (master and one worker) from conf_text, in a directory of its own; its pid."""
    home = workdir / name
    home.mkdir(exist_ok=True)
    conf = home / "nginx.conf"
    conf.write_text(conf_text)
    argv = [binary, "-p", str(home), "-e", str(home / "nginx-error.log"), "-c", str(conf)]
    return procs.start(name, argv, core).pid


# ---------------------------------------------------------------- the upstream


@dataclass(frozen=True)
class Canned:
    """An answer of the mock to the benchmark body, which the static upstream replays."""

    path: str
    stream: bool
    content_type: str
    body: bytes

    @property
    def static_path(self) -> str:
        return static_prefix(self.stream) + self.path


def static_prefix(stream: bool) -> str:
    """The static upstream's path prefix: it cannot read bodies, so streams have a path of their own."""
    return "/stream" if stream else "/plain"


#: What the static upstream answers: (path, request body, headers) sent to the mock at start-up.
CANNED_REQUESTS: tuple[tuple[str, Callable[[bool], bytes], dict[str, str]], ...] = (
    (CHAT, chat_body, {}),
    ("/v1/messages", messages_body, {"x-api-key": API_KEY, "anthropic-version": ANTHROPIC_VERSION}),
)


def capture_answers(mock_url: str) -> list[Canned]:
    """The mock's answers, byte for byte, to each canned request, non-streaming and streaming."""
    out = []
    for path, body, headers in CANNED_REQUESTS:
        for stream in (False, True):
            req = urllib.request.Request(
                mock_url + path, data=body(stream), headers={"Content-Type": "application/json", **headers}
            )
            try:
                with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
                    out.append(Canned(path, stream, resp.headers.get_content_type(), resp.read()))
            except urllib.error.HTTPError as exc:
                raise RuntimeError(f"the mock refused {path}: {exc.code} {exc.read()[:300]!r}") from exc
    return out


def static_nginx_conf(workdir: Path, port: int, root: Path, answers: list[Canned]) -> str:
    """nginx serving each answer as a file at its static path, with the mock's Content-Type."""
    locations = "\n".join(
        STATIC_LOCATION.format(path=a.static_path, content_type=a.content_type) for a in answers
    )
    # Started as root, nginx's worker would run as nobody, who cannot read a private temporary
    # directory: it runs as the user who wrote the files instead.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    return STATIC_NGINX_CONF.format(user=user, dir=workdir, port=port, root=root, locations=locations)


def write_static_site(root: Path, answers: list[Canned]) -> None:
    for answer in answers:
        path = root / answer.static_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(answer.body)


@dataclass(frozen=True)
class Upstream:
    """What every target calls: the mock, or nginx replaying the mock's answers."""

    kind: str
    url: str

    @property
    def process(self) -> str:
        """Its name in :class:`Processes`."""
        return "static" if self.kind == "static" else "mock"

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def prefix(self, stream: bool) -> str:
        """Path prefix of non-streaming or streaming answers (the mock needs none)."""
        return static_prefix(stream) if self.kind == "static" else ""

    def base(self, stream: bool) -> str:
        return self.url + self.prefix(stream)


def launch_upstream(procs: Processes, kind: str) -> tuple[Upstream, Upstream]:
    """Start the mock (not waiting for it); the upstream the targets will call, and the mock.

    The servers under test can start meanwhile: they call the upstream only when asked to."""
    if kind == "static" and nginx_binary() is None:
        raise RuntimeError("--upstream static needs nginx: apt-get install -y nginx")
    mock = Upstream("mock", f"http://127.0.0.1:{free_port()}")
    argv = [
        sys.executable,
        "-m",
        "fastgate",
        "mock",
        "--port",
        str(mock.port),
        "--chunks",
        str(STREAM_CHUNKS),
    ]
    procs.start("mock", argv, CLIENT_CORE)
    return (Upstream("static", f"http://127.0.0.1:{free_port()}") if kind == "static" else mock), mock


def finish_upstream(procs: Processes, upstream: Upstream, mock: Upstream, workdir: Path) -> Target:
    """Wait for the mock; for a static upstream, capture its answers, stop it and start nginx on
    the client core to replay them. The ``direct`` target, once the upstream answers."""
    if upstream.kind == "static":
        wait_ready(procs, "mock", direct_target(procs, mock))
        answers = capture_answers(mock.url)
        procs.stop("mock")  # replayed from here on
        home = workdir / "static"
        home.mkdir(exist_ok=True)
        write_static_site(home / "site", answers)
        conf = static_nginx_conf(home, upstream.port, home / "site", answers)
        _start_nginx(procs, "static", str(nginx_binary()), conf, workdir, CLIENT_CORE)
    direct = direct_target(procs, upstream)
    wait_ready(procs, upstream.process, direct)
    return direct


def direct_target(procs: Processes, upstream: Upstream) -> Target:
    return Target(
        "direct",
        upstream.base(False) + CHAT,
        {},
        procs.procs[upstream.process].pid,
        upstream.process,
        CLIENT_CORE,
        stream_url=upstream.base(True) + CHAT,
        upstream=upstream.process,
    )


# ---------------------------------------------------------------- servers under test


def portkey_headers(provider: str, base: str) -> dict[str, str]:
    """Portkey-protocol headers (fastgate's and Portkey's gateway's) for an upstream base URL."""
    return {
        "x-portkey-provider": provider,
        "x-portkey-custom-host": base + "/v1",
        "Authorization": f"Bearer {API_KEY}",
    }


def start_servers(
    procs: Processes,
    names: list[str],
    workdir: Path,
    profile_to: Path | None = None,
    upstream_kind: str = "mock",
) -> dict[str, Target]:
    """Start the upstream and the servers ``names`` needs, each pinned, and wait until each answers.

    A peer gateway that cannot be installed or started is left out with a note."""
    py = sys.executable
    upstream, mock = launch_upstream(procs, upstream_kind)
    targets: dict[str, Target] = {}
    waits: dict[str, float] = {}

    def add(name: str, process: str, port: int, route: str, headers: dict[str, str], **kw: Any) -> None:
        url = f"http://127.0.0.1:{port}{route}"
        targets[name] = Target(
            name, url, headers, procs.procs[process].pid, process, upstream=upstream.process, **kw
        )

    def via_portkey_headers(name: str, process: str, port: int, provider: str, **kw: Any) -> None:
        plain, stream = (portkey_headers(provider, upstream.base(s)) for s in (False, True))
        add(name, process, port, CHAT, plain, stream_headers=stream, **kw)

    def passing_path(name: str, port: int) -> None:
        """A server that passes the path on (the relays, nginx): the upstream's prefix in its URL."""
        stream_url = f"http://127.0.0.1:{port}{upstream.prefix(True)}{CHAT}"
        add(name, name, port, upstream.prefix(False) + CHAT, {}, stream_url=stream_url)

    gateways = [n for n in ("fastgate", "fastgate-anthropic") if n in names]
    if gateways:
        port = free_port()
        profiler = ["-m", "cProfile", "-o", str(profile_to)] if profile_to else []
        procs.start("fastgate", [py, *profiler, "-m", "fastgate", "serve", "--port", str(port)], SERVER_CORE)
        waits["fastgate"] = READY_TIMEOUT_S
        for name in gateways:
            provider = "anthropic" if name == "fastgate-anthropic" else "openai"
            via_portkey_headers(name, "fastgate", port, provider)
    # The passthrough through a gateway of its own, started with other flags.
    variants: tuple[tuple[str, list[str], Cores], ...] = (
        ("fastgate-nopoll", ["--busy-poll-us", "0"], SERVER_CORE),
        ("fastgate-2w", ["--workers", "2"], BOTH_CORES),
    )
    for name, flags, cores in variants:
        if name in names:
            port = free_port()
            procs.start(name, [py, "-m", "fastgate", "serve", "--port", str(port), *flags], cores)
            waits[name] = READY_TIMEOUT_S
            via_portkey_headers(name, name, port, "openai", core=cores)
    for name, script in (("relay", "relay_baseline.py"), ("protocol-relay", "protocol_relay.py")):
        if name in names:
            port = free_port()
            argv = [py, str(BENCH / script), "--port", str(port), "--upstream", upstream.url]
            procs.start(name, argv, SERVER_CORE)
            waits[name] = READY_TIMEOUT_S
            passing_path(name, port)
    if "nginx" in names:
        binary = nginx_binary()
        if binary is None:
            print("note: nginx is not installed, skipping it (apt-get install -y nginx)", file=sys.stderr)
        else:
            port = free_port()
            conf = NGINX_CONF.format(dir=workdir / "nginx", port=port, upstream_port=upstream.port)
            _start_nginx(procs, "nginx", binary, conf, workdir, SERVER_CORE)
            waits["nginx"] = READY_TIMEOUT_S
            passing_path("nginx", port)
    if "portkey" in names and (entry := peers.install_portkey()) is not None:
        port = free_port()
        procs.start("portkey", peers.portkey_argv(entry, port), SERVER_CORE, env=peers.portkey_env())
        waits["portkey"] = PEER_READY_TIMEOUT_S
        via_portkey_headers("portkey", "portkey", port, "openai")
    if "litellm" in names and (entry := peers.install_litellm()) is not None:
        port = free_port()
        config, log_config = workdir / "litellm.yaml", workdir / "litellm-log.json"
        config.write_text(peers.litellm_config({s: upstream.base(s) for s in (False, True)}, API_KEY))
        log_config.write_text(json.dumps(peers.UVICORN_LOG_CONFIG))
        argv = peers.litellm_argv(entry, config, log_config, port)
        procs.start("litellm", argv, SERVER_CORE, env=peers.LITELLM_ENV)
        waits["litellm"] = PEER_READY_TIMEOUT_S
        stream_url = f"http://127.0.0.1:{port}{peers.litellm_path(True)}"
        add(
            "litellm",
            "litellm",
            port,
            peers.litellm_path(False),
            {"Authorization": f"Bearer {API_KEY}"},
            stream_url=stream_url,
        )
    targets["direct"] = finish_upstream(procs, upstream, mock, workdir)
    for started, target in list(targets.items()):
        if started == "direct":
            continue
        try:
            wait_ready(procs, target.process, target, waits[target.process], streams=started not in PEERS)
        except RuntimeError as exc:
            if started not in PEERS:
                raise
            peers.note(f"{started} did not start, skipping it: {exc}")
            procs.stop(target.process)
            del targets[started]
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
    #: The part of ``server_cpu_s`` spent in user space (the rest, in the kernel).
    server_user_s: float = math.nan

    @property
    def valid(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and self.socket_errors == 0

    @property
    def cpu_us_per_request(self) -> float:
        return 1e6 * self.server_cpu_s / self.requests if self.requests else math.nan

    @property
    def user_us_per_request(self) -> float:
        return 1e6 * self.server_user_s / self.requests if self.requests else math.nan

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


def run_wrk(
    target: Target, body_file: Path, duration: int, connections: int = WRK_CONNECTIONS, stream: bool = False
) -> WrkResult:
    """wrk against the target's non-streaming or streaming endpoint, with the server's CPU time."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not installed: apt-get install -y wrk")
    argv = [*taskset_prefix(CLIENT_CORE), wrk, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s"]
    argv += ["-s", str(POST_LUA), "-H", "Content-Type: application/json"]
    url, headers = target.endpoint(stream)
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    argv += [url, "--", str(body_file)]
    pids = process_tree(target.pid)
    cpu_before, core_before, started = cpu_times(pids), core_busy_ticks(target.core), time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=False)
    cpu_after, wall = cpu_times(pids), time.perf_counter() - started
    user = cpu_after[0] - cpu_before[0]
    server_cpu = user + cpu_after[1] - cpu_before[1]
    core_after = core_busy_ticks(target.core)
    total_ticks = core_after[1] - core_before[1]
    core_busy = (core_after[0] - core_before[0]) / total_ticks if total_ticks else math.nan
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr or out.stdout}")
    requests, rps, non_2xx, errors = parse_wrk(out.stdout)
    return WrkResult(requests, rps, non_2xx, errors, server_cpu, wall, core_busy, user)


# ---------------------------------------------------------------- the benchmark


@dataclass
class Settings:
    targets: list[str]
    runs: int
    duration: int
    latency_duration: float
    rate: float
    pause_s: float = 0.3
    upstream: str = "mock"


def wait_quiet(pids: list[int], limit_s: float = QUIET_LIMIT_S) -> float | None:
    """Seconds until the processes were idle (see QUIET_SHARE), or None if they never were."""
    started = time.monotonic()
    before = cpu_seconds(pids)
    while time.monotonic() - started < limit_s:
        time.sleep(QUIET_WINDOW_S)
        after = cpu_seconds(pids)
        if after - before < QUIET_SHARE * QUIET_WINDOW_S:
            return time.monotonic() - started
        before = after
    return None


def measure_once(
    target: Target, settings: Settings, files: dict[str, Path], servers: list[int] | None = None
) -> dict[str, Any]:
    """All five measurements of one target, in one run; before each, a pause and the
    ``servers`` (pids) idle."""
    out: dict[str, Any] = {"waited_s": 0.0}

    def settle() -> None:
        time.sleep(settings.pause_s)
        if servers:
            waited = wait_quiet(servers)
            out["waited_s"] += QUIET_LIMIT_S if waited is None else waited
            if waited is None:
                print(f"note: the servers were still busy after {QUIET_LIMIT_S:g} s", file=sys.stderr)

    settle()
    plain = run_wrk(target, files["plain"], settings.duration)
    out["rps"] = plain.rps if plain.valid else math.nan
    out["cpu_us_per_req"] = plain.cpu_us_per_request
    out["server_busy"] = plain.server_busy
    out["core_busy"] = plain.core_busy
    out["wrk"] = asdict(plain)
    settle()
    stream = run_wrk(target, files["stream"], settings.duration, stream=True)
    out["streams_per_s"] = stream.rps if stream.valid else math.nan
    out["cpu_us_per_stream"] = stream.cpu_us_per_request
    out["wrk_stream"] = asdict(stream)
    settle()
    body = chat_body(stream=False)
    c1 = closed_loop(target.url, target.headers, body, settings.latency_duration)
    out["c1"] = c1.summary()
    settle()
    out["c1_raw"] = raw_closed_loop(target.url, target.headers, body, settings.latency_duration).summary()
    settle()
    fixed = open_loop(target.url, target.headers, body, settings.rate, settings.latency_duration)
    out["fixed"] = fixed.summary()
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
            "c1_raw_p50_ms": _median([r["c1_raw"]["p50_ms"] for r in runs]),
            "c1_raw_p99_ms": _median([r["c1_raw"]["p99_ms"] for r in runs]),
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
        added = ["", "", ""]
        if direct is not None and name != "direct":
            added = [
                _fmt(m["c1_p50_ms"] - direct["c1_p50_ms"], 3),
                _fmt(m["c1_raw_p50_ms"] - direct["c1_raw_p50_ms"], 3),
                _fmt(m["fixed_p50_ms"] - direct["fixed_p50_ms"], 3),
            ]
        latency.append(
            [
                name,
                _fmt(m["c1_p50_ms"], 3),
                _fmt(m["c1_p99_ms"], 3),
                _fmt(m["c1_raw_p50_ms"], 3),
                _fmt(m["c1_raw_p99_ms"], 3),
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
        "c=1 raw p50 ms",
        "c=1 raw p99 ms",
        f"{r} p50 ms",
        f"{r} p99 ms",
        "+p50 vs direct, c=1",
        "+p50 vs direct, c=1 raw",
        f"+p50 vs direct, {r}",
    ]
    return _table(throughput_head, throughput) + "\n\n" + _table(latency_head, latency)


#: Ratio lines under the tables: (row, reference row, what the pair shows).
COMPARISONS = (
    (
        "fastgate-anthropic",
        "fastgate",
        "anthropic / openai (mapped provider ÷ passthrough; target: within 10%)",
    ),
    (
        "fastgate",
        "fastgate-nopoll",
        "busy polling / none (the default ÷ --busy-poll-us 0; under full load a loop has no waits to poll)",
    ),
    (
        "fastgate-2w",
        "fastgate",
        "2 workers / 1 worker (both cores, shared with the load generators and the upstream on this "
        "2-core box: not a scaling measure; the >=1.8x target needs cores for the workers alone)",
    ),
    (
        "fastgate",
        "protocol-relay",
        "fastgate / protocol-relay (the gateway's own work above the floor of a Python relay; "
        "target: at most +12 µs of CPU a request)",
    ),
)
_COMPARED = (
    ("rps", "req/s"),
    ("streams_per_s", "streams/s"),
    ("cpu_us_per_req", "CPU µs/req"),
    ("cpu_us_per_stream", "CPU µs/stream"),
)


def paired_cpu(row: Target, reference: Target, files: dict[str, Path], slices: int) -> dict[str, float]:
    """Two rows' CPU per request and per stream, each ratio (and difference, ``*_added``) of
    medians over alternating short wrk slices (the order flipped each time). Other tenants'
    load drifts over minutes, and the runs of two rows minutes apart do not cancel it (one run
    put the mapped provider's CPU per stream at 1.64x the passthrough's, slices of the same
    servers an hour later at 1.23x). The difference is also split (``*_added_user``): the part
    in user space is the gateway's own code; the kernel's part also grows as the server's rate
    falls (bench/results/wakeups-20261207.txt)."""
    ratios = {}
    for key, stream in (("cpu_us_per_req", False), ("cpu_us_per_stream", True)):
        samples: dict[str, list[float]] = {row.name: [], reference.name: []}
        user: dict[str, list[float]] = {row.name: [], reference.name: []}
        body = files["stream" if stream else "plain"]
        for i in range(slices):
            for target in (row, reference) if i % 2 == 0 else (reference, row):
                try:
                    result = run_wrk(target, body, PAIRED_SLICE_S, stream=stream)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    print(f"note: a slice of {target.name} failed: {exc}", file=sys.stderr)
                    continue
                if result.valid:
                    samples[target.name].append(result.cpu_us_per_request)
                    user[target.name].append(result.user_us_per_request)
        if all(samples.values()):
            mine, theirs = _median(samples[row.name]), _median(samples[reference.name])
            ratios[key] = mine / theirs
            ratios[key + "_added"] = mine - theirs  # µs: the gateway's own work above the floor
            ratios[key + "_added_user"] = _median(user[row.name]) - _median(user[reference.name])
    return ratios


def _added_cpu(ratios: dict[str, float], key: str) -> str:
    """How many µs of CPU a row spends above the other, and of them how many in user space."""
    added, user = ratios.get(key + "_added"), ratios.get(key + "_added_user")
    if added is None:
        return ""
    if user is None or math.isnan(user):
        return f" ({added:+.1f} µs)"
    return f" ({added:+.1f} µs: user {user:+.1f}, kernel {added - user:+.1f})"


def _added(summary: dict[str, dict[str, float]], name: str, key: str) -> float:
    return summary[name][key] - summary["direct"][key]


def comparisons(
    summary: dict[str, dict[str, float]], paired: dict[tuple[str, str], dict[str, float]] | None = None
) -> list[str]:
    """One line per pair of rows that were both measured: each number's ratio; ``paired``: the
    ratios of ``paired_cpu``, by (row, reference)."""
    lines = []
    gateways = [n for n in summary if n.startswith("fastgate")]
    added_pairs = [
        *((n, "nginx", "target: at most 1.5x") for n in gateways),
        ("protocol-relay", "nginx", "the floor of a Python relay"),
        *((n, "protocol-relay", "the gateway's own work") for n in gateways),
    ]
    for name, reference, why in added_pairs:
        if {"direct", name, reference} <= summary.keys():
            cells = [
                f"{client} {_ratio(_added(summary, name, key), _added(summary, reference, key)) or '!'}"
                for key, client in (("c1_p50_ms", "library client"), ("c1_raw_p50_ms", "raw-socket client"))
            ]
            lines.append(f"{name} c=1 added p50 ÷ {reference}'s ({why}): " + ", ".join(cells))
    for name, reference, label in COMPARISONS:
        row, ref = summary.get(name), summary.get(reference)
        if row is not None and ref is not None:
            cells = [
                f"{what} {_ratio(row[key], ref[key]) or '!'}"
                for key, what in _COMPARED
                if key in row and key in ref
            ]
            if cells:
                lines.append(f"{label}: " + ", ".join(cells))
            if ratios := (paired or {}).get((name, reference)):
                cells = [
                    f"{what} {ratios[key]:.2f}x{_added_cpu(ratios, key)}"
                    for key, what in _COMPARED
                    if key in ratios
                ]
                lines.append(f"{label}, alternating {PAIRED_SLICE_S} s slices: " + ", ".join(cells))
    return lines


def interleaved(names: list[str], runs: int) -> Iterator[tuple[int, str]]:
    """(run, target) in the order measured: every target once per run, rotated each run."""
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            yield run, name


def exited(procs: Processes, target: Target) -> str | None:
    """Which process a target depends on has exited (the upstream, or its own server), if any."""
    for name in (target.upstream, target.process):
        if procs.procs[name].poll() is not None:
            return name
    return None


def benchmark(settings: Settings, workdir: Path) -> dict[str, Any]:
    files = {"plain": workdir / "chat.json", "stream": workdir / "chat-stream.json"}
    files["plain"].write_bytes(chat_body(stream=False))
    files["stream"].write_bytes(chat_body(stream=True))
    with Processes(workdir) as procs:
        targets = start_servers(procs, settings.targets, workdir, upstream_kind=settings.upstream)
        names = list(targets)
        rss_start = {n: rss_mb(process_tree(t.pid)) for n, t in targets.items()}
        for target in targets.values():  # warm-up: pools filled, code paths hot
            run_wrk(target, files["plain"], 1)
            run_wrk(target, files["stream"], 1, stream=True)
        servers = [pid for p in procs.procs.values() for pid in process_tree(p.pid)]
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
                result = measure_once(target, settings, files, servers)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                fail(run, name, str(exc))
                continue
            if dead := exited(procs, target):
                # Its numbers show the death (errors, timeouts), not the server's speed.
                fail(run, name, f"{dead} exited during the run; its numbers are left out")
            else:
                raw[name].append(result)
        paired = {
            (a, b): paired_cpu(targets[a], targets[b], files, PAIRED_SLICES)
            for a, b in PAIRED
            if {a, b} <= targets.keys() - given_up
            and not (exited(procs, targets[a]) or exited(procs, targets[b]))
        }
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
        "paired_cpu": {f"{a} / {b}": ratios for (a, b), ratios in paired.items()},
        "comparisons": comparisons(summary, paired),
    }


def profile_gateway(duration: int, workdir: Path, stream: bool, upstream: str = "mock", top: int = 25) -> str:
    """The gateway under cProfile during one wrk run: where its per-request CPU time goes."""
    prof = workdir / "fastgate.prof"
    body_file = workdir / "chat.json"
    body_file.write_bytes(chat_body(stream=stream))
    with Processes(workdir) as procs:
        target = start_servers(procs, ["fastgate"], workdir, prof, upstream)["fastgate"]
        result = run_wrk(target, body_file, duration, stream=stream)
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


#: Seconds of each wrk run of ``--memory``, after which RSS is read.
MEMORY_SLICE_S = 5
#: The load ``--memory`` cycles through: the passthrough and the mapped provider, whole answers
#: and streams, so every path a request takes holds whatever it keeps.
MEMORY_LOADS = (
    ("fastgate", False),
    ("fastgate", True),
    ("fastgate-anthropic", False),
    ("fastgate-anthropic", True),
)


@dataclass
class MemorySample:
    seconds: int
    target: str
    stream: bool
    rps: float
    valid: bool
    rss_mb: float


def memory_run(
    seconds: int, workdir: Path, upstream: str, slice_s: int = MEMORY_SLICE_S
) -> list[MemorySample]:
    """One gateway worker under full load (wrk, 64 connections) for ``seconds``, in slices that
    cycle through ``MEMORY_LOADS``; its RSS after each. The first cycle is the warm-up."""
    files = {False: workdir / "chat.json", True: workdir / "chat-stream.json"}
    for stream, path in files.items():
        path.write_bytes(chat_body(stream=stream))
    samples: list[MemorySample] = []
    with Processes(workdir) as procs:
        targets = start_servers(procs, ["fastgate", "fastgate-anthropic"], workdir, upstream_kind=upstream)
        pids = process_tree(targets["fastgate"].pid)
        elapsed = 0
        while elapsed < seconds:
            name, stream = MEMORY_LOADS[len(samples) % len(MEMORY_LOADS)]
            length = min(slice_s, seconds - elapsed)
            result = run_wrk(targets[name], files[stream], length, stream=stream)
            elapsed += length
            samples.append(MemorySample(elapsed, name, stream, result.rps, result.valid, rss_mb(pids)))
    return samples


def render_memory(samples: list[MemorySample]) -> str:
    """The RSS series and how it moved after the warm-up (the first cycle of loads)."""
    lines = ["| after s | load | req/s | RSS MB |", "|---|---|---|---|"]
    for s in samples:
        load = f"{s.target}{' stream' if s.stream else ''}"
        lines.append(
            f"| {s.seconds} | {load} | {_fmt(s.rps) if s.valid else '! ' + _fmt(s.rps)} | {s.rss_mb:.1f} |"
        )
    warm = samples[min(len(MEMORY_LOADS), len(samples)) - 1]
    last = samples[-1]
    growth = (last.rss_mb / warm.rss_mb - 1) if warm.rss_mb else math.nan
    lines.append(
        f"\nRSS after {last.seconds} s of load: {last.rss_mb:.1f} MB (target: under 60); after the "
        f"warm-up ({warm.seconds} s) {warm.rss_mb:.1f} MB, then {growth:+.1%} to the end; "
        f"peak {max(s.rss_mb for s in samples):.1f} MB"
    )
    if bad := [s.seconds for s in samples if not s.valid]:
        lines.append(f"! slices with errors or non-2xx answers (ending at s): {bad}")
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
        "node": shutil.which("node"),
        "peers": {
            "portkey": peers.PORTKEY_PACKAGE,
            "portkey_overrides": peers.PORTKEY_OVERRIDES,
            "litellm": peers.LITELLM_REQUIREMENT,
        },
    }


def _names(text: str) -> list[str]:
    """A comma-separated list, blanks and repeats dropped, order kept."""
    return list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))


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
        "--upstream",
        choices=UPSTREAMS,
        default="mock",
        help="what the targets call: the Python mock (default), or nginx replaying its answers",
    )
    parser.add_argument(
        "--peers",
        default="",
        help="also measure other gateways, installed on demand under bench/.peers: " + ",".join(PEERS),
    )
    parser.add_argument(
        "--memory",
        nargs="?",
        const=60,
        type=int,
        help=f"instead: RSS of one gateway worker every {MEMORY_SLICE_S} s through SECONDS (default 60) "
        "of full load",
    )
    parser.add_argument(
        "--profile",
        nargs="?",
        const="plain",
        choices=("plain", "stream"),
        help="instead: profile the gateway (cProfile) under non-streaming (default) or streaming load",
    )
    args = parser.parse_args(argv)
    args.targets = _names(args.targets)
    unknown = set(args.targets) - set(TARGETS)
    if unknown or not args.targets:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {','.join(TARGETS)}")
    args.peers = _names(args.peers)
    if unknown := set(args.peers) - set(PEERS):
        parser.error(f"unknown peers {sorted(unknown)}; choose from {','.join(PEERS)}")
    if args.duration is None:
        args.duration = 2 if args.quick else 5
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.duration < 1 or args.runs < 1 or args.rate <= 0 or (args.memory is not None and args.memory < 1):
        parser.error("--duration, --runs and --memory must be at least 1, --rate positive")
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
    if args.upstream == "static" and nginx_binary() is None:
        print("--upstream static needs nginx: apt-get install -y nginx", file=sys.stderr)
        return 2
    _stop_on_sigterm()
    if taskset_prefix(CLIENT_CORE):
        os.sched_setaffinity(0, {CLIENT_CORE})  # the latency generator runs in this process
    else:
        print("note: taskset missing or one core only: nothing is pinned", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="fastgate-load-") as tmp:
        workdir = Path(tmp)
        if args.profile:
            print(profile_gateway(args.duration, workdir, args.profile == "stream", args.upstream))
            return 0
        if args.memory:
            print(render_memory(memory_run(args.memory, workdir, args.upstream)))
            return 0
        settings = Settings(
            targets=args.targets + args.peers,
            runs=args.runs,
            duration=args.duration,
            latency_duration=float(args.duration),
            rate=args.rate,
            upstream=args.upstream,
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
    if result["comparisons"]:
        print("\n" + "\n".join(f"- {line}" for line in result["comparisons"]))
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
