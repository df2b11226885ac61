"""The access log: one line per request, JSON or text, to stdout or a file.

A JSON line is written by compiled code straight into the log's buffer (``LogLines``,
``kernels/observe.pxi``); the buffer is written out at most once every ``FLUSH_S`` seconds or when
it fills, so a busy worker pays neither a Python object per line nor a write system call per
request. It never holds a secret: the gateway key appears by name, the client by address, and the
two free-form values a client chooses (model and trace id) pass through the log's redaction
first, once per distinct value.

Fields: ``time`` (the answer's end, UTC, ms), ``trace_id``, ``route``, ``provider``, ``model``,
``status``, ``attempts``, ``option``, ``cache``, ``input_tokens``, ``output_tokens``,
``cached_tokens``, ``cost`` (USD or null), ``ttfb_ms``, ``total_ms``, ``overhead_ms``, ``stream``,
``client``, ``key``, and when there is one, ``error`` (OpenAI's error type) and ``otel_trace_id``.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import time
from typing import IO

from fastgate._transforms import LogLines, RequestRecord
from fastgate.observability.logs import redact
from fastgate.settings import LogFormat

FLUSH_S = 1.0
#: Bytes of lines written out at once when they come faster than ``FLUSH_S``.
BUFFER = 64 * 1024


def safe(value: str) -> str:
    """A client-chosen value as the log shows it: any key in it redacted, cut at 200 characters."""
    return redact(value)[:200]


def _ms(seconds: float) -> str:
    return f"{max(seconds, 0.0) * 1000:.3f}"


def text_line(rec: RequestRecord, wall: float, trace_id: str, client: str, key: str) -> bytes:
    """``key=value`` pairs in a fixed order (logfmt), for people reading a terminal."""
    total = rec.end - rec.start
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall % 1 * 1000):03d}Z"
    cost = "-" if rec.cost is None else f"{rec.cost:.8g}"
    ttfb = _ms(rec.first_byte - rec.start) if rec.first_byte else "0.000"
    line = (
        f"{stamp} {rec.status} {rec.route} trace={trace_id or '-'} provider={rec.provider or '-'} "
        f"model={safe(rec.model) or '-'} attempts={rec.attempts} option={rec.option or '-'} "
        f"cache={rec.cache or '-'} tokens={rec.input_tokens}/{rec.output_tokens}/{rec.cached_tokens} "
        f"cost={cost} ttfb_ms={ttfb} total_ms={_ms(total)} overhead_ms={_ms(total - rec.upstream_s)} "
        f"stream={'yes' if rec.streamed else 'no'} client={client or '-'} key={key or '-'}"
    )
    if rec.error:
        line += f" error={rec.error}"
    return (line + "\n").encode("utf-8", "replace")


class AccessLog:
    def __init__(self, fmt: LogFormat = "json", path: str | None = None) -> None:
        if fmt not in ("json", "text"):
            raise ValueError(f"log format must be json or text, not {fmt!r}")
        self.json = fmt == "json"
        self.path = path
        self.out: IO[bytes]
        if path is None:
            self.out = sys.stdout.buffer
        else:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            self.out = io.FileIO(fd, "a")
        #: JSON lines: the observability stage writes them here itself.
        self.lines = LogLines(safe)
        self.text = bytearray()

    def write(
        self, rec: RequestRecord, wall: float, trace_id: str, given: bool, client: str, key: str
    ) -> None:
        """One request's line (``wall``: its end in Unix seconds; ``given``: the client chose
        the trace id)."""
        if self.json:
            size = self.lines.add(rec, wall, trace_id, given, client, key)
        else:
            self.text += text_line(rec, wall, safe(trace_id) if given else trace_id, client, key)
            size = len(self.text)
        if size >= BUFFER:
            self.flush()

    async def flush_forever(self) -> None:
        """Write the lines out every ``FLUSH_S`` (a buffer that fills is written at once)."""
        while True:
            await asyncio.sleep(FLUSH_S)
            self.flush()

    def flush(self) -> None:
        if self.json:
            data = self.lines.take() if len(self.lines) else b""
        else:
            data, self.text = bytes(self.text), bytearray()
        if not data:
            return
        try:
            self.out.write(data)
            self.out.flush()
        except (OSError, ValueError):  # stdout closed, disk full: the request is not failed for it
            pass

    def close(self) -> None:
        self.flush()
        if self.path is not None:
            self.out.close()
