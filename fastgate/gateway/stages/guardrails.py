"""Guardrails and hooks around each attempt, as Portkey's gateway runs them (reference §7; the
engine is ``fastgate/guardrails/``).

- Before the upstream call, the leaf's before-request hooks (its own or inherited, then those of
  the ``x-portkey-default-input-guardrails`` header) judge the request: a failing ``deny`` hook is
  the attempt's answer, a 446, and no upstream call; a transformed request is what is sent.
- After it, each answer of the attempt (retries included, so a 446 may be retried or fallen back
  from like any status): a JSON answer is judged whole and gets ``hook_results`` (446 when a
  ``deny`` hook failed, 246 when another did and the upstream said 200); a stream gets 246 when a
  before-request hook failed, the before-request results as its first event in non-strict mode,
  and the after-request hooks' verdict on the assembled answer as its last event before
  ``[DONE]`` (Portkey skips them on streams).
- A cached answer is judged like a fresh one: its ``hook_results`` and 246 as Portkey gives a
  hit, and the after-request hooks too (Portkey runs none on a hit, and would serve a cached
  answer its output guardrails had denied).
- ``async`` hooks run once the answer went out, on the attempt that gave it, delaying nothing.

The request is read from the exchange, not the call, so an ingress format can set it: the
request type from ``Exchange.ingress`` (else the endpoint) and the JSON from ``Exchange.params``,
both in the client's format; the answer is judged in the format the outcome holds here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate._transforms import SSEDecoder
from fastgate.gateway.pipeline import Attempt, Exchange, Stage
from fastgate.gateway.relay import Outcome
from fastgate.guardrails.compile import LeafHooks
from fastgate.guardrails.context import CHAT, COMPLETE, EMBED, MESSAGES, RESPONSES, HookContext
from fastgate.guardrails.defaults import INPUT, OUTPUT, DefaultGuardrails
from fastgate.guardrails.engine import HookRun, after_request, before_request, spawn_async
from fastgate.guardrails.outcome import (
    HOOKS_FAILED,
    denied_body,
    json_answer,
    stream_epilogue,
    stream_prelude,
    stream_status,
)
from fastgate.guardrails.runtime import Runtime
from fastgate.guardrails.stream import StreamAnswer
from fastgate.guardrails.transport import PoolTransport
from fastgate.providers.base import Call, Endpoint
from fastgate.routing.plan import Leaf
from fastgate.schema.openai import object_decoder
from fastgate.ssrf import HostPolicy
from fastgate.upstream.pool import UpstreamPool

#: Portkey's name of each request type hooks run on (what ``allowedRequestTypes`` and webhooks
#: see): by the exchange's ingress format, else by its endpoint.
INGRESS_TYPES = {"messages": MESSAGES, "responses": RESPONSES}
ENDPOINT_TYPES = {Endpoint.CHAT: CHAT, Endpoint.COMPLETIONS: COMPLETE, Endpoint.EMBEDDINGS: EMBED}
_DONE = b"data: [DONE]\n\n"
EVENT_STREAM = "text/event-stream"
#: An error event's data (``errors.error_body``, a mapped provider's error, a gateway's own).
_ERROR = b'{"error"'
_encode = msgspec.json.Encoder().encode


def request_type(ex: Exchange) -> str | None:
    """Portkey's request type of the exchange, or None for a route hooks do not run on."""
    if ex.ingress:
        return INGRESS_TYPES.get(ex.ingress)
    return ENDPOINT_TYPES.get(ex.endpoint)


class _Guard:
    """One attempt's hooks: its context, the before-request run and the 446 it made, if any;
    noted on the exchange too, where the last one's ``async`` hooks are found at the end."""

    __slots__ = ("before", "call", "ctx", "defaults", "denial", "hooks", "strict")

    def __init__(self, hooks: LeafHooks, ctx: HookContext, call: Call, defaults: LeafHooks | None) -> None:
        self.hooks = hooks
        self.ctx = ctx
        #: The attempt's call, which its outcomes carry: whose answer the request got.
        self.call = call
        self.strict = call.target.strict_open_ai_compliance
        #: The default-guardrail headers' hooks, for the request's next attempts.
        self.defaults = defaults
        self.before: HookRun | None = None
        self.denial: Outcome | None = None


