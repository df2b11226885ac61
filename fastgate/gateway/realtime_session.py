"""A Realtime session relayed between two WebSocket ends (``upstream/websocket.py``), or between
the client's end and the in-process mock's; see ``realtime.py`` for the route."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request as HandshakeRequest
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from fastgate.errors import GatewayError
from fastgate.mock.realtime import RealtimeSession
from fastgate.server.messages import Request
from fastgate.upstream.websocket import End, Listener, Peer

_GOING_AWAY = 1001
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def offered_subprotocols(headers: dict[str, str] | Any) -> list[str]:
    raw = headers.get("sec-websocket-protocol") or ""
    return [p.strip() for p in raw.split(",") if p.strip()]


def handshake(request: Request, subprotocol: str | None, max_size: int) -> ServerProtocol:
    """The client's side of the session, its opening handshake checked (RFC 6455 §4.2.1)."""
    chosen = Subprotocol(subprotocol) if subprotocol is not None else None
    ws = ServerProtocol(
        select_subprotocol=lambda _ws, offered: chosen if chosen in offered else None,
        max_size=max_size,
    )
    target = request.path + ("?" + request.query if request.query else "")
    response = ws.accept(HandshakeRequest(target, Headers(request.headers)))
    if response.status_code != 101:
        message = (response.body or b"").decode("utf-8", "replace").strip() or "Invalid WebSocket handshake"
        headers = {"Upgrade": "websocket"} if response.status_code == 426 else None
        raise GatewayError(response.status_code, message, code="invalid_websocket_handshake", headers=headers)
    ws.handshake_response = response  # type: ignore[attr-defined]
    return ws


class Session:
    """A session being relayed: the client's end and the upstream's (or the mock's), each the
    other's peer; ``serve`` answers the client's upgrade and runs until both have ended."""

    def __init__(
        self, upstream: End | MockPeer, subprotocol: str | None, max_size: int, idle_s: float
    ) -> None:
        self.upstream = upstream
        self.subprotocol = subprotocol
        self.max_size = max_size
        self.idle_s = idle_s
        self.last = time.monotonic()
        self._ends: set[object] = set()
        self._client: End | None = None
        self._done: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def active(self) -> None:
        self.last = time.monotonic()

    def ended(self, end: object) -> None:
        self._ends.add(end)
        if len(self._ends) == 2 and self._done is not None and not self._done.done():
            self._done.set_result(None)

    def close(self) -> None:
        """Close the upstream side without a client (an outcome given up for another target)."""
        self.upstream.close(_GOING_AWAY, "")
        if isinstance(self.upstream, End):
            self.upstream.abort()

    async def serve(self, request: Request, headers: dict[str, str]) -> None:
        ws = handshake(request, self.subprotocol, self.max_size)
        response = ws.handshake_response  # type: ignore[attr-defined]
        for name, value in headers.items():
            if name.lower().startswith("x-portkey-"):
                response.headers[name] = value
        ws.send_response(response)
        transport, leftover = request.upgrade(b"".join(ws.data_to_send()))
        # The frames on a protocol object that starts open: the one that answered the handshake
        # reads its input as an HTTP request first (websockets' sans-I/O server).
        self._client = client = End(ServerProtocol(state=State.OPEN, max_size=self.max_size))
        client.previous = transport.get_protocol()
        client.transport = transport
        transport.set_protocol(client)
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self.active()
        client.start(self.upstream, self)
        self.upstream.start(client, self)
        if leftover:
            client.data_received(leftover)
        self._timer = loop.call_later(min(self.idle_s, 1.0), self._watch)
        try:
            await self._done
        except asyncio.CancelledError:
            # The server is stopping (or the client went): both sides are told, briefly waited for.
            client.close(_GOING_AWAY, "server shutting down")
            self.upstream.close(_GOING_AWAY, "server shutting down")
            raise
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _watch(self) -> None:
        if time.monotonic() - self.last > self.idle_s:
            self.upstream.close(_GOING_AWAY, "idle timeout")
            if self._client is not None:
                self._client.close(_GOING_AWAY, "idle timeout")
            return
        self._timer = asyncio.get_running_loop().call_later(min(self.idle_s, 1.0), self._watch)


class MockPeer:
    """The in-process mock provider's side of a session (``providers/mock.py``): answers each
    client event as ``mock/realtime.py`` says, as text frames."""

    def __init__(self, model: str) -> None:
        self.mock = RealtimeSession(model)
        self.peer: Peer | None = None
        self.listener: Listener | None = None
        self._message = b""
        self.closed = False

    def start(self, peer: Peer, listener: Listener) -> None:
        self.peer, self.listener = peer, listener
        self._send(self.mock.opening())

    def send_frame(self, frame: Frame) -> None:
        if self.listener is not None:
            self.listener.active()
        self._message += frame.data
        if not frame.fin:
            return
        message, self._message = self._message, b""
        if frame.opcode is Opcode.BINARY:
            return
        try:
            event = _decode(message)
        except msgspec.DecodeError:
            event = {"type": None}
        self._send(self.mock.reply(event))

    def _send(self, events: list[dict[str, Any]]) -> None:
        if self.peer is None:
            return
        for event in events:
            self.peer.send_frame(Frame(Opcode.TEXT, _encode(event)))

    def close(self, code: int, reason: str) -> None:
        if not self.closed:
            self.closed = True
            if self.peer is not None:
                self.peer.close(code, reason)
            if self.listener is not None:
                self.listener.ended(self)

    def throttle(self, paused: bool) -> None:
        pass
