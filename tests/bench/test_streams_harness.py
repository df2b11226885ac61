"""bench/streams.py kept honest: the paced upstream, the stream generator and one small run of the
whole benchmark, against real loopback servers (the compiled upstream, ``fastgate mock`` for the
capture, ``fastgate serve``), in bounded time."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import resource
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import load, streams
from bench.latency import raw_request
from bench.load import Processes
from bench.stream_clients import StreamsResult, dechunk, judge, run
from tests.support.sse import data_payloads

#: The test upstream's stream: 20 content events, the finish event and [DONE], in 6 writes.
PACED_WRITES = 5
GAPS_MS = (50, 60)


def sse_body(events: int) -> bytes:
    """An OpenAI-shaped stream of ``events`` content chunks, then the finish chunk and [DONE]."""
    chunk = '{"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"w%d "}}]}'
    body = [b"data: " + (chunk % i).encode() + b"\n\n" for i in range(events)]
    body.append(
        b'data: {"object":"chat.completion.chunk","choices":[{"index":0,"finish_reason":"stop"}]}\n\n'
    )
    return b"".join(body) + b"data: [DONE]\n\n"


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler (apt-get install build-essential): the paced upstream is compiled")
    return streams.build_upstream(tmp_path_factory.mktemp("paced"))


@pytest.fixture
def upstream(binary: Path, tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """The paced upstream replaying a 22-event stream: the head and first event, then 5 writes."""
    body = sse_body(20)
    (tmp_path / "body.sse").write_bytes(body)
    port = load.free_port()
    low, high = GAPS_MS
    argv = [str(binary), str(port), str(tmp_path / "body.sse"), str(PACED_WRITES), str(low), str(high), "7"]
    with Processes(tmp_path) as procs:
        procs.start("paced", argv, core=None)
        streams.wait_listening(procs, "paced", port)
        yield port, body


def stream_request(port: int) -> bytes:
    return raw_request(f"http://127.0.0.1:{port}/v1/chat/completions", {}, b'{"stream":true}')[1]


def read_stream(port: int) -> tuple[bytes, list[float]]:
    """One stream read from a blocking socket: the raw answer, and when each read came (the
    first from the send)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(stream_request(port))
        sent = time.perf_counter()
        raw, times = b"", []
        while not raw.endswith(b"\r\n0\r\n\r\n"):
            data = sock.recv(65536)
            assert data, "the upstream closed the stream midway"
            times.append(time.perf_counter() - sent)
            raw += data
    return raw, times


def stats(port: int) -> dict[str, int]:
    return streams.upstream_stats(port)


def test_the_upstream_paces_each_write(upstream: tuple[int, bytes]) -> None:
    port, body = upstream
    raw, times = read_stream(port)
    status, whole = judge(raw, body)
    assert (status, whole) == (200, True)
    assert b"content-type: text/event-stream" in raw.split(b"\r\n\r\n")[0].lower()
    # The head and the first event at once, then one read per paced write, each after its gap
    # (epoll's millisecond ticks let a gap come a little short, never by a whole millisecond).
    assert len(times) == 1 + PACED_WRITES
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= (GAPS_MS[0] - 1) / 1000 for gap in gaps), gaps
    assert times[-1] < 5  # loose: a shared machine may stall any process
    # Each write is whole events: the first carries only the first, the last the end and [DONE].
    events = data_payloads(dechunk(raw.split(b"\r\n\r\n", 1)[1]) or b"")
    assert events == data_payloads(body) and events[-1] == b"[DONE]"


def test_the_upstream_counts_streams_and_the_most_open_at_once(upstream: tuple[int, bytes]) -> None:
    port, _ = upstream
    request = stream_request(port)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    try:
        for sock in socks:
            sock.sendall(request)
        socks[2].recv(65536)  # the third is closed after its first event, the others read whole
        socks[2].close()
        for sock in socks[:2]:
            raw = b""
            while not raw.endswith(b"\r\n0\r\n\r\n"):
                raw += sock.recv(65536)
    finally:
        for sock in socks:
            sock.close()
    # By now the upstream has read the third one's close (its streams took 250 ms more).
    assert stats(port) == {"started": 3, "finished": 2, "cut": 1, "active": 0, "peak": 3}
    assert stats(port)["peak"] == 0  # the peak starts again from the streams open now


def test_the_generator_reads_every_stream_whole(upstream: tuple[int, bytes]) -> None:
    port, body = upstream
    result = run(("127.0.0.1", port), stream_request(port), body, 40, 0.2, 20)
    assert result.completed == 40 and result.statuses == {200: 40}
    assert all(0 < first < total < 20 for first, total in zip(result.ttfe, result.total, strict=True))
    # A stream lasts its five gaps at least; all 40 started within the ramp, before any ended.
    assert min(result.total) >= PACED_WRITES * (GAPS_MS[0] - 1) / 1000
    assert result.peak_open == 40
    assert stats(port)["peak"] == 40
    assert 0 < result.cpu_s < result.elapsed_s


def test_the_generator_tells_broken_streams_from_whole_ones() -> None:
    """A server that answers every other request with a 503, and the others with one event and a
    close midway: no stream is complete, and only the 200s have a first event."""
    body = sse_body(3)
    served = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        served += 1
        if served % 2:
            writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 2\r\n\r\n{}")
        else:
            event = body.split(b"\n\n")[0] + b"\n\n"
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            writer.write(head + b"%x\r\n%b\r\n" % (len(event), event))
        await writer.drain()
        writer.close()

    async def main() -> StreamsResult:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            return await asyncio.to_thread(run, ("127.0.0.1", port), stream_request(port), body, 10, 0.1, 10)

    result = asyncio.run(main())
    assert result.completed == 0 and result.statuses == {503: 5, 200: 5}
    assert sum(math.isfinite(t) for t in result.ttfe) == 5
    assert all(math.isinf(t) for t in result.total)


