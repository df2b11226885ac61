"""Provider ``vertex-ai``: Gemini (publisher ``google``) and Claude (publisher ``anthropic``) on Vertex AI.

URL (https://cloud.google.com/vertex-ai/generative-ai/docs/reference/rest/v1/projects.locations.
publishers.models/generateContent): ``https://{region}-aiplatform.googleapis.com/v1/projects/
{project}/locations/{region}/publishers/google/models/{model}:generateContent``; the ``global``
location is served by ``aiplatform.googleapis.com``. ``custom_host`` replaces the host: for
Portkey ``/v1/projects/...`` is the endpoint (google-vertex-ai/api.ts). Bodies, answers and
streams are the Gemini mapping shared with ``google``; a model ``anthropic.<name>`` (or
``claude-*``) is delegated to ``vertex_anthropic`` (``:rawPredict``). Imagen models generate
images through ``:predict`` (``mapping/images.pxi``).

Auth is an OAuth access token: the client's own (``Authorization: Bearer ya29...``), or one
minted from ``vertex_service_account_json`` and cached (see ``google_auth``). Options come from
``x-portkey-vertex-project-id`` / ``-vertex-region`` / ``-vertex-service-account-json`` or the
config keys of the same names; a service account's ``project_id`` wins, as in Portkey.
"""

from __future__ import annotations

import re
from collections import OrderedDict

from fastgate._transforms import AnthropicStream, GeminiStream, vertex_embed_request, vertex_embed_response
from fastgate.errors import GatewayError, bad_request
from fastgate.providers.base import (
    MESSAGES_INGRESS,
    Call,
    Endpoint,
    Provider,
    UpstreamClient,
    UpstreamRequest,
)
from fastgate.providers.google import GEMINI_ENDPOINTS, GeminiMapping, model_name, requested_model
from fastgate.providers.google_auth import ServiceAccount, TokenCache, parse_service_account
from fastgate.providers.urls import under_host
from fastgate.providers.vertex_anthropic import VertexClaude, claude_model, is_anthropic_error

DEFAULT_REGION = "us-central1"
VERSION = "/v1"
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9.:_-]*")
#: Publishers not served yet, chosen by a ``<publisher>.`` model prefix (Portkey's convention).
OTHER_PUBLISHERS = frozenset({"meta", "mistralai", "endpoints"})
_OPTION = "vertex_service_account_json"


def _segment(value: object, option: str) -> str:
    text = str(value)
    if not _SEGMENT.fullmatch(text):
        raise bad_request(f"Invalid {option} {text!r}", param=option)
    return text


