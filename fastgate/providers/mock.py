"""Provider ``mock``: the mock engine answering in-process, with no network hop.

The request is prepared as for any OpenAI-compatible upstream (``request``: the config's
``override_params`` merged in), then answered here instead of sent. Failures that need a
socket (a dropped connection) surface as the same exceptions a real upstream would raise, so
the server handles both alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

from fastgate.errors import GatewayError
from fastgate.mock.engine import MockEngine, MockPlan
from fastgate.mock.forms import form_as_json
from fastgate.mock.multipart import is_form
from fastgate.mock.openai_format import OPENAI
from fastgate.mock.operations_format import Operations, plan_operation
from fastgate.mock.responses_format import ResponsesFormat
from fastgate.providers.base import (
    API_OPERATIONS,
    OPENAI_ENDPOINTS,
    RELAYED,
    BodySource,
    Call,
    Endpoint,
    LocalResponse,
    StreamMapper,
)
from fastgate.providers.openai import OpenAICompatible

#: The largest upload the in-process mock reads (it keeps files in memory).
_MOCK_UPLOAD_BYTES = 64 * 1024 * 1024
#: Operations the mock answers from what it keeps (``operations_format.py``); image edits and
#: variations are the engine's, as over HTTP.
_KEPT_AND_AUDIO = API_OPERATIONS - {Endpoint.IMAGE_EDITS, Endpoint.IMAGE_VARIATIONS}


class MockProvider(OpenAICompatible):
    local = True

    def __init__(self) -> None:
        super().__init__(
            "mock", None, add_provider_field=False, endpoints=OPENAI_ENDPOINTS | {Endpoint.RESPONSES}
        )
        self.engine = MockEngine()
        #: Files, uploads and batches kept in memory, as the mock server keeps them.
        self.operations = Operations()
        #: Speaks the Responses API natively, keeping what it answered (``store``).
        self.responses = ResponsesFormat()

    def url(self, call: Call, path: str) -> str:
        return path  # answered in-process: the prepared request is never sent anywhere

    async def respond(self, call: Call) -> LocalResponse:
        endpoint = "models" if call.endpoint is Endpoint.MODELS else call.endpoint.value
        if call.endpoint is Endpoint.PROXY:
            endpoint = call.path.lstrip("/")
        body = self.request(call).body or b""
        if call.upload is not None:
            body = await _read_whole(call.upload)
        if call.endpoint in _KEPT_AND_AUDIO:
            query = dict(parse_qsl(call.query))
            ctype = call.headers.get("content-type", "")
            path = call.path.lstrip("/")
            plan = plan_operation(self.engine, self.operations, call.method, path, query, ctype, body)
        elif endpoint.split("/", 1)[0] == "responses":
            plan = self.responses.plan(self.engine, call.method, endpoint, body)
        else:
            content_type = call.headers.get("content-type")
            if is_form(content_type):  # an images edit or variation: a form
                body = form_as_json(body, content_type)
            plan = self.engine.plan(endpoint, body, OPENAI)
        d = plan.directives
        if d.delay_ms:
            await asyncio.sleep(d.delay_ms / 1000)
        if d.fail == "drop":
            raise ConnectionResetError("mock dropped the connection")
        if d.fail == "invalid_json":
            return LocalResponse(200, b'{"id": "chatcmpl-broken", "choices": [', headers=plan.headers)
        headers = {**plan.headers, "content-type": plan.content_type}
        if plan.frames is None:
            return LocalResponse(plan.status, plan.body, headers=headers)
        return LocalResponse(plan.status, events=_play(plan), headers=headers)

    def stream(self, call: Call) -> StreamMapper:
        # Relayed streams (the Responses API's events) go out as they came, as an upstream's do:
        # no ``[DONE]`` added to an API that has none.
        return _AsTheyCame() if call.endpoint in RELAYED else super().stream(call)


class _AsTheyCame:
    __slots__ = ()
    done = False

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""


async def _read_whole(upload: BodySource) -> bytes:
    pieces: list[bytes] = []
    size = 0
    while (piece := await upload.read()) != b"":
        if piece:
            size += len(piece)
            if size > _MOCK_UPLOAD_BYTES:
                raise GatewayError(
                    413, f"The mock provider takes uploads of at most {_MOCK_UPLOAD_BYTES} bytes"
                )
            pieces.append(piece)
    return b"".join(pieces)


async def _play(plan: MockPlan) -> AsyncIterator[bytes]:
    d = plan.directives
    frames = plan.frames or []
    fail_at = max(1, len(frames) // 2) if d.fail in ("drop_mid_stream", "error_mid_stream") else -1
    for i, frame in enumerate(frames):
        if i == fail_at:
            raise ConnectionResetError("mock dropped the stream")
        if d.chunk_delay_ms and i:
            await asyncio.sleep(d.chunk_delay_ms / 1000)
        yield frame
