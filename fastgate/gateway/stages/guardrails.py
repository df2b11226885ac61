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

Hooks judge the request and the answer in the client's format, as Portkey's do: the request
type from ``Exchange.ingress`` (else the endpoint), the request from ``Exchange.params`` (or the
body). Through an ingress format's chat pivot the stage's place (inside the ingress stage) sees
the chat form, so there :class:`GuardrailsAnswers`, placed before the ingress stages, judges the
answer once they mapped it back, and a transformed request is mapped again by its ingress stage
(:class:`Remapping`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import msgspec

from fastgate._transforms import SSEDecoder
from fastgate.gateway.pipeline import Attempt, Exchange, Stage
from fastgate.gateway.relay import Outcome, failure_outcome
from fastgate.guardrails.compile import LeafHooks
from fastgate.guardrails.context import (
    CHAT,
    COMPLETE,
    EMBED,
    IMAGE_GENERATE,
    MESSAGES,
    RESPONSES,
    HookContext,
)
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
from fastgate.providers.base import RELAYED, Call, Endpoint
from fastgate.routing.plan import Leaf
from fastgate.schema.openai import object_decoder
from fastgate.ssrf import HostPolicy
from fastgate.upstream.pool import UpstreamPool

#: Portkey's name of each request type hooks run on (what ``allowedRequestTypes`` and webhooks
#: see): by the exchange's ingress format, else by its endpoint.
INGRESS_TYPES = {"messages": MESSAGES, "responses": RESPONSES}
ENDPOINT_TYPES = {
    Endpoint.CHAT: CHAT,
    Endpoint.COMPLETIONS: COMPLETE,
    Endpoint.EMBEDDINGS: EMBED,
    Endpoint.IMAGES: IMAGE_GENERATE,
}
_DONE = b"data: [DONE]\n\n"
#: The events of ``Exchange.verdicts``.
BEFORE_REQUEST, AFTER_REQUEST = "before_request", "after_request"
EVENT_STREAM = "text/event-stream"
#: An error event's data: OpenAI's shape (``errors.error_body``, a mapped provider's error, a
#: gateway's own) or Anthropic's (``{"type": "error", ...}``).
_ERRORS = (b'{"error"', b'{"type":"error"')
_encode = msgspec.json.Encoder().encode


def request_type(ex: Exchange) -> str | None:
    """Portkey's request type of the exchange, or None for a route hooks do not run on."""
    kind = ENDPOINT_TYPES.get(ex.endpoint)
    if ex.ingress:  # its creation route comes as chat (``count_tokens`` runs none, as Portkey's)
        return INGRESS_TYPES.get(ex.ingress) if kind is CHAT else None
    return kind


class Remapping(Protocol):
    """An ingress format's stage, which maps the request to the chat pivot as it engages."""

    def remap(self, ex: Exchange, at: Attempt, request: dict[str, Any]) -> None:
        """The request changed after that (a guardrail transformed it): map it again for the
        attempt, if the attempt goes through the pivot."""


class _Guard:
    """One attempt's hooks: its context, the before-request run and the 446 it made, if any;
    noted on the exchange too, where the last one's ``async`` hooks are found at the end."""

    __slots__ = (
        "before",
        "call",
        "ctx",
        "defaults",
        "denial",
        "denied",
        "hooks",
        "pivot",
        "strict",
        "verdicts",
    )

    def __init__(
        self,
        hooks: LeafHooks,
        ctx: HookContext,
        call: Call,
        defaults: LeafHooks | None,
        pivot: bool,
        verdicts: list[tuple[str, str]],
    ) -> None:
        self.hooks = hooks
        self.ctx = ctx
        #: The attempt's call, which its outcomes carry: whose answer the request got.
        self.call = call
        self.strict = call.target.strict_open_ai_compliance
        #: The default-guardrail headers' hooks, for the request's next attempts.
        self.defaults = defaults
        #: An ingress format reaches this target through the chat pivot: the answer is judged
        #: once mapped back (:class:`GuardrailsAnswers`).
        self.pivot = pivot
        self.before: HookRun | None = None
        #: The 446 of the before-request hooks (the attempt's answer, no upstream call).
        self.denial: Outcome | None = None
        #: A 446 this guard made and its body, which an ingress stage may have worded its way.
        self.denied: tuple[Outcome, bytes] | None = None
        #: The exchange's ``verdicts``, where each run's is put (for the metrics).
        self.verdicts = verdicts

    def judged(self, event: str, run: HookRun) -> None:
        """A run's verdict, if any hook ran: ``denied`` (446), ``failed`` or ``passed``."""
        if run.results:
            self.verdicts.append((event, "denied" if run.denied else "failed" if run.failed else "passed"))


class GuardrailsStage(Stage):
    def __init__(self, policy: HostPolicy, ingresses: Mapping[str, Remapping]) -> None:
        self.defaults = DefaultGuardrails(policy)
        #: The ingress formats' stages, by ``Exchange.ingress``.
        self.ingresses = ingresses
        #: The stage's outer part, placed before the ingress stages.
        self.answers = GuardrailsAnswers(self)
        #: What checks that call out share (``start``: they use the gateway's upstream pool).
        self.runtime: Runtime | None = None

    def start(self, pool: UpstreamPool) -> None:
        self.runtime = Runtime(PoolTransport(pool))

    async def close(self) -> None:
        """Let the ``async`` hooks still running finish (at shutdown)."""
        if self.runtime is not None:
            await self.runtime.close()

    def parts(self) -> tuple[Stage, ...]:
        return (self.answers, self)

    def arrive(self, ex: Exchange) -> bool:
        """The default-guardrail headers engage the stage (both parts) for every attempt of the
        request."""
        headers = ex.headers
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
        pivot = bool(ex.ingress) and call.endpoint not in RELAYED
        if ex.verdicts is None:
            ex.verdicts = []
        at.notes[self] = guard = _Guard(hooks, ctx, call, defaults, pivot, ex.verdicts)
        ex.note(self, guard)
        return True

    async def before(self, ex: Exchange, at: Attempt) -> Outcome | None:
        guard: _Guard = at.notes[self]
        if not guard.hooks.before:
            return None
        assert self.runtime is not None
        run = guard.before = await before_request(guard.hooks, guard.ctx, self.runtime)
        guard.judged(BEFORE_REQUEST, run)
        if run.denied:
            body = denied_body(run)
            guard.denial = Outcome(status=HOOKS_FAILED, provider=at.provider, call=at.call, body=body)
            guard.denied = (guard.denial, body)
            return guard.denial
        if run.request is not None:
            self._send(ex, at, run.request)
        return None

    def _send(self, ex: Exchange, at: Attempt, request: dict[str, Any]) -> None:
        """A before-request check transformed the request: it is what the attempt sends, as the
        client's format (the body as it came) or mapped again to the pivot by its ingress."""
        if at.notes[self].pivot:
            self.ingresses[ex.ingress].remap(ex, at, request)
            return
        call = at.call
        call.body = _encode(request)
        model = request.get("model")
        if isinstance(model, str) and model != call.view.model:  # a webhook may choose another
            call.view = msgspec.structs.replace(call.view, model=model)

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        guard: _Guard = at.notes[self]
        if outcome is guard.denial:
            return outcome
        if outcome.body is None:  # a stream (its watcher judges it), or an answer relayed as it comes
            outcome.status = stream_status(guard.before, outcome.status)
            if not (ex.ingress and outcome.upstream is not None and _relayed_json(outcome)):
                return outcome
            # A native ingress target's answer, in the client's format: judged whole.
            outcome = await _read_whole(outcome)
        if guard.pivot:
            return outcome  # judged in the client's format, once its ingress stage mapped it
        return await self.judge(guard, outcome)

    async def judge(self, guard: _Guard, outcome: Outcome) -> Outcome:
        """A JSON answer: the after-request hooks' verdict, status, and ``hook_results``."""
        body = outcome.body
        assert body is not None
        hooks = guard.hooks
        after = None
        if hooks.after or hooks.after_async:
            # Portkey judges only a 200's answer; any other keeps its status and gets the results.
            answer = _json_object(body) if outcome.status == 200 else None
            if hooks.after:
                assert self.runtime is not None
                after = await after_request(hooks, guard.ctx, answer, outcome.status, self.runtime)
                guard.judged(AFTER_REQUEST, after)
            else:
                guard.ctx.set_response(answer, outcome.status)
        outcome.status, outcome.body = json_answer(outcome.status, body, guard.before, after)
        if outcome.status == HOOKS_FAILED:
            guard.denied = (outcome, outcome.body)
        return outcome

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> _Prelude | None:
        guard: _Guard = at.notes[self]
        if guard.pivot:
            return None  # watched in the client's format (``GuardrailsAnswers``)
        return self.watcher(guard, outcome)

    def watcher(self, guard: _Guard, outcome: Outcome) -> _Prelude | None:
        if not outcome.content_type.startswith(EVENT_STREAM):
            return None
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


def _relayed_json(outcome: Outcome) -> bool:
    """A 2xx JSON answer relayed as it comes (an error is relayed as the upstream worded it)."""
    return 200 <= outcome.status < 300 and not outcome.content_type.startswith(EVENT_STREAM)


async def _read_whole(outcome: Outcome) -> Outcome:
    """A relayed answer read whole, to be judged before it goes out (as a mapped one is)."""
    resp = outcome.upstream
    assert resp is not None
    try:
        body = resp.received_body()
        outcome.body = body if body is not None else await resp.read()
    except (OSError, TimeoutError) as exc:
        outcome.release()
        return failure_outcome(outcome.provider, outcome.call, 502, f"upstream answer cut off ({exc})")
    outcome.upstream = None
    return outcome


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
                if data.startswith(_ERRORS):
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
        guard.judged(AFTER_REQUEST, after)
        return stream_epilogue(guard.before, after, guard.strict, guard.ctx.request_type) + self.done


class GuardrailsAnswers(Stage):
    """The guardrails stage's outer part, placed before the ingress stages so that their answers
    reach it in the client's format: it judges the answers of attempts through the chat pivot,
    and gives each 446 the guardrails made Portkey's body (an ingress stage words errors its own
    way). It acts only where the guardrails stage engaged (its note on the attempt), and arrives
    with it (``GuardrailsStage.parts``)."""

    def __init__(self, guardrails: GuardrailsStage) -> None:
        self.guardrails = guardrails

    def wants(self, leaf: Leaf) -> bool:
        return leaf.hooks is not None

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        return bool(ex.ingress)

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        guard: _Guard | None = at.notes.get(self.guardrails)
        if guard is None:
            return outcome
        if guard.pivot and outcome is not guard.denial and outcome.body is not None:
            outcome = await self.guardrails.judge(guard, outcome)
        denied = guard.denied
        if denied is not None and denied[0] is outcome:
            outcome.status, outcome.body = HOOKS_FAILED, denied[1]
        return outcome

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> _Prelude | None:
        guard: _Guard | None = at.notes.get(self.guardrails)
        if guard is None or not guard.pivot:
            return None
        return self.guardrails.watcher(guard, outcome)