class VertexProvider(GeminiMapping):
    # Vertex batch prediction reads its input from Cloud Storage or BigQuery
    # (cloud.google.com/vertex-ai/generative-ai/docs/multimodal/batch-prediction-gemini).
    instead = {
        Endpoint.BATCHES: "Vertex AI batch prediction jobs read and write Cloud Storage; create one "
        "with the Vertex AI SDK or gcloud (batchPredictionJobs), or send the requests to "
        "/v1/chat/completions one by one",
        Endpoint.FILES: "Vertex AI batch input lives in Cloud Storage; upload it with gcloud storage cp, "
        "then create the job with batchPredictionJobs",
    }
    name = "vertex-ai"
    needs_io = True
    #: Gemini's, and Messages natively for Claude models (``speaks``).
    endpoints = GEMINI_ENDPOINTS | MESSAGES_INGRESS
    #: Claude on Vertex reads ``anthropic_version`` and ``anthropic_beta`` too (``vertex_anthropic.py``).
    option_names = frozenset(
        {_OPTION, "vertex_project_id", "vertex_region", "anthropic_version", "anthropic_beta"}
    )
    # Vertex embeds with ``:predict`` on its text-embedding models, not ``batchEmbedContents``
    # (https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api).
    embed_operation = "predict"
    imagen_on_vertex = True
    embed_request = staticmethod(vertex_embed_request)
    embed_response = staticmethod(vertex_embed_response)

    def __init__(self) -> None:
        self.tokens = TokenCache()
        self.claude = VertexClaude(self.name)
        # Header-given key files arrive as the same text on every request: parse each once.
        self._accounts: OrderedDict[str, ServiceAccount] = OrderedDict()

    def account(self, call: Call) -> ServiceAccount | None:
        raw = call.target.options.get(_OPTION)
        if not raw:
            return None
        if not isinstance(raw, str):
            return parse_service_account(raw)
        account = self._accounts.get(raw)
        if account is None:
            account = parse_service_account(raw)
            self._accounts[raw] = account
            if len(self._accounts) > 64:
                self._accounts.popitem(last=False)
        return account

    def region(self, call: Call) -> str:
        return _segment(call.target.options.get("vertex_region") or DEFAULT_REGION, "vertex_region")

    def api_url(self, call: Call, path: str) -> str:
        host = call.target.custom_host
        if host:
            return under_host(host, VERSION + path)
        region = self.region(call)
        if region == "global":
            return f"https://aiplatform.googleapis.com{VERSION}{path}"
        return f"https://{region}-aiplatform.googleapis.com{VERSION}{path}"

    def operation_url(self, call: Call, model: str, operation: str) -> str:
        publisher, dot, rest = model.partition(".")
        if dot and publisher in OTHER_PUBLISHERS:
            raise bad_request(
                f"vertex-ai: models of publisher {publisher!r} are not supported yet; only Gemini "
                "(publisher google) and Claude (publisher anthropic) models are",
                param="model",
            )
        if dot and publisher == "google":
            model = rest
        return f"{self.model_url(call, 'google', model)}:{operation}"

    def model_url(self, call: Call, publisher: str, model: str) -> str:
        """``{base}/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}``."""
        account = self.account(call)
        project = (account.project_id if account else None) or call.target.options.get("vertex_project_id")
        if not project:
            raise bad_request(
                "vertex-ai needs a project: x-portkey-vertex-project-id or vertex_project_id",
                param="vertex_project_id",
            )
        project = _segment(project, "vertex_project_id")
        return self.api_url(
            call, f"/projects/{project}/locations/{self.region(call)}/publishers/{publisher}/models/{model}"
        )

    def speaks(self, endpoint: Endpoint, model: str) -> bool:
        if endpoint in MESSAGES_INGRESS:  # Messages, for Claude models only
            return claude_model(model) is not None
        return endpoint in self.endpoints

    def build(self, call: Call, headers: dict[str, str]) -> UpstreamRequest:
        claude = claude_model(requested_model(call))
        if claude is None:
            return super().build(call, headers)
        model = model_name(claude)
        if call.endpoint is Endpoint.MESSAGES_COUNT:  # the model goes in the body here
            return self.claude.native(call, headers, self.model_url(call, "anthropic", "count-tokens"), model)
        return self.claude.build(call, headers, self.model_url(call, "anthropic", model))

    def response(self, call: Call, body: bytes) -> bytes:
        if claude_model(requested_model(call)) is not None:
            return self.claude.response(call, body)
        return super().response(call, body)

    def stream(self, call: Call) -> GeminiStream | AnthropicStream:  # type: ignore[override]
        if claude_model(requested_model(call)) is not None:
            return self.claude.stream(call)
        return super().stream(call)

    def error(self, status: int, body: bytes) -> bytes:
        # Claude's errors come in Anthropic's shape (its ``type`` kept, as for ``anthropic``);
        # Vertex's own (auth, quota, unknown model) in Google's.
        if is_anthropic_error(body):
            return Provider.error(self, status, body)
        return super().error(status, body)

    def auth_headers(self, call: Call) -> dict[str, str]:
        token = call.target.api_key
        if not token:
            raise GatewayError(
                401,
                "vertex-ai needs an OAuth access token (Authorization: Bearer ...) or "
                "vertex_service_account_json",
                type="authentication_error",
                param="Authorization",
            )
        return {"Authorization": f"Bearer {token}"}

    async def request_async(self, call: Call, client: UpstreamClient) -> UpstreamRequest:
        account = self.account(call)
        if account is None:
            return self.request(call)
        # Mapped first, so a bad request never costs a token exchange.
        proxy = call.endpoint is Endpoint.PROXY
        req = self.passthrough(call, {}) if proxy else self.build(call, {})
        req.headers["Authorization"] = f"Bearer {await self.tokens.token(account, client)}"
        return req
