"""The floor under any Python gateway: a relay with no gateway in it, on uvloop's protocols.

Each client connection gets one kept-alive upstream connection; a POST goes on with its path, body,
Content-Type and Authorization, and its answer comes back through fastgate's own compiled HTTP
parsers and response-head writer (a whole body with a Content-Length, a stream re-framed chunk by
chunk as it arrives). No routing, options, validation, mapping, futures or tasks: every step is a
call from ``data_received``. Whatever a Python gateway on uvloop adds beyond this row is the price of
its features and its structure; whatever this row adds over nginx is the price of Python and
uvloop themselves.

    python bench/protocol_relay.py --port 8791 --upstream http://127.0.0.1:8788
"""

from __future__ import annotations

import argparse
import asyncio

import uvloop

from fastgate._transforms import RequestParser, ResponseParser, request_head, response_head
from fastgate.server.http_server import date_block

_MAX_BODY = 64 * 1024 * 1024
_STREAM_TYPE = "text/event-stream"
_LAST_CHUNK = b"0\r\n\r\n"


class Clock:
    """The Date header block, rewritten once a second rather than formatted per answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.date = b""
        self.tick()

    def tick(self) -> None:
        self.date = date_block()
        self.loop.call_later(1.0, self.tick)


class Upstream(asyncio.Protocol):
    """The upstream half of one client connection: answers go straight to the client's transport."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.parser = ResponseParser()
        self.transport: asyncio.Transport | None = None
        self.streaming = False
        self.parts: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.client.upstream_ready()

    def send(self, request: bytes) -> None:
        assert self.transport is not None
        self.parser.reset()
        self.streaming = False
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        chunks = parser.feed(data)
        client = self.client
        if parser.head_done and not self.streaming and (parser.content_type or "").startswith(_STREAM_TYPE):
            self.streaming = True
            client.write(response_head(parser.status, {}, _STREAM_TYPE, -1, True, client.clock.date))
        if self.streaming:
            for chunk in chunks:
                client.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            if parser.done:
                client.write(_LAST_CHUNK)
                client.answered()
            return
        self.parts.extend(chunks)
        if parser.done:
            body = b"".join(self.parts)
            self.parts.clear()
            head = response_head(parser.status, {}, parser.content_type, len(body), True, client.clock.date)
            client.write(head + body)
            client.answered()

    def connection_lost(self, exc: Exception | None) -> None:
        self.client.close()


class Client(asyncio.Protocol):
    """One client connection; its requests are relayed one at a time (pipelined ones wait)."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.clock = relay.clock
        self.parser = RequestParser(_MAX_BODY)
        self.transport: asyncio.Transport | None = None
        self.upstream: Upstream | None = None
        self.pending: bytes | None = None
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.upstream = Upstream(self)
        self.relay.loop.create_task(self._connect(self.upstream))

    async def _connect(self, upstream: Upstream) -> None:
        relay = self.relay
        try:
            await relay.loop.create_connection(lambda: upstream, relay.host, relay.port)
        except OSError:
            self.close()  # no upstream: the client sees its connection closed, not a hang

    def data_received(self, data: bytes) -> None:
        if self.parser.feed(data) and not self.busy:
            self._forward()

    def _forward(self) -> None:
        parser = self.parser
        headers = {"Content-Type": "application/json"}
        if "authorization" in parser.headers:
            headers["Authorization"] = parser.headers["authorization"]
        start = f"POST {parser.target} HTTP/1.1\r\nHost: {self.relay.host_header}\r\n"
        request = request_head(start, headers, len(parser.body), parser.body)
        self.busy = True
        upstream = self.upstream
        if upstream is not None and upstream.transport is not None:
            upstream.send(request)
        else:
            self.pending = request

    def upstream_ready(self) -> None:
        if self.pending is not None and self.upstream is not None:
            request, self.pending = self.pending, None
            self.upstream.send(request)

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def answered(self) -> None:
        self.busy = False
        self.parser.reset()
        if self.parser.buffered and self.parser.feed(b""):
            self._forward()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


class Relay:
    def __init__(self, loop: asyncio.AbstractEventLoop, upstream: str) -> None:
        authority = upstream.partition("://")[2].rstrip("/")
        host, _, port = authority.rpartition(":")
        self.loop = loop
        self.host, self.port, self.host_header = host, int(port), authority
        self.clock = Clock(loop)


async def serve(port: int, upstream: str) -> None:
    loop = asyncio.get_running_loop()
    relay = Relay(loop, upstream)
    server = await loop.create_server(lambda: Client(relay), "127.0.0.1", port, backlog=4096)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8788")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
