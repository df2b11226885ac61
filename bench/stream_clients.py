"""The stream generator of ``bench/streams.py``: N streams opened on a ramp, all read to their end.

One thread on ``epoll`` with raw non-blocking sockets, as ``bench/latency.py``'s open loop: the
request bytes are built once, stream ``i`` is due ``i * ramp / N`` seconds after the start, and
each read costs a ``recv``, a substring test and a list append; the answers are checked after the
run, not while it goes. Time to first event is counted from the stream's scheduled start (its
connect included), so a generator that fell behind, or a server slow to accept, is charged to the
stream it delayed. A stream is complete when its body, de-chunked, is byte for byte the body the
upstream sends. Run in a process of its own (``python -m bench.stream_clients``, as
``bench/streams.py`` does) so that its CPU is its own and is counted.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import resource
import select
import socket
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

#: The end of a chunked body (the last chunk), after the end of the chunk before it.
_LAST_CHUNK = b"\r\n0\r\n\r\n"
#: epoll waits whole milliseconds: a due stream is at most this late from the wait itself.
_POLL_MAX_S = 0.05


@dataclass
class StreamsResult:
    """What a run of the generator saw, per stream in order of their start."""

    #: Seconds from each stream's scheduled start to its first event (inf: none came).
    ttfe: list[float] = field(repr=False)
    #: Seconds from each stream's scheduled start to its last byte (inf: it did not end).
    total: list[float] = field(repr=False)
    complete: list[bool] = field(repr=False)
    #: Status codes of the answers (0: no answer head).
    statuses: dict[int, int] = field(default_factory=dict)
    #: Most streams open at once (connected or connecting, not yet ended).
    peak_open: int = 0
    #: How late the generator started streams after their scheduled time, p99, in ms.
    start_lag_p99_ms: float = 0.0
    #: The generator's own CPU seconds and the run's wall-clock seconds.
    cpu_s: float = 0.0
    elapsed_s: float = 0.0

    @property
    def completed(self) -> int:
        return sum(self.complete)


class _Stream:
    __slots__ = ("due", "ended", "first", "length", "parts", "received", "sock", "tail")

    def __init__(self, sock: socket.socket, due: float) -> None:
        self.sock = sock
        self.due = due
        self.first = math.inf
        self.ended = math.inf
        self.parts: list[bytes] = []
        self.tail = b""
        #: Bytes received, and where a Content-Length answer (an error) ends; -1: chunked or
        #: not known yet (its head has not all come).
        self.received = 0
        self.length = -1

    def ends_with(self, data: bytes) -> bool:
        """Take one read; whether the answer is complete with it (a chunked body's last chunk,
        or a Content-Length body's last byte)."""
        self.parts.append(data)
        self.received += len(data)
        if self.length < 0 and len(self.parts) <= 2:
            self.length = _sized_length(b"".join(self.parts))
        if self.length >= 0:
            return self.received >= self.length
        tail = self.tail + data[-len(_LAST_CHUNK) :]
        self.tail = tail[-len(_LAST_CHUNK) :]
        return tail.endswith(_LAST_CHUNK)


def _sized_length(raw: bytes) -> int:
    """The whole answer's length if its head is in ``raw`` and gives a Content-Length, else -1."""
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        return -1
    for line in raw[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return head_end + 4 + int(value)
    return -1


def dechunk(body: bytes) -> bytes | None:
    """A chunked body's content, or None when its framing is broken or it does not end."""
    out = []
    pos = 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(body[pos:eol].split(b";")[0], 16)
        except ValueError:
            return None
        if size == 0:
            return b"".join(out) if body[eol : eol + 4] == b"\r\n\r\n" else None
        start = eol + 2
        if body[start + size : start + size + 2] != b"\r\n":
            return None
        out.append(body[start : start + size])
        pos = start + size + 2


def judge(raw: bytes, expected: bytes) -> tuple[int, bool]:
    """An answer's status, and whether it is a 200 whose chunked body is ``expected``."""
    head_end = raw.find(b"\r\n\r\n")
    if head_end < 0:
        return 0, False
    try:
        status = int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0, False
    chunked = b"transfer-encoding: chunked" in raw[:head_end].lower()
    return status, status == 200 and chunked and dechunk(raw[head_end + 4 :]) == expected


def run(
    address: tuple[str, int],
    request: bytes,
    expected: bytes,
    count: int,
    ramp_s: float,
    limit_s: float,
) -> StreamsResult:
    """Open ``count`` streams evenly over ``ramp_s`` seconds and read them until each has ended
    or ``limit_s`` seconds have passed since the start."""
    poller = select.epoll(max(count, 1))
    streams: list[_Stream] = []
    by_fd: dict[int, _Stream] = {}
    connecting: set[int] = set()
    lags: list[float] = []
    interval = ramp_s / count if count else 0.0
    cpu0 = time.process_time()
    start = time.perf_counter() + 0.01
    deadline = start + limit_s
    peak = 0

    def finish(stream: _Stream) -> None:
        fd = stream.sock.fileno()
        poller.unregister(fd)
        del by_fd[fd]
        connecting.discard(fd)
        stream.sock.close()

    try:
        while len(streams) < count or by_fd:
            now = time.perf_counter()
            if now > deadline:
                break
            while len(streams) < count and now >= (due := start + len(streams) * interval):
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                stream = _Stream(sock, due)
                streams.append(stream)
                lags.append(now - due)
                err = sock.connect_ex(address)
                fd = sock.fileno()
                by_fd[fd] = stream
                if err == 0:
                    sock.send(request)  # the socket's empty buffer takes the whole request
                    poller.register(fd, select.EPOLLIN)
                elif err == errno.EINPROGRESS:
                    connecting.add(fd)
                    poller.register(fd, select.EPOLLOUT)
                else:
                    finish(stream)
                peak = max(peak, len(by_fd))
                now = time.perf_counter()
            wait = _POLL_MAX_S
            if len(streams) < count:
                wait = min(wait, max(0.0, start + len(streams) * interval - now))
            for fd, _ in poller.poll(wait):
                stream = by_fd[fd]
                if fd in connecting:
                    connecting.discard(fd)
                    if stream.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        finish(stream)
                        continue
                    stream.sock.send(request)
                    poller.modify(fd, select.EPOLLIN)
                    continue
                try:
                    data = stream.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    finish(stream)
                    continue
                if stream.first == math.inf and b"data: " in data:
                    stream.first = time.perf_counter()
                if stream.ends_with(data):
                    stream.ended = time.perf_counter()
                    finish(stream)
    finally:
        for stream in list(by_fd.values()):
            stream.sock.close()
        poller.close()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    statuses: Counter[int] = Counter()
    complete = []
    for stream in streams:
        status, whole = judge(b"".join(stream.parts), expected)
        statuses[status] += 1
        complete.append(whole and stream.ended < math.inf)
        if not whole:
            stream.ended = math.inf  # an error answer came whole; the stream did not
    lags.sort()
    return StreamsResult(
        ttfe=[s.first - s.due for s in streams],
        total=[s.ended - s.due for s in streams],
        complete=complete,
        statuses=dict(statuses),
        peak_open=peak,
        start_lag_p99_ms=1000 * lags[int(0.99 * (len(lags) - 1))] if lags else 0.0,
        cpu_s=cpu,
        elapsed_s=elapsed,
    )


def raise_open_files(wanted: int) -> int:
    """Raise this process's soft open-file limit towards ``wanted`` (at most its hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="on 127.0.0.1")
    parser.add_argument("--request", type=Path, required=True, help="the request's bytes, head and body")
    parser.add_argument(
        "--expected", type=Path, required=True, help="the stream's body as the upstream sends it"
    )
    parser.add_argument("--streams", type=int, required=True)
    parser.add_argument("--ramp", type=float, required=True, help="seconds over which the streams start")
    parser.add_argument("--limit", type=float, required=True, help="seconds the whole run may take")
    args = parser.parse_args(argv)
    raise_open_files(args.streams + 64)
    result = run(
        ("127.0.0.1", args.port),
        args.request.read_bytes(),
        args.expected.read_bytes(),
        args.streams,
        args.ramp,
        args.limit,
    )
    record = asdict(result)
    record["ttfe"] = [x if math.isfinite(x) else None for x in result.ttfe]
    record["total"] = [x if math.isfinite(x) else None for x in result.total]
    json.dump(record, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
