"""Route handlers: read the request once, route it, relay the answer."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Generator
from functools import partial
from typing import Any

import msgspec

from fastgate.errors import GatewayError, bad_request
from fastgate.gateway.access import NOTHING, Access, Grant
from fastgate.gateway.options import OptionsReader, RequestOptions
from fastgate.gateway.relay import Outcome, attempt
from fastgate.gateway.streaming import UPSTREAM_FAILURES, write_stream
from fastgate.jsontext import check_duplicate_keys, check_text
from fastgate.providers.base import Call, Endpoint, Provider
from fastgate.providers.registry import get_provider
from fastgate.routing.breaker import CircuitBreaker
from fastgate.routing.plan import Leaf, RoutePlan, plan_targets
from fastgate.routing.retry import RetryPolicy, decide
from fastgate.schema.openai import RawContentChatRequest, RequestView, object_decoder, view_decoder
from fastgate.server.messages import Request, Response
from fastgate.settings import Settings
from fastgate.upstream.pool import UpstreamPool

_EMPTY_VIEW = RequestView()
_JSON_TYPES = ("", "application/json")


class Gateway:
    """Holds what every request shares: settings, the options reader and the upstream pool."""

    def __init__(self, settings: Settings, reader: OptionsReader) -> None:
        self.settings = settings
        self.reader = reader
        self.pool: UpstreamPool | None = None
        self.retry_policy = RetryPolicy(
            max_attempts=settings.max_retry_attempts,
            base_ms=settings.retry_base_ms,
            cap_ms=settings.retry_cap_ms,
            jitter=settings.retry_jitter,
            retry_after_budget_ms=settings.retry_after_budget_ms,
        )
        self.breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_cooldown_s)
        #: Keys, limits and the response cache (replaced by make_app with the server's own).
        self.access = Access(None, None)

    def endpoint(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response | None]]:
        """The handler of an inference route (no coroutine layer of its own)."""
        return partial(self._infer, endpoint)

    # The handlers below check the request and return the coroutine of ``_route`` that answers
    # it: a coroutine of their own would cost its set-up, and every resume would walk it again.

    def models(self, request: Request) -> Awaitable[Response | None]:
        grant = self.access.authorize(request.headers)
        opts = self.reader.read(request.headers)
        plan = opts.plan or self.reader.plan_for_model(None)
        query = request.query  # still percent-encoded, as in proxy()
        return self._route(
            request, opts, plan, Endpoint.MODELS, b"", _EMPTY_VIEW, stream=False, query=query, grant=grant
        )

    async def metrics(self, request: Request) -> Response:
        """Prometheus text: the circuit state of every upstream target that has failed."""
        return Response(
            200,
            self.breaker.prometheus().encode(),
            {"Cache-Control": "no-cache"},
            content_type="text/plain; version=0.0.4; charset=utf-8",
        )

    def proxy(self, request: Request) -> Awaitable[Response | None]:
        """Portkey's catch-all: path, query and body to the provider's base URL, answer relayed as is."""
        body = request.body
        grant = self.access.authorize(request.headers)
        opts = self.reader.read(request.headers)
        path = request.match_info["tail"]  # decoded: judged as the upstream will read it
        if ".." in path.split("/") or "\\" in path:
            raise bad_request("Invalid path", code="invalid_path")
        # Sent on as it came, still percent-encoded: decoded, %0D%0A would split the upstream
        # request line and %252e%252e would reach the upstream as "..".
        return self._route(
            request,
            opts,
            opts.plan or self.reader.plan_for_model(None),
            Endpoint.PROXY,
            body,
            _EMPTY_VIEW,
            stream=True,
            path=request.path[len("/v1") :],
            query=request.query,
            grant=grant,
        )

    def _infer(self, endpoint: Endpoint, request: Request) -> Awaitable[Response | None]:
        body = request.body
        if request.content_type not in _JSON_TYPES:
            raise GatewayError(
                415, f"Unsupported content type {request.content_type!r}: send application/json"
            )
        grant = self.access.authorize(request.headers)
        opts = self.reader.read(request.headers)
        if not body:
            raise bad_request("Request body is empty: send a JSON object")
        plan = opts.plan
        decodes_body = plan.decodes_body if plan is not None else self.reader.server.decodes_body
        params: dict[str, Any] | None = None
        view: RequestView | RawContentChatRequest
        check_text(body)
        try:
            if decodes_body:
                # Conditions or the cache read the whole body: decode it once, take the view from it.
                params = object_decoder.decode(body)
                view = msgspec.convert(params, RequestView)
            elif plan is not None and plan.chat_request_decoder is not None and endpoint is Endpoint.CHAT:
                view = plan.chat_request_decoder.decode(body)  # the whole request, for the mapping too
            else:
                view = view_decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise bad_request(f"Invalid request body: {exc}") from None
        except msgspec.DecodeError as exc:
            raise bad_request(f"Request body is not valid JSON: {exc}") from None
        except RecursionError:
            raise bad_request("Request body is nested too deeply") from None
        check_duplicate_keys(body)
        if plan is None:
            plan = self.reader.plan_for_model(view.model)
        return self._route(
            request, opts, plan, endpoint, body, view, stream=bool(view.stream), params=params, grant=grant
        )

    async def _route(
        self,
        request: Request,
        opts: RequestOptions,
        plan: RoutePlan,
        endpoint: Endpoint,
        body: bytes,
        view: RequestView | RawContentChatRequest,
        *,
        stream: bool,
        path: str = "",
        query: str = "",
        params: dict[str, Any] | None = None,
        grant: Grant | None = None,
    ) -> Response | None:
        """Walk the plan: each leaf tried (with its retries) until the plan is satisfied; then
        answer with the outcome that satisfied it."""
        root = plan.root
        walker: Generator[Leaf, tuple[int, bool], None] | None = None
        if isinstance(root, Leaf):
            # One target (most requests): tried whatever its circuit says (a walk would too, as
            # its only choice), so no walk at all.
            leaf = root.overridden(opts.overrides) if opts.overrides else root
        else:
            doc: dict[str, Any] = {}
            if plan.roots:
                doc = {"metadata": opts.metadata, "params": params or {}, "url": {"pathname": request.path}}
            walker = plan_targets(plan, doc=doc, overrides=opts.overrides, breaker=self.breaker)
            leaf = next(walker)
        access, pool = self.access, self.pool
        assert pool is not None
        headers = request.headers if grant is None else access.client_headers(request.headers, grant)
        while True:
            target = leaf.target
            vk_rule = None
            # No gateway key, virtual key or cache: Access.target, plan and settle would each hand
            # back what they were given, so they are not called (most requests).
            plain = grant is None and leaf.cache is None and not target.virtual_key
            if not plain:
                target, vk_rule = access.target(target, grant, view.model)
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
                headers=headers,
            )
            admission, early = NOTHING, None
            if not plain:
                admission = access.plan(
                    call,
                    grant,
                    vk_rule,
                    leaf.cache,
                    force_refresh=opts.cache_force_refresh,
                    stream=stream,
                    params=params,
                )
                if admission is not NOTHING:
                    early = await access.admit(provider, call, grant, admission, pool)
                if early is not None and early.reached:
                    outcome = early  # a cached answer
                    break
            if early is None:
                outcome = await attempt(pool, provider, call, stream, self.breaker, leaf.identity)
                if leaf.retry is not None:
                    outcome = await self._retried(leaf, provider, call, stream, outcome)
            else:
                outcome = early  # unreached: this target's virtual key is over its limit
            if not plain:
                access.settle(outcome, admission)
            if walker is None:
                break
            try:
                leaf = walker.send((outcome.status, outcome.reached))
            except StopIteration:
                break
            except BaseException:  # a conditional further down found no target: free this answer
                outcome.release()
                raise
            outcome.release()
        headers = _answer_headers(opts, outcome)
        if outcome.mapper is not None:
            await write_stream(request, outcome, headers)
            return None
        if outcome.upstream is not None:
            await _pipe_raw(request, outcome, headers)
            return None
        return Response(outcome.status, outcome.body or b"", headers, outcome.content_type)

    async def _retried(
        self, leaf: Leaf, provider: Provider, call: Call, stream: bool, outcome: Outcome
    ) -> Outcome:
        """A leaf with retry settings: more attempts while they allow, with backoff between them.
        (Without settings there is nothing to decide: most requests never come here.)"""
        assert leaf.retry is not None and self.pool is not None
        policy = self.retry_policy
        retries = 0
        waited_ms = 0.0
        while True:
            decision = decide(
                policy, leaf.retry, retries, outcome.status, outcome.headers, waited_ms, random.random()
            )
            if not decision.retry:
                outcome.retries = -1 if decision.gave_up else retries
                return outcome
            outcome.release()
            waited_ms += decision.delay_ms
            await asyncio.sleep(decision.delay_ms / 1000)
            retries += 1
            outcome = await attempt(self.pool, provider, call, stream, self.breaker, leaf.identity)


def _answer_headers(opts: RequestOptions, outcome: Outcome) -> dict[str, str]:
    """The upstream's relayed headers with Portkey's ``x-portkey-*`` answer headers added."""
    headers = outcome.headers
    headers["x-portkey-provider"] = outcome.provider.name
    headers["x-portkey-trace-id"] = opts.trace_id
    headers["x-portkey-last-used-option-index"] = outcome.call.target.path
    headers["x-portkey-retry-attempt-count"] = str(outcome.retries)
    headers.setdefault("x-portkey-cache-status", "DISABLED")
    return headers


async def _pipe_raw(request: Request, outcome: Outcome, headers: dict[str, str]) -> None:
    upstream = outcome.upstream
    assert upstream is not None
    chunks = upstream.chunks()
    try:
        await request.start_stream(outcome.status, headers, outcome.content_type)
        while True:
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            except UPSTREAM_FAILURES:
                # The upstream broke mid-answer. A raw relay has no error event to send: the
                # client's connection is cut, so it sees an incomplete body, not a clean end.
                request.abort()
                return
            await request.send(chunk)
        request.end_stream()
    finally:
        outcome.release()


async def health(request: Request) -> Response:
    return Response(200, b'{"status":"ok"}')


async def root(request: Request) -> Response:
    return Response(200, b"fastgate says hey!", content_type="text/plain; charset=utf-8")