class GuardrailsStage(Stage):
    def __init__(self, policy: HostPolicy) -> None:
        self.defaults = DefaultGuardrails(policy)
        #: What checks that call out share (``start``: they use the gateway's upstream pool).
        self.runtime: Runtime | None = None

    def start(self, pool: UpstreamPool) -> None:
        self.runtime = Runtime(PoolTransport(pool))

    async def close(self) -> None:
        """Let the ``async`` hooks still running finish (at shutdown)."""
        if self.runtime is not None:
            await self.runtime.close()

    def arrive(self, ex: Exchange) -> bool:
        """The default-guardrail headers engage the stage for every attempt of the request."""
        headers = ex.request.headers
        if INPUT not in headers and OUTPUT not in headers:  # most requests: no call further
            return False
        defaults = self.defaults.read(headers)
        if not defaults or request_type(ex) is None:
            return False
        ex.note(self, defaults)
        ex.decodes_body = True  # the checks read the request
        return True

    def wants(self, leaf: Leaf) -> bool:
        return leaf.hooks is not None

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        kind = request_type(ex)
        if kind is None:
            return False
        hooks = at.leaf.hooks
        # Noted on the exchange: the headers' hooks (by ``arrive``), or an earlier attempt's guard.
        noted = ex.notes.get(self) if ex.notes is not None else None
        defaults = noted.defaults if type(noted) is _Guard else noted
        if defaults is not None:
            hooks = defaults if hooks is None else hooks.joined(defaults)
        assert hooks is not None  # the leaf's (``wants``) or the headers' (``arrive``)
        params = ex.params
        if params is None:  # an ingress that did not have the body decoded whole
            params = ex.params = object_decoder.decode(ex.body)
        call = at.call
        ctx = HookContext(
            params,
            kind,
            call.target.provider,
            metadata=ex.opts.metadata,
            headers=ex.request.headers,
            is_streaming=ex.stream,
        )
        at.notes[self] = guard = _Guard(hooks, ctx, call, defaults)
        ex.note(self, guard)
        return True

    async def before(self, ex: Exchange, at: Attempt) -> Outcome | None:
        guard: _Guard = at.notes[self]
        if not guard.hooks.before:
            return None
        assert self.runtime is not None
        run = guard.before = await before_request(guard.hooks, guard.ctx, self.runtime)
        if run.denied:
            guard.denial = Outcome(
                status=HOOKS_FAILED, provider=at.provider, call=at.call, body=denied_body(run)
            )
            return guard.denial
        if run.request is not None:
            _send(ex, at, run.request)
        return None

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        guard: _Guard = at.notes[self]
        if outcome is guard.denial:
            return outcome
        body = outcome.body
        if body is None:  # a stream (its watcher judges it), or an answer relayed as it comes
            outcome.status = stream_status(guard.before, outcome.status)
            return outcome
        hooks = guard.hooks
        after = None
        if hooks.after or hooks.after_async:
            # Portkey judges only a 200's answer; any other keeps its status and gets the results.
            answer = _json_object(body) if outcome.status == 200 else None
            if hooks.after:
                assert self.runtime is not None
                after = await after_request(hooks, guard.ctx, answer, outcome.status, self.runtime)
            else:
                guard.ctx.set_response(answer, outcome.status)
        outcome.status, outcome.body = json_answer(outcome.status, body, guard.before, after)
        return outcome

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> _Prelude | None:
        if not outcome.content_type.startswith(EVENT_STREAM):
            return None  # a JSON answer relayed as it comes (a native ingress): not judged
        guard: _Guard = at.notes[self]
        prelude = stream_prelude(guard.before, guard.strict, guard.ctx.request_type)
        if guard.hooks.after or guard.hooks.after_async:
            assert self.runtime is not None
            return _StreamVerdict(guard, self.runtime, prelude)
        return _Prelude(prelude) if prelude else None

    def end(self, ex: Exchange) -> None:
        """The attempt that answered runs its ``async`` hooks, now that the answer went out."""
        guard = ex.noted(self)
        outcome = ex.outcome
        if type(guard) is not _Guard or outcome is None or outcome.call is not guard.call:
            return  # the request failed, or a target without hooks answered it
        hooks = guard.hooks
        if hooks.before_async or hooks.after_async:
            assert self.runtime is not None
            spawn_async(hooks, guard.ctx, self.runtime)


def _send(ex: Exchange, at: Attempt, request: dict[str, Any]) -> None:
    """A before-request check transformed the request: it is what the attempt sends.

    The call carries the client's body until an ingress stage maps it; a stage that maps it
    later in the order (in its ``before``) maps the transformed one.
    """
    call = at.call
    if call.body is not ex.body:
        return
    call.body = _encode(request)
    model = request.get("model")
    if isinstance(model, str) and model != call.view.model:  # a webhook may choose another
        call.view = msgspec.structs.replace(call.view, model=model)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        answer = object_decoder.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    return answer


class _Prelude:
    """A stream whose hooks are all behind it: the before-request results as its first event."""

    __slots__ = ("prelude",)

    def __init__(self, prelude: bytes) -> None:
        self.prelude = prelude

    def feed(self, out: bytes) -> bytes:
        prelude = self.prelude
        if prelude:
            self.prelude = b""
            return prelude + out
        return out

    async def end(self) -> bytes:
        return b""


class _StreamVerdict(_Prelude):
    """A stream judged whole at its end: its events are read as they pass (each decoded once,
    by ``StreamAnswer``), ``[DONE]`` is held back, and the after-request verdict goes before it.
    A stream that carried an error event ends as it came: there is no answer to judge."""

    __slots__ = ("answer", "decoder", "done", "failed", "guard", "runtime")

    def __init__(self, guard: _Guard, runtime: Runtime, prelude: bytes) -> None:
        super().__init__(prelude)
        self.guard = guard
        self.runtime = runtime
        self.answer = StreamAnswer(guard.ctx.request_type)
        self.decoder = SSEDecoder()
        self.done = b""
        self.failed = False

    def feed(self, out: bytes) -> bytes:
        if out:
            answer = self.answer
            for _, data in self.decoder.feed(out):
                if data.startswith(_ERROR):
                    self.failed = True
                else:
                    answer.feed(data)
            if not self.failed and out.endswith(_DONE):
                self.done = _DONE
                out = out[: -len(_DONE)]
        return super().feed(out)

    async def end(self) -> bytes:
        guard = self.guard
        if self.failed:
            return b""
        answer = self.answer.answer()
        if not guard.hooks.after:
            guard.ctx.set_response(answer, 200)  # for the async hooks
            return self.done
        after = await after_request(guard.hooks, guard.ctx, answer, 200, self.runtime)
        return stream_epilogue(guard.before, after, guard.strict, guard.ctx.request_type) + self.done
