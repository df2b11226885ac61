"""The mock's Gemini wire format, read raw over HTTP: what a Gemini or Vertex client would see."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

from tests.conftest import Upstream

KEY = {"x-goog-api-key": "AIza-test"}
BODY = {"contents": [{"role": "user", "parts": [{"text": "hi there gemini"}]}]}


async def post(upstream: Upstream, path: str, body: Any, headers: dict[str, str]) -> tuple[int, str, bytes]:
    root = str(upstream.server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        resp = await session.post(root + path, json=body, headers=headers)
        return resp.status, resp.content_type, await resp.read()


async def test_generate_content(upstream: Upstream) -> None:
    status, kind, raw = await post(upstream, "/v1beta/models/gemini-x:generateContent", BODY, KEY)
    assert (status, kind) == (200, "application/json")
    answer = msgspec.json.decode(raw)
    [candidate] = answer["candidates"]
    assert candidate["content"] == {"role": "model", "parts": [{"text": "Mock reply to: hi there gemini"}]}
    assert candidate["finishReason"] == "STOP"
    assert answer["usageMetadata"]["promptTokenCount"] == 3
    assert answer["modelVersion"] == "gemini-x"


async def test_stream_without_alt_sse_is_one_json_array(upstream: Upstream) -> None:
    path = "/v1beta/models/gemini-x:streamGenerateContent"
    status, kind, raw = await post(upstream, path, BODY, KEY)
    assert (status, kind) == (200, "application/json")
    slices = msgspec.json.decode(raw)
    text = "".join(s["candidates"][0]["content"]["parts"][0]["text"] for s in slices)
    assert text == "Mock reply to: hi there gemini"
    assert slices[-1]["candidates"][0]["finishReason"] == "STOP"


async def test_stream_with_alt_sse_uses_crlf_events(upstream: Upstream) -> None:
    path = "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    status, kind, raw = await post(upstream, path, BODY, KEY)
    assert (status, kind) == (200, "text/event-stream")
    events = [e for e in raw.split(b"\r\n\r\n") if e]
    assert all(e.startswith(b"data: ") for e in events)
    assert msgspec.json.decode(events[-1][6:])["candidates"][0]["finishReason"] == "STOP"


async def test_auth_and_errors_in_googles_format(upstream: Upstream) -> None:
    status, _, raw = await post(upstream, "/v1beta/models/gemini-x:generateContent", BODY, {})
    assert status == 403
    assert msgspec.json.decode(raw)["error"]["status"] == "PERMISSION_DENIED"
    vertex = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-x:generateContent"
    status, _, raw = await post(upstream, vertex, BODY, KEY)
    assert status == 401
    assert msgspec.json.decode(raw)["error"]["status"] == "UNAUTHENTICATED"
    failing = {"contents": [{"role": "user", "parts": [{"text": "x [mock status=429]"}]}]}
    status, _, raw = await post(upstream, vertex, failing, {"Authorization": "Bearer t"})
    assert status == 429
    assert msgspec.json.decode(raw) == {
        "error": {"code": 429, "message": "mock failure 429", "status": "RESOURCE_EXHAUSTED"}
    }


async def test_token_endpoint_refuses_a_bad_grant(upstream: Upstream) -> None:
    root = str(upstream.server.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        resp = await session.post(root + "/token", data={"grant_type": "password", "assertion": "a.b.c"})
        assert resp.status == 400
        assert (await resp.json())["error"] == "invalid_grant"
