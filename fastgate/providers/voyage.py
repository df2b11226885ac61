"""Provider ``voyage``: Voyage AI's reranker behind ``/v1/rerank`` (Cohere's shape both ways).

Voyage's ``POST /v1/rerank`` (https://docs.voyageai.com/reference/reranker-api) takes
``top_k`` for Cohere's ``top_n`` and answers ``data`` for ``results``: mapped in
``mapping/rerank.pxi``. Its base URL is Portkey's (``https://api.voyageai.com/v1``); the key goes
in ``Authorization: Bearer``. The rest of its API is reached through the passthrough.
"""

from __future__ import annotations

from fastgate._transforms import voyage_rerank_request, voyage_rerank_response
from fastgate.providers.base import Call, Endpoint, UpstreamRequest, forward_headers
from fastgate.providers.openai import OpenAICompatible

BASE_URL = "https://api.voyageai.com/v1"


class VoyageAI(OpenAICompatible):
    def __init__(self) -> None:
        super().__init__("voyage", BASE_URL, endpoints=frozenset({Endpoint.RERANK, Endpoint.PROXY}))

    def request(self, call: Call) -> UpstreamRequest:
        if call.endpoint is not Endpoint.RERANK:
            return self.proxy_request(call)
        headers = forward_headers(call, self.auth_headers(call))
        headers["Content-Type"] = "application/json"
        body = voyage_rerank_request(call.body, call.target.override_params)
        return UpstreamRequest("POST", self.url(call, "/rerank"), headers, body)

    def response(self, call: Call, body: bytes) -> bytes:
        if call.endpoint is not Endpoint.RERANK:
            return body
        return voyage_rerank_response(body, call.body, call.target.override_params)
