"""The latency generators of ``bench/load.py``: one request at a time, and requests on a fixed
schedule (open loop), each bounded in count and time.

The raw-socket generators build the request bytes once and read answers with a few string
searches: a client library's tens of µs per request would be added to every server's figure, and
at a fixed rate they add to the tail too (the aiohttp open-loop client's own p99 was 1.0-1.4 ms
against an upstream that answers in 40 µs).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import select
import socket
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import aiohttp

#: Longest wait for one request; a request that takes longer counts as infinitely slow.
REQUEST_TIMEOUT_S = 5.0
#: The open-loop generator sleeps until this long before a send is due, then polls: a sleep
#: overshoots by the kernel's timer slack (50 µs), and that lateness would count as latency.
SPIN_S = 0.0002


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


# ---------------------------------------------------------------- one at a time


def _sends(deadline: float, max_requests: int, latencies: list[float]) -> Iterator[float]:
    """The send times of a closed loop: the next request goes out when the caller has recorded
    the previous one's latency, until ``deadline`` or ``max_requests``."""
    while len(latencies) < max_requests:
        t0 = time.perf_counter()
        if t0 >= deadline:
            return
        yield t0


# ---------------------------------------------------------------- a client library


def _client_session(limit: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        skip_auto_headers=("User-Agent",),
    )


