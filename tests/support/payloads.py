"""Recorded provider payloads (``tests/data/<provider>/``), checked against the providers' docs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

DATA = Path(__file__).resolve().parent.parent / "data"


def recorded(provider: str, name: str) -> bytes:
    return (DATA / provider / name).read_bytes()


def recorded_json(provider: str, name: str) -> Any:
    return msgspec.json.decode(recorded(provider, name))