def test_chunked_bodies_are_read_and_judged() -> None:
    body = b"data: a\n\ndata: [DONE]\n\n"
    chunked = b"9\r\ndata: a\n\n\r\ne;ext=1\r\ndata: [DONE]\n\n\r\n0\r\n\r\n"
    assert dechunk(chunked) == body
    assert dechunk(chunked[:-2]) is None  # no end
    assert dechunk(b"zz\r\n") is None and dechunk(b"3\r\nabcd\r\n0\r\n\r\n") is None
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert judge(head + chunked, body) == (200, True)
    assert judge(head + chunked, body + b"x") == (200, False)
    assert judge(b"HTTP/1.1 200 OK\r\nContent-Length: 24\r\n\r\n" + body, body) == (200, False)
    assert judge(b"HTTP/1.1 502 Bad Gateway\r\n\r\n", body) == (502, False)
    assert judge(b"HTTP/1.1 200 OK\r\n", body) == (0, False)


def test_descriptors_bound_the_streams_a_server_can_hold() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    proxy = streams.Server("fastgate", 1, b"", 1, fds_per_stream=2)
    direct = streams.Server("direct", 1, b"", 1, fds_per_stream=1)
    if hard != resource.RLIM_INFINITY:
        assert streams.capacity(proxy) == (hard - streams.FD_RESERVE) // 2
        assert streams.capacity(direct) == hard - streams.FD_RESERVE
    # A run may last its ramp, twice a stream's paced length, and the slack.
    assert streams.run_limit(1.0, (50, 100)) == 1.0 + 2 * load.STREAM_CHUNKS * 0.1 + streams.RUN_SLACK_S


def test_the_table_sets_each_path_beside_the_direct_one() -> None:
    def row(p99: float, complete: bool = True) -> dict[str, float]:
        figures = dict.fromkeys(streams.FIGURES_KEYS, 1.0)
        figures.update(streams=200, completed=200 if complete else 199, held=180, ttfe_p99_ms=p99)
        return {**figures, "runs": 1, "all_complete": complete}

    table = streams.render({"200/direct": row(2.0), "200/fastgate": row(5.5, complete=False)})
    direct, gateway = ([c.strip() for c in line.split("|")[1:-1]] for line in table.splitlines()[2:])
    assert direct[:4] == ["200", "direct", "200/200", "180"] and direct[6] == ""
    assert gateway[:3] == ["200", "fastgate", "199/200 !"] and gateway[5:7] == ["5.50", "+3.50"]


def test_arguments() -> None:
    args = streams.parse_args([])
    assert args.streams == list(streams.LEVELS) and args.targets == list(streams.TARGETS)
    assert args.gaps == streams.GAP_MS and args.runs == 1
    args = streams.parse_args(
        ["--streams", "200, 500", "--targets", "fastgate", "--gaps", "500,1000", "--gateway-flag=--workers=1"]
    )
    assert (args.streams, args.targets, args.gaps, args.gateway_flag) == (
        [200, 500],
        ["fastgate"],
        (500, 1000),
        ["--workers=1"],
    )
    for bad in (["--streams", "x"], ["--targets", "haproxy"], ["--gaps", "100,50"], ["--runs", "0"]):
        with pytest.raises(SystemExit):
            streams.parse_args(bad)


@pytest.mark.timeout(300)
def test_a_small_run_through_the_gateway_and_directly(tmp_path: Path) -> None:
    """The whole benchmark at 200 streams: the mock's stream captured, replayed paced, read whole
    through one fastgate worker and directly, with every figure the table shows."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler (apt-get install build-essential)")
    settings = streams.Settings(levels=[200], targets=["direct", "fastgate"], ramp_s=0.5)
    result = streams.benchmark(settings, tmp_path)
    direct, gateway = result["medians"]["200/direct"], result["medians"]["200/fastgate"]
    for figures in (direct, gateway):
        assert figures["all_complete"] and figures["completed"] == 200
        assert 0 < figures["ttfe_p50_ms"] <= figures["ttfe_p99_ms"] < math.inf
        # Paced: 20 writes at least 50 ms apart.
        assert figures["total_p99_s"] >= load.STREAM_CHUNKS * 0.049
        assert 0 < figures["held"] <= 200 and figures["cpu_us_per_stream"] > 0
    # The streams overlapped (a ramp of 0.5 s, streams of 1 s or more): most were open at once.
    assert direct["held"] == 200 and gateway["held"] > 100
    assert gateway["rss_peak_mb"] >= gateway["rss_before_mb"] > 20  # a Python worker
    raw = result["raw"]["200/fastgate"][0]
    assert raw["statuses"] == {"200": 200} and raw["upstream_cut"] == 0
    lines = result["table"].splitlines()
    assert [line.split("|")[2].strip() for line in lines[2:]] == ["direct", "fastgate"]
    json.dumps(load._json_safe(result), allow_nan=False)  # the raw record is written as JSON


def test_the_captured_stream_is_the_mocks(tmp_path: Path) -> None:
    with Processes(tmp_path) as procs:
        body = streams.capture_stream(procs)
        assert procs.procs["mock"].poll() is not None, "the mock outlived the capture"
    events = data_payloads(body)
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert sum("content" in c["choices"][0]["delta"] for c in chunks[1:]) == load.STREAM_CHUNKS
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
