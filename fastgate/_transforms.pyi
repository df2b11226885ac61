"""Typed API of the compiled hot path (fastgate/_transforms.pyx)."""

class SSEDecoder:
    def feed(self, chunk: bytes) -> list[tuple[bytes | None, bytes]]: ...
    def close(self) -> list[tuple[bytes | None, bytes]]: ...

class SSERelay:
    done: bool
    events: int
    def feed(self, chunk: bytes) -> bytes: ...
