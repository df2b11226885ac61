"""WebSockets on asyncio transports: one end of a relayed session, on websockets' sans-I/O core.

An :class:`End` is an asyncio protocol around a ``websockets`` protocol object (RFC 6455 framing,
masking, control frames, the closing handshake, UTF-8 and size checks), for either side: the
client's connection the HTTP server handed over (``ServerProtocol``), or the connection to the
upstream (``ClientProtocol``, opened by :func:`open_upstream` through the pool's SSRF-guarded
resolver). Frames are passed to the end's peer as they arrive, a fragment at a time: nothing is
reassembled or buffered here, and an end whose peer cannot take more (its transport's buffer past
the high-water mark) stops reading until it can.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping, Sequence
from typing import Protocol

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import Protocol as WebSocket
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from fastgate.upstream.connection import UpstreamConnectionError, UpstreamTimeout
from fastgate.upstream.dns import CachingResolver

#: Close codes a peer may not send (RFC 6455 §7.4.1): replaced by 1011 when passed on.
_RESERVED = frozenset({1004, 1005, 1006, 1015})
#: Seconds an end waits for its peer to close TCP after the closing handshake.
_CLOSE_WAIT_S = 5.0


class Peer(Protocol):
    """The other side of a session: what an end hands its frames and its end to."""

    def send_frame(self, frame: Frame) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def throttle(self, paused: bool) -> None:
        """Stop (or resume) reading: the other side cannot take more for now."""
        ...


class Listener(Protocol):
    """Told of an end's activity (for the idle timeout) and its end."""

    def active(self) -> None: ...

    def ended(self, end: object) -> None: ...


class HandshakeRefused(Exception):
    """The upstream answered the opening handshake with something other than 101."""

    def __init__(self, response: Response) -> None:
        super().__init__(f"upstream refused the WebSocket handshake with {response.status_code}")
        self.response = response


class End(asyncio.Protocol):
    """One side of a relayed session."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self.listener: Listener | None = None
        self.closed = False
        #: The upstream's handshake answer (client side only), resolved by ``data_received``.
        self.handshake: asyncio.Future[Response] | None = None
        #: The transport's exception once lost, for the session's record.
        self.lost: Exception | None = None
        #: The protocol the transport had before this one (the HTTP connection that handed it
        #: over), told of the loss too.
        self.previous: asyncio.BaseProtocol | None = None
        #: Frames that came before the peer was attached (an upstream's first event can come
        #: with its handshake answer), handed over by ``start``.
        self._early: list[Frame] = []

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Response):
                handshake = self.handshake
                if handshake is not None and not handshake.done():
                    handshake.set_result(event)
            elif isinstance(event, Frame):
                self._received(event)
        self.flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.lost = exc
        handshake = self.handshake
        if handshake is not None and not handshake.done():
            handshake.set_exception(
                UpstreamConnectionError("upstream closed the connection in the handshake")
            )
        peer = self.peer
        if peer is not None:
            code = self.ws.close_rcvd.code if self.ws.close_rcvd is not None else 1001
            peer.close(
                code, self.ws.close_rcvd.reason if self.ws.close_rcvd is not None else "peer went away"
            )
        if self.listener is not None:
            self.listener.ended(self)
        if self.previous is not None:
            self.previous.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.peer is not None:
            self.peer.throttle(True)

    def resume_writing(self) -> None:
        if self.peer is not None:
            self.peer.throttle(False)

    # ------------------------------------------------------------------ frames

    def _received(self, frame: Frame) -> None:
        if self.listener is not None:
            self.listener.active()
        peer = self.peer
        if frame.opcode in (Opcode.TEXT, Opcode.BINARY, Opcode.CONT):
            if peer is not None:
                peer.send_frame(frame)
            else:
                self._early.append(frame)
        elif frame.opcode is Opcode.CLOSE and peer is not None:
            close = self.ws.close_rcvd
            code = 1000 if close is None or close.code == 1005 else close.code
            peer.close(code, close.reason if close is not None else "")

    def start(self, peer: Peer, listener: Listener) -> None:
        """Relay to ``peer`` from now on, the frames that came before first."""
        self.peer, self.listener = peer, listener
        early, self._early = self._early, []
        for frame in early:
            peer.send_frame(frame)
        self.throttle(False)

    def send_frame(self, frame: Frame) -> None:
        """A data frame from the peer, sent on as it came (one fragment of a message, maybe)."""
        ws = self.ws
        if ws.state is not State.OPEN:
            return
        if frame.opcode is Opcode.TEXT:
            ws.send_text(frame.data, fin=frame.fin)
        elif frame.opcode is Opcode.BINARY:
            ws.send_binary(frame.data, fin=frame.fin)
        else:
            ws.send_continuation(frame.data, fin=frame.fin)
        self.flush()

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (the peer's ended), or cut a connection still opening."""
        ws = self.ws
        if ws.state is State.OPEN:
            ws.send_close(1011 if code in _RESERVED else code, reason[:120])
            self.flush()
        elif ws.state is State.CONNECTING and self.transport is not None:
            self.transport.close()

    def throttle(self, paused: bool) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            if paused:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def flush(self) -> None:
        """Write what the protocol has to send; close TCP when the handshake says so."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        for data in self.ws.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.ws.state is State.CLOSED:
            transport.close()
        elif self.ws.close_sent is not None and self.ws.close_expected():
            # The other side should close TCP now (RFC 6455 §7.1.1); if it does not, we do.
            asyncio.get_running_loop().call_later(_CLOSE_WAIT_S, transport.close)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


_https: ssl.SSLContext | None = None


async def open_upstream(
    resolver: CachingResolver,
    url: str,
    headers: Mapping[str, str],
    subprotocols: Sequence[str],
    *,
    connect_timeout: float,
    max_size: int,
) -> End:
    """Connect to ``url`` (``ws://`` or ``wss://``) and open a WebSocket with ``headers``;
    returns the open end, or raises :class:`HandshakeRefused` with the upstream's answer."""
    global _https
    uri = parse_uri(url)
    offered = [Subprotocol(p) for p in subprotocols] or None
    ws = ClientProtocol(uri, subprotocols=offered, max_size=max_size)
    end = End(ws)
    loop = asyncio.get_running_loop()
    if uri.secure and _https is None:
        _https = ssl.create_default_context()
    try:
        async with asyncio.timeout(connect_timeout):
            addresses = await resolver.resolve(uri.host, uri.port)
            last: OSError | None = None
            for address in addresses:
                try:
                    await loop.create_connection(
                        lambda: end,
                        address,
                        uri.port,
                        ssl=_https if uri.secure else None,
                        server_hostname=uri.host if uri.secure else None,
                    )
                    break
                except OSError as exc:
                    last = exc
            else:
                raise UpstreamConnectionError(f"cannot connect to {uri.host}:{uri.port}: {last}")
            request = ws.connect()
            for name, value in headers.items():
                request.headers[name] = value
            end.handshake = loop.create_future()
            ws.send_request(request)
            end.flush()
            response = await end.handshake
    except TimeoutError:
        end.abort()
        raise UpstreamTimeout(f"opening a WebSocket to {uri.host} timed out") from None
    except BaseException:
        end.abort()
        raise
    end.handshake = None
    if ws.handshake_exc is not None:
        end.abort()
        raise HandshakeRefused(response)
    end.throttle(True)  # until the session starts (``start``)
    return end