async def _one(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> bool:
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            await resp.read()
            return bool(resp.status == 200)
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


def closed_loop(
    url: str, headers: dict[str, str], body: bytes, duration: float, max_requests: int = 200_000
) -> LatencyResult:
    """One request at a time from the aiohttp client (on uvloop): each sent when the previous
    one's last byte has arrived."""
    coro = _closed_loop(url, headers, body, duration, max_requests)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _closed_loop(
    url: str, headers: dict[str, str], body: bytes, duration: float, max_requests: int
) -> LatencyResult:
    headers = {"Content-Type": "application/json", **headers}
    latencies: list[float] = []
    async with _client_session(limit=1) as session:
        for _ in range(5):  # open the connection and warm the path before timing
            await _one(session, url, body, headers)
        start = time.perf_counter()
        for t0 in _sends(start + duration, max_requests, latencies):
            ok = await _one(session, url, body, headers)
            latencies.append(time.perf_counter() - t0 if ok else math.inf)
    return LatencyResult(latencies, elapsed_s=time.perf_counter() - start)


# ---------------------------------------------------------------- raw sockets


def raw_request(url: str, headers: dict[str, str], body: bytes) -> tuple[tuple[str, int], bytes]:
    """The address to connect to and the whole request's bytes (a POST of ``body``)."""
    parts = urllib.parse.urlsplit(url)
    fields = {"Host": parts.netloc, "Content-Type": "application/json", **headers}
    fields["Content-Length"] = str(len(body))
    head = f"POST {parts.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (parts.hostname or "127.0.0.1", parts.port or 80), (head + "\r\n").encode() + body


class Answer(NamedTuple):
    status: int
    #: Where the answer ends in the buffer it was parsed from.
    end: int
    #: The server said it closes the connection after this answer.
    closes: bool


def parse_answer(buf: bytes) -> Answer | None:
    """The HTTP/1.1 answer at the start of ``buf``, or None while it is incomplete
    (Content-Length or chunked bodies; no trailers)."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = buf[:head_end].split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    closes = fields.get(b"connection", b"").lower() == b"close"
    body_start = head_end + 4
    if b"content-length" in fields:
        end = body_start + int(fields[b"content-length"])
        return Answer(status, end, closes) if len(buf) >= end else None
    last = buf.find(b"\r\n0\r\n\r\n", body_start - 2)  # chunked: up to the last chunk
    return None if last < 0 else Answer(status, last + 7, closes)


def _raw_answer(sock: socket.socket, buf: bytes) -> tuple[int, bytes]:
    """Read one answer from a blocking socket: its status and the bytes after it."""
    while (answer := parse_answer(buf)) is None:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed mid-answer")
        buf += data
    return answer.status, buf[answer.end :]


def raw_closed_loop(
    url: str, headers: dict[str, str], body: bytes, duration: float, max_requests: int = 200_000
) -> LatencyResult:
    """``closed_loop`` from a blocking socket: between two requests the client spends a few µs
    (a client library spends tens, and that lets the server's core go idle and cold between
    requests, which adds to every server's figure)."""
    address, request = raw_request(url, headers, body)
    latencies: list[float] = []
    with socket.create_connection(address, timeout=REQUEST_TIMEOUT_S) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b""
        for _ in range(20):  # warm the path before timing
            sock.sendall(request)
            _, buf = _raw_answer(sock, buf)
        start = time.perf_counter()
        for t0 in _sends(start + duration, max_requests, latencies):
            sock.sendall(request)
            status, buf = _raw_answer(sock, buf)
            latencies.append(time.perf_counter() - t0 if status == 200 else math.inf)
    return LatencyResult(latencies, elapsed_s=time.perf_counter() - start)


class _Pending:
    """A connection of the open loop and the request it is waiting on."""

    __slots__ = ("buf", "index", "since", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.index = -1
        self.since = 0.0


def open_loop(
    url: str, headers: dict[str, str], body: bytes, rate: float, duration: float, max_inflight: int = 512
) -> LatencyResult:
    """Requests on a fixed schedule (``rate`` per second), whether or not earlier ones answered,
    each on a kept-alive connection that is free (a new one when none is, up to ``max_inflight``).

    Latency is counted from the scheduled send time, so a server stall is charged to every
    request it delays (no coordinated omission), and so is the generator's own lateness; a
    request sent early counts from its actual send. One thread, ``epoll``: an answer is timed
    when its last byte is read.
    """
    address, request = raw_request(url, headers, body)
    count = max(1, int(rate * duration))
    interval = 1.0 / rate
    latencies = [math.inf] * count
    send_lag = [0.0] * count
    poller = select.epoll()
    conns: dict[int, _Pending] = {}  # every open connection, by file descriptor
    free: list[_Pending] = []
    waiting: set[_Pending] = set()

    def connect(warm_up: int = 0) -> _Pending:
        sock = socket.create_connection(address, timeout=REQUEST_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Pending(sock)
        try:
            for _ in range(warm_up):
                sock.sendall(request)
                _, conn.buf = _raw_answer(sock, conn.buf)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        conns[sock.fileno()] = conn
        poller.register(sock, select.EPOLLIN)
        return conn

    def drop(conn: _Pending) -> None:
        """Closed or broken: the request it carried failed (its latency stays inf)."""
        del conns[conn.sock.fileno()]
        waiting.discard(conn)
        if conn in free:
            free.remove(conn)
        poller.unregister(conn.sock)
        conn.sock.close()

    def read(conn: _Pending) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or conn not in waiting:  # closed, or bytes nobody asked for
            drop(conn)
            return
        conn.buf += data
        answer = parse_answer(conn.buf)
        if answer is None:
            return
        took = time.perf_counter() - conn.since
        if answer.status == 200 and took <= REQUEST_TIMEOUT_S:
            latencies[conn.index] = took
        conn.buf = conn.buf[answer.end :]
        waiting.discard(conn)
        if answer.closes:
            drop(conn)
        else:
            free.append(conn)

    def send(i: int, due: float) -> None:
        now = time.perf_counter()
        send_lag[i] = max(0.0, now - due)
        for fd, _ in poller.poll(0):  # a connection the server closed while it was free
            read(conns[fd])
        try:
            if free:
                conn = free.pop()
            elif len(conns) < max_inflight:
                conn = connect()
            else:
                return  # every connection is waiting: this request fails
        except OSError:
            return
        conn.index, conn.since = i, min(now, due)
        try:
            # Into an empty socket buffer: taken whole, else the request is dropped as failed
            # rather than left half-sent.
            sent = conn.sock.send(request)
        except OSError:
            sent = 0
        if sent < len(request):
            drop(conn)
            return
        waiting.add(conn)

    try:
        with contextlib.suppress(OSError):  # a target that fails the warm-up fails the run's requests
            free.append(connect(warm_up=5))
        start = time.perf_counter() + 0.01
        end = start + count * interval + REQUEST_TIMEOUT_S
        i = 0
        while i < count or waiting:
            now = time.perf_counter()
            if now > end:
                break
            due = start + i * interval if i < count else end
            if i < count and now >= due:
                send(i, due)
                i += 1
                continue
            wait = due - now - SPIN_S
            if waiting:
                # epoll waits whole milliseconds; less than one is polled.
                whole_ms = int(wait * 1000)
                for fd, _ in poller.poll(whole_ms / 1000 if whole_ms > 0 else 0):
                    read(conns[fd])
            elif wait > 0:
                time.sleep(wait)
    finally:
        for conn in conns.values():
            conn.sock.close()
        poller.close()
    return LatencyResult(latencies, send_lag, elapsed_s=count * interval)
