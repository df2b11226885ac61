"""Route handlers: read the request once, route it, relay the answer."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Generator
from functools import partial
from typing import Any

import msgspec

from fastgate._transforms import chat_error_to_messages
from fastgate.errors import GatewayError, bad_request
from fastgate.gateway.options import OptionsReader, RequestOptions
from fastgate.gateway.pipeline import Attempt, Exchange, Pipeline
from fastgate.gateway.relay import Outcome, attempt
from fastgate.gateway.stages.messages import MESSAGES
from fastgate.gateway.streaming import pipe_raw, write_stream
from fastgate.jsontext import check_duplicate_keys, check_text
from fastgate.providers.base import API_OPERATIONS, Call, Endpoint, Provider
from fastgate.providers.registry import get_provider
from fastgate.routing.breaker import CircuitBreaker
from fastgate.routing.plan import NO_CIRCUITS, Leaf, RoutePlan, plan_targets
from fastgate.routing.retry import RetryPolicy, decide
from fastgate.schema.openai import RawContentChatRequest, RequestView, object_decoder, view_decoder
from fastgate.server.messages import Request, Response
from fastgate.settings import Settings
from fastgate.upstream.pool import UpstreamPool

_EMPTY_VIEW = RequestView()
_JSON_TYPES = ("", "application/json")
#: Held once, as in ``providers/openai.py``.
_CHAT = Endpoint.CHAT


class Gateway:
    """Holds what every request shares: settings, the options reader, the stages, the upstream pool."""

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
        #: Circuits of the targets under a ``cb_config`` (none without one).
        self.breaker = CircuitBreaker()
        #: The stages around the upstream call (replaced by make_app with the server's own).
        self.pipeline = Pipeline(())

    def endpoint(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[Response | None]]:
        """The handler of an inference route (no coroutine layer of its own)."""
        return partial(self._infer, endpoint)

    # The handlers below check the request and return the coroutine of ``_route`` that answers
    # it: a coroutine of their own would cost its set-up, and every resume would walk it again.

    def models(self, request: Request) -> Awaitable[Response | None]:
        ex = Exchange(request=request, endpoint=Endpoint.MODELS, headers=request.headers, view=_EMPTY_VIEW)
        try:
            self.pipeline.arrive(ex)
            ex.opts = opts = self.reader.read(request.headers)
            plan = opts.plan or self.reader.plan_for_model(None, opts)
        except BaseException as exc:
            self._refused(ex, exc)
            raise
        return self._route(ex, plan, query=request.query)  # still percent-encoded, as in proxy()

    def proxy(self, request: Request) -> Awaitable[Response | None]:
        """Portkey's catch-all: path, query and body to the provider's base URL, answer relayed as is."""
        ex = Exchange(
            request=request,
            endpoint=Endpoint.PROXY,
            headers=request.headers,
            body=request.body,
            view=_EMPTY_VIEW,
            stream=True,
        )
        try:
            self.pipeline.arrive(ex)
            ex.opts = opts = self.reader.read(request.headers)
            path = request.match_info["tail"]  # decoded: judged as the upstream will read it
            if ".." in path.split("/") or "\\" in path:
                raise bad_request("Invalid path", code="invalid_path")
            # Sent on as it came, still percent-encoded: decoded, %0D%0A would split the upstream
            # request line and %252e%252e would reach the upstream as "..".
            plan = opts.plan or self.reader.plan_for_model(None, opts)
        except BaseException as exc:
            self._refused(ex, exc)
            raise
        return self._route(ex, plan, path=request.path[len("/v1") :], query=request.query)

    async def messages(self, request: Request) -> Response | None:
        """Anthropic's Messages API (and its ``count_tokens``): the stages map it per target
        (``stages/messages.py``); every error, the gateway's own included, in Anthropic's shape."""
        endpoint = Endpoint.MESSAGES_COUNT if request.path.endswith("/count_tokens") else Endpoint.CHAT
        try:
            return await self._infer(endpoint, request, MESSAGES)
        except GatewayError as exc:
            if request.streaming:
                raise
            return Response(exc.status, chat_error_to_messages(exc.status, exc.body()), exc.headers)

    def _infer(self, endpoint: Endpoint, request: Request, ingress: str = "") -> Awaitable[Response | None]:
        body = request.body
        ex = Exchange(
            request=request,
            endpoint=endpoint,
            headers=request.headers,
            body=body,
            view=_EMPTY_VIEW,
            ingress=ingress,
        )
        try:
            if request.content_type not in _JSON_TYPES:
                raise GatewayError(
                    415, f"Unsupported content type {request.content_type!r}: send application/json"
                )
            self.pipeline.arrive(ex)
            ex.opts = opts = self.reader.read(request.headers)
            if not body:
                raise bad_request("Request body is empty: send a JSON object")
            plan = opts.plan
            decodes_body = plan.decodes_body if plan is not None else self.reader.server.decodes_body
            params: dict[str, Any] | None = None
            view: RequestView | RawContentChatRequest
            check_text(body)
            try:
                if decodes_body or ex.decodes_body:
                    # Conditions, the cache or guardrails read the whole body: decode it once, take
                    # the view from it.
                    params = object_decoder.decode(body)
                    view = msgspec.convert(params, RequestView)
                elif (
                    plan is not None
                    and plan.chat_request_decoder is not None
                    and endpoint is _CHAT
                    and not ingress
                ):
                    view = plan.chat_request_decoder.decode(body)  # the whole request, for the mapping too
                else:
                    view = view_decoder.decode(body)
            except (msgspec.DecodeError, RecursionError) as exc:
                raise body_error(exc) from None
            check_duplicate_keys(body)
            if plan is None:
                plan = self.reader.plan_for_model(view.model, opts)
        except BaseException as exc:
            self._refused(ex, exc)
            raise
        ex.view, ex.stream, ex.params = view, bool(view.stream), params
        return self._route(ex, plan)

    def routed(self, ex: Exchange) -> Awaitable[Response | None]:
        """An exchange an ingress format's handler made (its body decoded, and noted for the
        format's stage): the stages see it arrive, then it is routed as its ``view`` says."""
        try:
            self.pipeline.arrive(ex)
            ex.opts = opts = self.reader.read(ex.request.headers)
            plan = opts.plan or self.reader.plan_for_model(ex.view.model, opts)
        except BaseException as exc:
            self._refused(ex, exc)
            raise
        return self._route(ex, plan)

    def _refused(self, ex: Exchange, exc: BaseException) -> None:
        """The request was refused before it was routed: the stages that hear every request, and
        those it engaged, hear how it ended all the same."""
        pipeline = self.pipeline
        if pipeline.hearing or ex.ending:
            ex.error = exc
            pipeline.end(ex)
            ex.error = None

    async def _route(
        self, ex: Exchange, plan: RoutePlan, *, path: str = "", query: str = ""
    ) -> Response | None:
        """Walk the plan: each leaf tried (with its retries and stages) until the plan is
        satisfied; then answer with the outcome that satisfied it."""
        pipeline = self.pipeline
        try:
            root = plan.root
            walker: Generator[Leaf, tuple[int, bool], None] | None = None
            skipped: list[str] | None = None
            opts = ex.opts
            if isinstance(root, Leaf):
                # One target (most requests): no walk at all, and no circuit (with no sibling to
                # go to, a target is tried whatever its circuit would say).
                leaf = root.overridden(opts.overrides) if opts.overrides else root
            else:
                doc: dict[str, Any] = {}
                if plan.roots:
                    url = {"pathname": ex.request.path}
                    doc = {"metadata": opts.metadata, "params": ex.params or {}, "url": url}
                open_circuits = NO_CIRCUITS
                if plan.circuits:  # a cb_config applies: which targets to pass over, and say so
                    open_circuits = await self.breaker.open_among(plan.circuits)
                    skipped = []
                walker = plan_targets(
                    plan, doc=doc, overrides=opts.overrides, open_circuits=open_circuits, skipped=skipped
                )
                leaf = next(walker)
            pool = self.pool
            assert pool is not None
            request = ex.request
            while True:
                call = Call(
                    endpoint=ex.endpoint,
                    target=leaf.target,
                    body=ex.body,
                    view=ex.view,
                    method=request.method,
                    path=path,
                    query=query,
                    headers=ex.headers,
                    upload=ex.upload,
                )
                for stage in pipeline.trying:
                    stage.tried(ex, leaf)
                leaf_stages = leaf.stages if leaf.stages is not None else pipeline.for_leaf(leaf)
                at = pipeline.engage(ex, leaf, call, leaf_stages) if ex.stages or leaf_stages else None
                provider = get_provider(call.target.provider)
                if at is None:
                    if call.endpoint not in provider.endpoints:
                        call.endpoint = passthrough_instead(provider, call.endpoint)
                    outcome = await attempt(pool, provider, call, ex.stream)
                    if leaf.retry is not None:
                        outcome = await self._retried(ex, None, leaf, provider, outcome)
                    if leaf.circuit is not None:
                        await self._count(leaf, outcome)
                else:
                    at.provider = provider
                    outcome = await self._staged(ex, at, leaf)
                if walker is None or (ex.upload is not None and not ex.upload.replayable):
                    break  # (an upload too large to send again: its first answer is final)
                try:
                    leaf = walker.send((outcome.status, outcome.reached))
                except StopIteration:
                    break
                except BaseException:  # a conditional further down found no target: free this answer
                    outcome.release()
                    raise
                outcome.release()
            if at is not None and (
                outcome.mapper is not None or outcome.upstream is not None or outcome.events is not None
            ):
                pipeline.watch(ex, at, outcome)
            ex.outcome = outcome
            headers = _answer_headers(opts, outcome)
            if skipped:
                # Portkey's unreleased name for "a circuit was open", then which options were passed over.
                headers["x-portkey-circuit-breaker-triggered"] = "true"
                headers["x-portkey-skipped-option-indexes"] = ",".join(skipped)
                self.breaker.skipped(plan.config_id, skipped)
            for stage in pipeline.responding:
                stage.respond(ex, outcome, headers)
            if outcome.mapper is not None:
                await write_stream(request, outcome, headers)
                return None
            if outcome.session is not None:  # a Realtime session: the client is upgraded
                await outcome.session.serve(request, headers)
                return None
            if outcome.upstream is not None or outcome.events is not None:
                await pipe_raw(request, outcome, headers)
                return None
            return Response(outcome.status, outcome.body or b"", headers, outcome.content_type)
        except BaseException as exc:
            ex.error = exc
            raise
        finally:
            # ``Pipeline.end``, without a frame of its own on every request's path.
            for stage in pipeline.hearing:
                stage.end(ex)
            for stage in ex.ending:
                stage.end(ex)
            # Not kept: the error's traceback holds this frame, and so the exchange (a cycle
            # only a full collection would free).
            ex.error = None

    async def _staged(self, ex: Exchange, at: Attempt, leaf: Leaf) -> Outcome:
        """An attempt with stages engaged: theirs before, the upstream's answer (or theirs), and
        theirs after on each answer, retries included."""
        pipeline = self.pipeline
        outcome = await pipeline.before(ex, at)
        if outcome is None:
            assert self.pool is not None
            if at.call.endpoint not in at.provider.endpoints:
                at.call.endpoint = passthrough_instead(at.provider, at.call.endpoint)
            outcome = await attempt(self.pool, at.provider, at.call, ex.stream)
            outcome = await pipeline.after(ex, at, outcome)
            if leaf.retry is not None:
                outcome = await self._retried(ex, at, leaf, at.provider, outcome)
            if leaf.circuit is not None:
                await self._count(leaf, outcome)
            return outcome
        return await pipeline.after(ex, at, outcome)

    async def _count(self, leaf: Leaf, outcome: Outcome) -> None:
        """A leaf's final answer from its upstream (retries done) counts for its circuit."""
        assert leaf.circuit is not None and leaf.rule is not None
        await self.breaker.record(leaf.circuit, leaf.rule, outcome.status)

    async def _retried(
        self, ex: Exchange, at: Attempt | None, leaf: Leaf, provider: Provider, outcome: Outcome
    ) -> Outcome:
        """A leaf with retry settings: more attempts while they allow, with backoff between them
        (without settings there is nothing to decide: most requests never come here)."""
        assert leaf.retry is not None and self.pool is not None
        call = outcome.call
        policy = self.retry_policy
        retries = 0
        waited_ms = 0.0
        while True:
            decision = decide(
                policy, leaf.retry, retries, outcome.status, outcome.headers, waited_ms, random.random()
            )
            if not decision.retry or (ex.upload is not None and not ex.upload.replayable):
                outcome.retries = -1 if decision.gave_up else retries
                return outcome
            outcome.release()
            waited_ms += decision.delay_ms
            await asyncio.sleep(decision.delay_ms / 1000)
            retries += 1
            outcome = await attempt(self.pool, provider, call, ex.stream)
            if at is not None:
                outcome = await self.pipeline.after(ex, at, outcome)


