"""A native ingress format's stream relayed as it comes, event by event.

A stage whose target speaks the client's format (Messages, Responses) relays its stream untouched;
so that an upstream that breaks off midway can still be answered with the format's own error
event (``Outcome.on_break``) instead of a cut connection, the stream is passed on in whole events.
"""

from __future__ import annotations

from fastgate.gateway.relay import Outcome

_SSE = "text/event-stream"


def relayed_stream(outcome: Outcome) -> bool:
    """Whether the answer is a stream relayed as the upstream sent it (no mapper)."""
    return outcome.upstream is not None and outcome.status < 300 and outcome.content_type == _SSE


class WholeEvents:
    """A stream watcher that holds back an event split across reads until its end arrives, so an
    error event written after a break starts on an event's boundary."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, out: bytes) -> bytes:
        data = self.pending + out if self.pending else out
        # Events end with a blank line: LF LF, or CRLF CRLF (WHATWG HTML, "Parsing an event
        # stream").
        lf, crlf = data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n")
        end = max(lf + 2 if lf >= 0 else 0, crlf + 4 if crlf >= 0 else 0)
        self.pending = data[end:]
        return data[:end]

    async def end(self) -> bytes:
        return self.pending
