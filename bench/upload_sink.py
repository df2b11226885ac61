"""An upstream that takes uploads as fast as loopback allows: reads each request body (by
Content-Length or chunked), drops it, and answers with a small file object. ``bench/test_uploads.py``
runs it as a process of its own: ``python -m bench.upload_sink PORT``.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

_ANSWER = (
    b'{"id":"file-sink","object":"file","bytes":%d,"created_at":0,"filename":"upload.bin",'
    b'"purpose":"user_data","status":"processed"}'
)


class Sink(asyncio.Protocol):
    """One connection: a request head, then its body counted and dropped, then the answer."""

    def __init__(self) -> None:
        self.buf = b""
        self.remaining = -1  # -1: reading a head
        self.chunked = False
        self.size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.remaining > 0 and not self.chunked:
            take = min(self.remaining, len(data))
            self.remaining -= take
            self.size += take
            data = data[take:]
            if self.remaining == 0:
                self._answer()
            if not data:
                return
        self.buf += data
        while True:
            if self.remaining < 0:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head, self.buf = self.buf[:end].lower(), self.buf[end + 4 :]
                self.chunked = b"transfer-encoding: chunked" in head
                self.size = 0
                self.remaining = 0
                if not self.chunked:
                    start = head.find(b"content-length:")
                    self.remaining = int(head[start + 15 :].split(b"\r\n")[0]) if start >= 0 else 0
                    if self.remaining == 0:
                        self._answer()
                        continue
                    take = min(self.remaining, len(self.buf))
                    self.remaining -= take
                    self.size += take
                    self.buf = self.buf[take:]
                    if self.remaining == 0:
                        self._answer()
                        continue
                    return
            if not self.chunked:
                return
            line_end = self.buf.find(b"\r\n")
            if line_end < 0:
                return
            size = int(self.buf[:line_end].split(b";")[0], 16)
            if len(self.buf) < line_end + 2 + size + 2:
                return
            self.buf = self.buf[line_end + 2 + size + 2 :]
            self.size += size
            if size == 0:
                self._answer()

    def _answer(self) -> None:
        body = _ANSWER % self.size
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
            % (len(body), body)
        )
        self.remaining = -1


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Sink, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
