"""Where key records live: a JSON file under the data directory (the default) or Redis
(``redis_records.py``, imported only when a Redis URL is set).

Records are small and change rarely (CLI, admin API); a server holds a snapshot and refreshes
it when the source's version changes (file mtime, or a Redis counter bumped on every write).
The file is created with mode 0600; see ``fastgate/keys/secrets.py`` for how secrets are kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import msgspec

KINDS = ("keys", "virtual_keys")
Snapshot = dict[str, dict[str, bytes]]

_file_decoder = msgspec.json.Decoder(dict[str, dict[str, msgspec.Raw]])
_encode = msgspec.json.Encoder().encode


class Records(Protocol):
    async def version(self) -> object:
        """Changes whenever a record changes."""
        ...

    async def load(self) -> Snapshot: ...

    async def put(self, kind: str, ident: str, record: bytes) -> None: ...

    async def delete(self, kind: str, ident: str) -> bool: ...


class FileRecords:
    """``<data_dir>/keys.json``: read whole, rewritten atomically under an exclusive lock."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(data_dir)
        self.path = self.dir / "keys.json"

    async def version(self) -> object:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _read(self) -> Snapshot:
        try:
            data = _file_decoder.decode(self.path.read_bytes())
        except FileNotFoundError:
            data = {}
        return {kind: {k: bytes(v) for k, v in data.get(kind, {}).items()} for kind in KINDS}

    async def load(self) -> Snapshot:
        return self._read()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.dir / "keys.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield None
        finally:
            os.close(fd)

    def _write(self, snapshot: Snapshot) -> None:
        body = _encode(
            {kind: {k: msgspec.Raw(v) for k, v in items.items()} for kind, items in snapshot.items()}
        )
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    async def put(self, kind: str, ident: str, record: bytes) -> None:
        with self._locked():
            snapshot = self._read()
            snapshot[kind][ident] = record
            self._write(snapshot)

    async def delete(self, kind: str, ident: str) -> bool:
        with self._locked():
            snapshot = self._read()
            found = snapshot[kind].pop(ident, None) is not None
            if found:
                self._write(snapshot)
            return found