def passthrough_instead(provider: Provider, endpoint: Endpoint) -> Endpoint:
    """An API operation a provider does not serve as such goes through its passthrough, as any
    other ``/v1/*`` path would (Anthropic's and Mistral's files APIs, say); any other endpoint,
    or one the provider names an alternative for, is refused."""
    if (
        endpoint in API_OPERATIONS
        and Endpoint.PROXY in provider.endpoints
        and endpoint not in provider.instead
    ):
        return Endpoint.PROXY
    raise provider.unsupported(endpoint)


def body_error(exc: msgspec.DecodeError | RecursionError) -> GatewayError:
    """What is wrong with a request body its decoder refused, as the 400 that says so."""
    if isinstance(exc, msgspec.ValidationError):
        return bad_request(f"Invalid request body: {exc}")
    if isinstance(exc, msgspec.DecodeError):
        return bad_request(f"Request body is not valid JSON: {exc}")
    return bad_request("Request body is nested too deeply")


def _answer_headers(opts: RequestOptions, outcome: Outcome) -> dict[str, str]:
    """The upstream's relayed headers with Portkey's ``x-portkey-*`` answer headers added."""
    headers = outcome.headers
    headers["x-portkey-provider"] = outcome.provider.name
    headers["x-portkey-trace-id"] = opts.trace_id
    headers["x-portkey-last-used-option-index"] = outcome.call.target.path
    headers["x-portkey-retry-attempt-count"] = str(outcome.retries)
    headers.setdefault("x-portkey-cache-status", "DISABLED")
    return headers


async def health(request: Request) -> Response:
    return Response(200, b'{"status":"ok"}')


async def root(request: Request) -> Response:
    return Response(200, b"fastgate says hey!", content_type="text/plain; charset=utf-8")
