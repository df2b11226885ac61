"""Route handlers: read the request once, route it, relay the answer."""

from __future__ import annotations

import aiohttp
import msgspec
from aiohttp import web

from fastgate.errors import GatewayError, bad_request
from fastgate.providers.base import Call, Endpoint
from fastgate.providers.registry import get_provider
from fastgate.routing.plan import plan_targets
from fastgate.schema.openai import RequestView, view_decoder
from fastgate.server.options import OptionsReader, RequestOptions
from fastgate.server.relay import Outcome, attempt
from fastgate.server.streaming import write_stream
from fastgate.settings import Settings

_EMPTY_VIEW = RequestView()
_JSON_TYPES = ("", "application/json")


class Gateway:
    """Holds what every request shares: settings, the options reader and the upstream pool."""

    def __init__(self, settings: Settings, reader: OptionsReader) -> None:
        self.settings = settings
        self.reader = reader
        self.session: aiohttp.ClientSession | None = None

    async def _read_body(self, request: web.Request) -> bytes:
        length = request.content_length
        if length is not None and length > self.settings.max_body_bytes:
            raise GatewayError(413, "Request body is too large", code="body_too_large")
        return await request.read()

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._infer(request, Endpoint.CHAT)

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._infer(request, Endpoint.COMPLETIONS)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._infer(request, Endpoint.EMBEDDINGS)

    async def models(self, request: web.Request) -> web.StreamResponse:
        opts = self.reader.read(request.headers)
        outcome = await self._route(
            request, opts, Endpoint.MODELS, b"", _EMPTY_VIEW, stream=False, query=request.query_string
        )
        return await self._respond(request, opts, outcome)

    async def proxy(self, request: web.Request) -> web.StreamResponse:
        """Portkey's catch-all: path, query and body to the provider's base URL, answer relayed as is."""
        body = await self._read_body(request)
        opts = self.reader.read(request.headers)
        path = request.match_info["tail"]
        if ".." in path.split("/") or "\\" in path:
            raise bad_request("Invalid path", code="invalid_path")
        outcome = await self._route(
            request,
            opts,
            Endpoint.PROXY,
            body,
            _EMPTY_VIEW,
            stream=True,
            path="/" + path,
            query=request.query_string,
        )
        return await self._respond(request, opts, outcome)

    async def _infer(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        body = await self._read_body(request)
        if request.content_type not in _JSON_TYPES:
            raise GatewayError(
                415, f"Unsupported content type {request.content_type!r}: send application/json"
            )
        opts = self.reader.read(request.headers)
        if not body:
            raise bad_request("Request body is empty: send a JSON object")
        try:
            view = view_decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise bad_request(f"Invalid request body: {exc}") from None
        except msgspec.DecodeError as exc:
            raise bad_request(f"Request body is not valid JSON: {exc}") from None
        outcome = await self._route(request, opts, endpoint, body, view, stream=bool(view.stream))
        return await self._respond(request, opts, outcome)

    async def _route(
        self,
        request: web.Request,
        opts: RequestOptions,
        endpoint: Endpoint,
        body: bytes,
        view: RequestView,
        *,
        stream: bool,
        path: str = "",
        query: str = "",
    ) -> Outcome:
        assert self.session is not None
        walker = plan_targets(opts.config)
        target = next(walker)
        while True:
            provider = get_provider(target.provider)
            if endpoint not in provider.endpoints:
                raise provider.unsupported(endpoint)
            call = Call(
                endpoint=endpoint,
                target=target,
                body=body,
                view=view,
                method=request.method,
                path=path,
                query=query,
                headers=request.headers,
            )
            outcome = await attempt(self.session, provider, call, stream)
            try:
                target = walker.send(outcome.status)
            except StopIteration:
                return outcome
            outcome.release()

    async def _respond(
        self, request: web.Request, opts: RequestOptions, outcome: Outcome
    ) -> web.StreamResponse:
        headers = outcome.headers
        headers["x-portkey-provider"] = outcome.provider.name
        headers["x-portkey-trace-id"] = opts.trace_id
        headers["x-portkey-last-used-option-index"] = outcome.call.target.path
        headers["x-portkey-retry-attempt-count"] = str(outcome.retries)
        if outcome.mapper is not None:
            return await write_stream(request, outcome, headers)
        if outcome.upstream is not None:
            return await _pipe_raw(request, outcome, headers)
        return web.Response(
            status=outcome.status, body=outcome.body, headers=headers, content_type=outcome.content_type
        )


async def _pipe_raw(request: web.Request, outcome: Outcome, headers: dict[str, str]) -> web.StreamResponse:
    upstream = outcome.upstream
    assert upstream is not None
    resp = web.StreamResponse(status=outcome.status, headers=headers)
    resp.content_type = outcome.content_type
    try:
        await resp.prepare(request)
        async for chunk in upstream.content.iter_any():
            await resp.write(chunk)
        await resp.write_eof()
    finally:
        outcome.release()
    return resp


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def root(request: web.Request) -> web.Response:
    return web.Response(text="fastgate says hey!")
