"""The mock in Voyage AI's rerank format (https://docs.voyageai.com/reference/reranker-api):
``POST /voyage/v1/rerank`` (a custom host ``http://mock/voyage/v1`` stands for
``https://api.voyageai.com/v1``), ``top_k`` and ``data``, errors as ``{"detail": ...}``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from fastgate.mock.directives import Directives
from fastgate.mock.engine import MockPlan
from fastgate.mock.playback import MockServer, play
from fastgate.mock.rerank import rerank_invalid, voyage_answer

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(dict[str, Any])


def add_routes(app: web.Application, server: MockServer) -> None:

    async def voyage(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        server.record(request, body)
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            return _voyage_error(401, "Provided API key is invalid.")
        try:
            parsed = _decode.decode(body)
        except msgspec.DecodeError:
            return _voyage_error(400, "Request body is not valid JSON.")
        if not parsed.get("model"):
            return _voyage_error(400, "model: field required")
        problem = rerank_invalid({**parsed, "top_n": parsed.get("top_k")}, strings_only=True)
        if problem:
            return _voyage_error(400, problem)
        plan = server.engine.plan("rerank", body, _VOYAGE)
        return await play(request, plan)

    app.router.add_post("/voyage/v1/rerank", voyage)


def _voyage_error(status: int, detail: str) -> web.Response:
    # Voyage's errors are FastAPI's: {"detail": "..."}.
    return web.Response(status=status, body=_encode({"detail": detail}), content_type="application/json")


class _VoyageFormat:
    def answer(self, endpoint: str, request: dict[str, Any], d: Directives) -> MockPlan:
        return MockPlan(status=200, body=_encode(voyage_answer(request)), directives=d)

    def error(self, status: int, message: str) -> bytes:
        return _encode({"detail": message})


_VOYAGE = _VoyageFormat()
