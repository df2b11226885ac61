"""The gateway's whole per-request Python path in one process, without sockets.

A client connection and a pooled upstream connection are driven through in-memory transports:
each request goes through the compiled request parser, the options and routing, the provider's
request building, the upstream client's response parsing, the mapping and the response writing:
everything ``fastgate serve`` does but the kernel's socket work (which ``bench/load.py``
measures). A single process with no I/O is steady enough on a noisy machine to budget and to
profile.

    python -m bench.inproc [--provider openai|anthropic] [--stream [--paced]] [--config JSON]
                           [-n 20000] [--profile] [--observability off|defaults|traced]

``--paced`` sends a stream as a model does: one event per read, each read on a loop turn after the
gateway has handled the one before (``bench/streams.py``'s shape), instead of in two reads.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import time
from typing import Any

import msgspec

from bench.load import chat_body
from fastgate.gateway.app import App, make_app, tune_collector
from fastgate.server.connection import Connection
from fastgate.server.http_server import HTTPServer
from fastgate.settings import Settings
from fastgate.upstream.connection import Connection as UpstreamConnection
from fastgate.upstream.pool import split_url

UPSTREAM = "http://127.0.0.1:9/v1"
STREAM_CHUNKS = 20


def client_request(body: bytes, provider: str, *fields: str) -> bytes:
    """The request the bench's client sends; ``fields``: more header lines (``name: value``)."""
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8787\r\nContent-Type: application/json\r\n"
        f"x-portkey-provider: {provider}\r\nx-portkey-custom-host: {UPSTREAM}\r\n"
        + "".join(f"{field}\r\n" for field in fields)
        + f"Authorization: Bearer sk-bench-key\r\nUser-Agent: bench\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _http(status_line: str, content_type: str, body: bytes) -> bytes:
    return (
        f"{status_line}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        "x-request-id: req_bench\r\nopenai-processing-ms: 3\r\n\r\n"
    ).encode() + body


def _chunked(pieces: list[bytes]) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def openai_answer(stream: bool) -> list[bytes]:
    """What an OpenAI-compatible upstream sends, in the reads the gateway receives it."""
    if not stream:
        answer = {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": "mock-small",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "The fox jumps over the dog, briefly."},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 230, "completion_tokens": 9, "total_tokens": 239},
        }
        return [_http("HTTP/1.1 200 OK", "application/json", msgspec.json.encode(answer))]
    events = []
    for i in range(STREAM_CHUNKS):
        chunk = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "mock-small",
            "choices": [{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}],
        }
        events.append(b"data: " + msgspec.json.encode(chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    return [head + _chunked(events[:1])[:-5], _chunked(events[1:])]


def anthropic_frames(deltas: int) -> list[bytes]:
    """A whole text answer as Anthropic's Messages API streams it, one SSE frame per event."""
    events: list[tuple[str, dict[str, object]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_bench",
                    "type": "message",
                    "role": "assistant",
                    "model": "claude-bench",
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": 230, "output_tokens": 1},
                },
            },
        ),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
    ]
    for i in range(deltas):
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": f"word{i} "},
        }
        events.append(("content_block_delta", delta))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": deltas},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return [f"event: {name}\ndata: ".encode() + msgspec.json.encode(data) + b"\n\n" for name, data in events]


