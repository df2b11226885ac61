"""What a hostile client costs the HTTP layer (issue 28), measured on the parsers and on a worker.

    python -m bench.http_hardening                 # all of it (a 32 MiB body, a 64 KiB head)
    python -m bench.http_hardening --body-mib 4    # a smaller body
    python -m bench.http_hardening --no-worker     # the parsers in process only

The figures are printed and written to ``bench/results/http_hardening.txt``.

- CPU of a request head sent one byte per read: fastgate's parser beside llhttp's (``httptools``)
  fed the same bytes the same way, and the upstream client's response parser on a response head.
- Memory of a chunked body sent in 1-byte chunks: the request parser's tracemalloc peak in
  process, and the peak RSS (``VmHWM``) a ``fastgate serve`` worker gains reading one such
  request from a socket.

Loopback only; every loop is bounded by the bytes it sends.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import httptools

from fastgate._transforms import RequestParser, ResponseParser

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
#: A chunk of one byte, as the wire carries it: six bytes for one.
ONE_BYTE_CHUNK = b"1\r\nx\r\n"
#: Bytes per read of the chunked body (one of uvloop's reads).
READ = 64 * 1024


def request_head(size: int) -> bytes:
    """A valid request head of about ``size`` bytes (within the parser's limits: lines of 1 KB)."""
    lines = [b"POST /v1/chat/completions HTTP/1.1", b"Host: 127.0.0.1"]
    line = 0
    while sum(len(x) + 2 for x in lines) + 1024 + 2 < size:
        lines.append(b"X-Pad-%03d: " % line + b"p" * (1024 - 13))
        line += 1
    return b"\r\n".join(lines) + b"\r\nContent-Length: 0\r\n\r\n"


def response_head(size: int) -> bytes:
    head = request_head(size).split(b"\r\n", 1)[1]
    return b"HTTP/1.1 200 OK\r\n" + head


def fastgate_request_feed() -> Callable[[bytes], object]:
    return RequestParser(64 * MIB).feed


def fastgate_response_feed() -> Callable[[bytes], object]:
    return ResponseParser().feed


class _Collect:
    """llhttp's callbacks, keeping what fastgate's parser keeps: a request's parts and its body."""

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.url = b""
        self.body: list[bytes] = []
        self.complete = 0

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.complete += 1


def llhttp_request_feed() -> Callable[[bytes], object]:
    return httptools.HttpRequestParser(_Collect()).feed_data


def one_byte_per_read(feed: Callable[[bytes], object], data: bytes) -> float:
    """CPU seconds to feed ``data`` one byte per call."""
    pieces = [data[i : i + 1] for i in range(len(data))]
    started = time.process_time()
    for piece in pieces:
        feed(piece)
    return time.process_time() - started


def chunked_request(body_size: int) -> Iterator[bytes]:
    """A POST whose body is ``body_size`` bytes in 1-byte chunks, in reads of READ bytes."""
    yield b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    per_read = READ // len(ONE_BYTE_CHUNK)
    block = ONE_BYTE_CHUNK * per_read
    whole, rest = divmod(body_size, per_read)
    for _ in range(whole):
        yield block
    yield ONE_BYTE_CHUNK * rest + b"0\r\n\r\n"


def parser_peak(body_size: int) -> int:
    """tracemalloc's peak, in bytes, while the request parser reads the chunked body."""
    parser = RequestParser(body_size)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        done = False
        for data in chunked_request(body_size):
            done = parser.feed(data)
        assert done and len(parser.body) == body_size
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def worker_peak_rss(body_size: int) -> tuple[int, int]:
    """(peak RSS before the request, peak RSS after it) of a ``fastgate serve`` worker."""
    port = _free_port()
    env = {**os.environ, "FASTGATE_MAX_BODY_BYTES": str(body_size), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastgate", "serve", "--port", str(port), "--busy-poll-us", "0"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=120)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the gateway did not start") from None
                time.sleep(0.1)
        with sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            before = _peak_rss(proc.pid)
            for data in chunked_request(body_size):
                sock.sendall(data)
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 405"), answer[:80]  # read whole, then routed
            return before, _peak_rss(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


#: The figures of the last run, for a closing note to name.
RESULTS = Path(__file__).parent / "results" / "http_hardening.txt"


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--body-mib", type=int, default=32, help="the chunked body's size (default 32)")
    args.add_argument("--head-kib", type=int, default=64, help="the trickled head's size (default 64)")
    args.add_argument("--no-worker", action="store_true", help="skip the worker's RSS")
    args.add_argument("--no-tracemalloc", action="store_true", help="skip the parser's tracemalloc peak")
    opts = args.parse_args()

    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    head = request_head(opts.head_kib * 1024)
    say(f"a {len(head):,}-byte request head, one byte per read (CPU seconds):")
    for name, feed in [("fastgate", fastgate_request_feed()), ("llhttp (httptools)", llhttp_request_feed())]:
        say(f"  {name:<20} {one_byte_per_read(feed, head):8.3f}")
    answer = response_head(opts.head_kib * 1024)
    cpu = one_byte_per_read(fastgate_response_feed(), answer)
    say(f"  {'upstream response':<20} {cpu:8.3f}  (a {len(answer):,}-byte response head)")

    size = opts.body_mib * MIB
    say(f"a {opts.body_mib} MiB body in 1-byte chunks ({size * len(ONE_BYTE_CHUNK) // MIB} MiB on the wire):")
    if not opts.no_tracemalloc:
        peak = parser_peak(size)
        say(f"  request parser, tracemalloc peak  {peak / MIB:9.1f} MiB  ({peak / size:.2f}x the body)")
    if not opts.no_worker:
        before, after = worker_peak_rss(size)
        grown = after - before
        say(
            f"  worker peak RSS {before / MIB:.1f} -> {after / MIB:.1f} MiB: "
            f"+{grown / MIB:.1f} MiB  ({grown / size:.2f}x the body)"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
