"""What a served worker loads: features that are off cost it no memory. Redis's client (13 MB of
RSS), aiohttp (13 MB: the mock's HTTP server and the test fixtures) and jsonschema (5 MB: the
``jsonSchema`` guardrail) are imported only when a Redis URL, ``fastgate mock`` or such a check
asks for them."""

from __future__ import annotations

import subprocess
import sys

import msgspec

_WORKER = """
import asyncio, json, sys
from fastgate.cli import main  # the entry point, as `fastgate serve` starts
from fastgate.gateway.app import make_app
from fastgate.settings import Settings

async def serve_once():
    app = make_app(Settings(port=0))
    await app.startup()
    await app.cleanup()

asyncio.run(serve_once())
print(json.dumps(sorted(m for m in ("aiohttp", "redis", "jsonschema") if m in sys.modules)))
"""


def _loaded(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return msgspec.json.decode(out.stdout.strip().splitlines()[-1])


def test_a_worker_without_redis_mock_or_json_schema_loads_none_of_them() -> None:
    assert _loaded(_WORKER) == []


def test_a_json_schema_check_loads_jsonschema_when_configured() -> None:
    code = _WORKER.replace(
        "asyncio.run(serve_once())",
        "from fastgate.guardrails.checks.structured import JsonSchema\n"
        "JsonSchema('c', {'schema': {'type': 'object'}})",
    )
    assert _loaded(code) == ["jsonschema"]