def anthropic_answer(stream: bool) -> list[bytes]:
    if not stream:
        answer = {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": "claude-bench",
            "content": [{"type": "text", "text": "The fox jumps over the dog, briefly."}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 230, "output_tokens": 9},
        }
        return [_http("HTTP/1.1 200 OK", "application/json", msgspec.json.encode(answer))]
    frames = anthropic_frames(STREAM_CHUNKS)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    return [head + _chunked(frames[:2])[:-5], _chunked(frames[2:])]


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class ClientTransport(_Transport):
    """Keeps the bytes the gateway answers with; ``answered`` resolves with an answer's last write
    (a whole answer is one write; a chunked one ends with the last chunk)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.last = b""
        self.answered: asyncio.Future[None] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data)
        self.written += len(data)
        self.last = data
        answered = self.answered
        if answered is not None and not answered.done() and self.complete(data):
            answered.set_result(None)

    def complete(self, data: bytes) -> bool:
        return data.endswith(b"0\r\n\r\n") or b"\r\nContent-Length: " in data


class UpstreamTransport(_Transport):
    """An upstream that answers every request with the same reads: all on the next loop turn,
    or ``paced``, each on the turn after the one before (the gateway's task handles one read
    before the next comes, as with a model's events tens of milliseconds apart)."""

    def __init__(self, protocol: UpstreamConnection, reads: list[bytes], paced: bool = False) -> None:
        super().__init__()
        self.protocol = protocol
        self.reads = reads
        self.paced = paced
        self.loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.paced:
            self.loop.call_soon(self._deliver, 0)
            return
        for piece in self.reads:
            self.loop.call_soon(self.protocol.data_received, piece)

    def _deliver(self, index: int) -> None:
        self.protocol.data_received(self.reads[index])
        if index + 1 < len(self.reads):
            self.loop.call_soon(self._deliver, index + 1)


def one_event_per_read(reads: list[bytes]) -> list[bytes]:
    """A chunked stream's reads re-cut to one chunk (one SSE event) each, the head with the first."""
    whole = b"".join(reads)
    head_end = whole.index(b"\r\n\r\n") + 4
    out = [whole[:head_end]]
    pos = head_end
    while True:
        eol = whole.index(b"\r\n", pos)
        size = int(whole[pos:eol], 16)
        end = eol + 2 + size + 2
        if size == 0:
            out[-1] += whole[pos:end]
            return out
        out.append(whole[pos:end])
        pos = end


class Bench:
    """One gateway, one client connection, one pooled upstream connection."""

    def __init__(self, app: App, provider: str, stream: bool, config: str = "", paced: bool = False) -> None:
        self.app = app
        answer = anthropic_answer if provider == "anthropic" else openai_answer
        self.reads = answer(stream)
        self.paced = paced
        if paced:
            reads = one_event_per_read(self.reads)
            self.reads = [reads[0] + reads[1], *reads[2:]]  # the head comes with the first event
        fields = [f"x-portkey-config: {config}"] if config else []
        self.request = client_request(chat_body(stream), provider, *fields)
        self.server = HTTPServer(app.dispatch, max_body=app.settings.max_body_bytes)
        self.client = ClientTransport()
        self.conn = Connection(self.server)

    async def start(self) -> None:
        await self.app.startup()
        self.server.loop = asyncio.get_running_loop()
        self.server.date = b"Date: Sun, 22 Nov 2026 00:00:00 GMT\r\n\r\n"
        self.conn.connection_made(self.client)
        pool = self.app.gateway.pool
        assert pool is not None
        origin, _ = split_url(UPSTREAM, {})
        upstream = UpstreamConnection(pool, origin)
        upstream.connection_made(UpstreamTransport(upstream, self.reads, self.paced))
        pool.put(upstream)

    async def one(self) -> None:
        self.client.answered = answered = asyncio.get_running_loop().create_future()
        self.conn.data_received(self.request)
        await answered

    async def run(self, n: int) -> float:
        """Seconds of CPU per request over ``n`` requests."""
        start = time.process_time()
        for _ in range(n):
            await self.one()
        return (time.process_time() - start) / n

    async def stop(self) -> None:
        """The client goes away (its connection's task ends), then the app's services close."""
        task = self.conn.task
        self.conn.connection_lost(None)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.app.cleanup()

    def check(self) -> None:
        last = self.client.last
        assert b"HTTP/1.1 200" in last or last.endswith(b"0\r\n\r\n"), last[:300]


#: What observability is on (``--observability``): everything off, the defaults (metrics, the
#: access log, the answer headers), the defaults and traces of every request.
OBSERVABILITY: dict[str, dict[str, Any]] = {
    "off": {"metrics": False, "access_log": None, "response_headers": False},
    "defaults": {},
    "traced": {"tracing": True},
}


class CountingExporter:
    """An in-process span exporter that counts the spans it is handed and keeps none (the SDK's
    in-memory one keeps every span, a heap that grows with the run and that the garbage
    collector then walks on the request path)."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def new_bench(
    provider: str = "openai",
    stream: bool = False,
    observability: str = "defaults",
    config: str = "",
    paced: bool = False,
) -> Bench:
    """A gateway with the default settings, or with observability as ``OBSERVABILITY`` says; the
    access log goes to /dev/null, and traces to ``CountingExporter``. ``config``: sent as
    ``x-portkey-config`` (the provider headers complete it)."""
    settings = Settings(**{"port": 0, "access_log": os.devnull, **OBSERVABILITY[observability]})
    if not settings.tracing:
        return Bench(make_app(settings), provider, stream, config, paced)
    from fastgate.observability.tracing import Tracer

    app = make_app(msgspec.structs.replace(settings, tracing=False))
    assert app.observability is not None
    # Installed before the stages read it: the stage is built with the tracer it uses.
    app.observability.tracer = Tracer(1.0, exporter=CountingExporter())
    app.gateway.pipeline = app._pipeline()
    return Bench(app, provider, stream, config, paced)


async def _main(args: argparse.Namespace) -> None:
    bench = new_bench(args.provider, args.stream, args.observability, args.config, args.paced)
    await bench.start()
    # As ``serve`` does once it listens: without the freeze a full collection walks start-up's
    # heap (the tracing SDK's modules too), and whether one falls inside a measured run is chance.
    tune_collector()
    try:
        await _measure(bench, args)
    finally:
        await bench.stop()


async def _measure(bench: Bench, args: argparse.Namespace) -> None:
    await bench.run(500)
    bench.check()
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        await bench.run(args.n)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        return
    per = min([await bench.run(args.n) for _ in range(args.repeat)])
    kind = ("paced stream" if args.paced else "stream") if args.stream else "request"
    print(f"{args.provider}: {per * 1e6:.1f} µs CPU per {kind} (best of {args.repeat} runs of {args.n})")


def add_request_options(parser: argparse.ArgumentParser) -> None:
    """The request the path tools (this one, ``instructions``, ``opcodes``) send: its provider,
    streamed or not, a config, and what observability is on."""
    parser.add_argument("--provider", default="openai", choices=("openai", "anthropic"))
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--config", default="", help="a config sent as x-portkey-config")
    parser.add_argument("--observability", choices=tuple(OBSERVABILITY), default="defaults")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_request_options(parser)
    parser.add_argument("--paced", action="store_true", help="with --stream: one event per read")
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.paced and not args.stream:
        parser.error("--paced goes with --stream")
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
