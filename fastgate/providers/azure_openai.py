"""Provider ``azure-openai``: OpenAI's wire format at Azure's URLs, with Azure's auth.

Azure OpenAI REST reference (https://learn.microsoft.com/azure/ai-foundry/openai/reference):
``https://{resource}.openai.azure.com/openai/deployments/{deployment}/{operation}?api-version=V``
with an ``api-key`` header, or ``Authorization: Bearer`` with a Microsoft Entra ID token. The
``v1`` API (``api_version: "v1"``) drops the deployment and the api-version query:
``/openai/v1/{operation}``, the deployment then named by the body's ``model``.

Bodies and SSE are OpenAI's and pass through untouched, Azure's content-filter extras
(``prompt_filter_results``, ``content_filter_results``) included; the empty-``choices`` chunk
Azure streams first is a valid chunk. Unlike Portkey, no per-chunk delay is added.
Entra tokens must be given (``azure_ad_token``); fetching them (client secret, managed or
workload identity) would put a token request on the hot path, and is refused with a 400.

Files, batches and uploads are the resource's, not a deployment's: ``/openai/files?api-version=V``
(``/openai/v1/files`` on the v1 API); audio and image edits are a deployment's
(``/openai/deployments/{deployment}/audio/speech?api-version=V``), as the REST reference has them.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode

from fastgate.errors import bad_request
from fastgate.providers.base import API_OPERATIONS, RELAYED, Call, Endpoint, UpstreamRequest
from fastgate.providers.openai import OpenAICompatible
from fastgate.providers.urls import under_host

#: Requests at the path the client used, under ``/openai``: not a deployment's (the passthrough,
#: the Responses API, files, batches and uploads).
_BY_PATH = RELAYED | {Endpoint.FILES, Endpoint.BATCHES, Endpoint.UPLOADS}


def _option(call: Call, *names: str) -> str | None:
    """Portkey's headers arrive as ``azure_resource_name`` ..., its config keys as ``resource_name``."""
    options = call.target.options
    for name in names:
        value = options.get(name)
        if value:
            return str(value)
    return None


class AzureOpenAI(OpenAICompatible):
    def __init__(self) -> None:
        super().__init__(
            "azure-openai",
            None,
            auth_header="api-key",
            auth_prefix="",
            option_headers={"openai_beta": "OpenAI-Beta"},
            endpoints=frozenset(
                {
                    *(Endpoint.CHAT, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.IMAGES),
                    *(Endpoint.PROXY, Endpoint.RESPONSES, Endpoint.REALTIME, *API_OPERATIONS),
                }
            ),
        )
        self.option_names |= {
            *("resource_name", "azure_resource_name", "deployment_id", "azure_deployment_id"),
            *("api_version", "azure_api_version", "azure_ad_token", "azure_auth_mode"),
        }

    def url(self, call: Call, path: str) -> str:
        """``path`` under ``https://{resource}.openai.azure.com/openai``, or under the custom host
        in its place: Portkey's base includes ``/openai`` (azure-openai/api.ts ``getBaseURL``)."""
        host = call.target.custom_host
        if not host:
            resource = _option(call, "resource_name", "azure_resource_name")
            if not resource:
                raise bad_request(
                    "azure-openai needs resource_name (x-portkey-azure-resource-name) or a custom_host",
                    param="resource_name",
                )
            host = f"https://{quote(resource, safe='')}.openai.azure.com/openai"
        return under_host(host, path)

    def auth_headers(self, call: Call) -> dict[str, str]:
        """``api-key: <key>``, or ``Authorization: Bearer <Entra ID token>`` in its place."""
        headers = super().auth_headers(call)
        token = _option(call, "azure_ad_token")
        mode = _option(call, "azure_auth_mode")
        if mode and mode != "entra":
            raise bad_request(
                f"azure_auth_mode {mode!r} is not supported: pass an Entra ID token as azure_ad_token",
                param="azure_auth_mode",
            )
        if mode == "entra" and not token:
            token = call.target.api_key
            if not token:
                raise bad_request("azure_auth_mode entra needs azure_ad_token", param="azure_ad_token")
        if token:
            headers.pop("api-key", None)
            headers["Authorization"] = token if token.startswith("Bearer ") else f"Bearer {token}"
        return headers

    def _url(self, call: Call, operation: str, query: str = "") -> str:
        version = _option(call, "api_version", "azure_api_version")
        if version == "v1":
            url = self.url(call, f"/v1/{operation.lstrip('/')}")
        else:
            if not version:
                raise bad_request(
                    "azure-openai needs api_version (x-portkey-azure-api-version)", param="api_version"
                )
            if call.endpoint in _BY_PATH:
                url = self.url(call, operation)
            else:
                deployment = _option(call, "deployment_id", "azure_deployment_id")
                if not deployment:
                    raise bad_request(
                        "azure-openai needs deployment_id (x-portkey-azure-deployment-id)",
                        param="deployment_id",
                    )
                url = self.url(call, f"/deployments/{quote(deployment, safe='')}/{operation}")
            if "api-version=" not in query:
                pair = f"api-version={quote(version, safe='')}"
                query = f"{query}&{pair}" if query else pair
        return f"{url}?{query}" if query else url

    def request(self, call: Call) -> UpstreamRequest:
        if call.endpoint in _BY_PATH:
            upstream = super().request(call)  # the passthrough's, or an operation's
            upstream.url = self._url(call, call.path, call.query)
            return upstream
        upstream = super().request(call)
        query = call.query if call.endpoint in API_OPERATIONS else ""
        upstream.url = self._url(call, call.endpoint.value, query)
        return upstream

    def realtime_request(self, call: Call) -> UpstreamRequest:
        """``/openai/realtime?api-version=V&deployment=D`` (Azure's Realtime API), or
        ``/openai/v1/realtime?model=D`` on the v1 API; the deployment is the option's, else the
        ``model`` or ``deployment`` the client's query names."""
        upstream = super().realtime_request(call)
        version = _option(call, "api_version", "azure_api_version")
        if version == "v1":
            upstream.url = self.url(call, "/v1/realtime") + (f"?{call.query}" if call.query else "")
            return upstream
        if not version:
            raise bad_request(
                "azure-openai needs api_version (x-portkey-azure-api-version)", param="api_version"
            )
        query = dict(parse_qsl(call.query))
        deployment = (
            _option(call, "deployment_id", "azure_deployment_id")
            or query.get("deployment")
            or query.get("model")
        )
        if not deployment:
            raise bad_request(
                "azure-openai needs deployment_id (x-portkey-azure-deployment-id)", param="deployment_id"
            )
        query.pop("model", None)
        query.update({"api-version": version, "deployment": deployment})
        upstream.url = self.url(call, "/realtime") + "?" + urlencode(query)
        return upstream
