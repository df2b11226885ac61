"""The mock provider's state and how it plays a plan: records, answers, and real socket failures.

Every request is recorded (``GET /_mock/requests``, cleared by ``DELETE``) so tests can assert
what reached the upstream; failures are real socket events (dropped connections, truncated
bodies, stalls), not simulations. Each provider's wire format (``<provider>_format.py``) plans
its answers and plays them here.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from aiohttp import web

from fastgate.mock.directives import Directives
from fastgate.mock.engine import MockEngine, MockPlan
from fastgate.mock.forms import form_as_json
from fastgate.mock.multipart import is_form
from fastgate.mock.openai_format import OPENAI
from fastgate.mock.operations_format import Operations, plan_operation

RECORD_LIMIT = 1000
_encode = msgspec.json.Encoder().encode
#: The OpenAI paths (after /v1/) the mock answers as operations (``operations_format.py``).
OPERATION_ROOTS = frozenset({"files", "uploads", "batches", "audio"})


class MockServer:
    def __init__(self, defaults: Directives | None = None) -> None:
        self.engine = MockEngine(defaults)
        #: Files, uploads and batches, kept in memory.
        self.operations = Operations()
        self.records: list[dict[str, Any]] = []
        #: Responses being written now: tests watch it fall when a client goes away.
        self.active = 0

    def record(self, request: web.Request, body: bytes) -> None:
        if len(self.records) >= RECORD_LIMIT:
            del self.records[: RECORD_LIMIT // 2]
        self.records.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string,
                "headers": dict(request.headers),
                "body": body.decode("utf-8", "replace"),
            }
        )

    async def openai(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.record(request, body)
        endpoint = request.match_info["tail"]
        if endpoint.partition("/")[0] in OPERATION_ROOTS:
            return await play(request, self.operation(request, endpoint, body))
        content_type = request.headers.get("Content-Type")
        planned = form_as_json(body, content_type) if is_form(content_type) else body
        plan = self.engine.plan(endpoint, planned, OPENAI)
        self.active += 1
        try:
            return await play(request, plan)
        finally:
            self.active -= 1

    def operation(self, request: web.Request, path: str, body: bytes) -> MockPlan:
        query = dict(request.query)
        ctype = request.headers.get("Content-Type", "")
        return plan_operation(self.engine, self.operations, request.method, path, query, ctype, body)

    async def list_requests(self, request: web.Request) -> web.Response:
        return web.Response(body=_encode(self.records), content_type="application/json")

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.records.clear()
        self.engine.attempts.clear()
        return web.Response(status=204)


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


async def play(request: web.Request, plan: MockPlan) -> web.StreamResponse:
    """Carry out a plan on a real connection, failures included.

    Beside the failures listed on ``Directives.fail``: ``wrong_content_type`` (a 200 text/plain
    page), ``error_200`` (a 200 whose JSON body is an error), ``stall_body`` (half a body, then
    silence) and ``endless`` (a body or stream that never ends).
    """
    d = plan.directives
    if d.delay_ms:
        await asyncio.sleep(d.delay_ms / 1000)
    if d.fail in _MORE_FAILURES:
        return await _MORE_FAILURES[d.fail](request, plan)
    if d.fail == "drop":
        _abort(request)
        raise asyncio.CancelledError
    if d.fail == "html":
        return web.Response(
            status=plan.status if plan.status >= 400 else 502,
            content_type="text/html",
            text="<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
    if d.fail == "invalid_json":
        return web.Response(
            status=200, body=b'{"id": "chatcmpl-broken", "choices": [', content_type="application/json"
        )
    if d.fail == "truncate" and plan.frames is None:
        resp = web.StreamResponse(status=plan.status, headers={"Content-Length": str(len(plan.body) + 100)})
        resp.content_type = plan.content_type
        await resp.prepare(request)
        await resp.write(plan.body[: len(plan.body) // 2])
        _abort(request)
        return resp
    if plan.frames is None:
        return web.Response(
            status=plan.status, body=plan.body, content_type=plan.content_type, headers=plan.headers
        )
    resp = web.StreamResponse(status=plan.status, headers=plan.headers)
    resp.content_type = plan.content_type
    await resp.prepare(request)
    frames = plan.frames
    fail_at = (
        max(1, len(frames) // 2)
        if d.fail in ("drop_mid_stream", "error_mid_stream", "stall_mid_stream")
        else -1
    )
    for i, frame in enumerate(frames):
        if i == fail_at:
            if d.fail == "drop_mid_stream":
                _abort(request)
                return resp
            if d.fail == "error_mid_stream":
                await resp.write(
                    b'data: {"error": {"message": "mock failed mid-stream", "type": "server_error", '
                    b'"param": null, "code": null}}\n\n'
                )
                _abort(request)
                return resp
            await asyncio.sleep(3600)
        if d.chunk_delay_ms and i:
            await asyncio.sleep(d.chunk_delay_ms / 1000)
        await resp.write(frame)
    await resp.write_eof()
    return resp


async def _wrong_content_type(request: web.Request, plan: MockPlan) -> web.StreamResponse:
    return web.Response(status=200, content_type="text/plain", text="upstream maintenance, back soon")


async def _error_200(request: web.Request, plan: MockPlan) -> web.StreamResponse:
    # Some OpenAI-compatible servers report failures with a 200 and an error object.
    body = b'{"error": {"message": "model overloaded", "type": "server_error", "param": null, "code": null}}'
    return web.Response(status=200, body=body, content_type="application/json")


async def _stall_body(request: web.Request, plan: MockPlan) -> web.StreamResponse:
    body = plan.body or b"".join(plan.frames or ())
    resp = web.StreamResponse(status=200, headers={"Content-Length": str(len(body))})
    resp.content_type = plan.content_type
    await resp.prepare(request)
    await resp.write(body[: len(body) // 2])
    await asyncio.sleep(3600)
    return resp


async def _endless(request: web.Request, plan: MockPlan) -> web.StreamResponse:
    resp = web.StreamResponse(status=200)
    resp.content_type = plan.content_type
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    if plan.frames is None:
        await resp.write(b'{"id": "chatcmpl-endless", "padding": "')
        piece = b"x" * 16384
    else:
        # The opening chunks, then the first content chunk again and again: no finish, no [DONE].
        await resp.write(b"".join(plan.frames[:2]))
        piece = plan.frames[1]
    pause = max(plan.directives.chunk_delay_ms, 1.0) / 1000
    while True:
        await resp.write(piece)
        await asyncio.sleep(pause)


_MORE_FAILURES = {
    "wrong_content_type": _wrong_content_type,
    "error_200": _error_200,
    "stall_body": _stall_body,
    "endless": _endless,
}
