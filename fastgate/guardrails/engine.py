"""Running hooks as Portkey's ``HooksManager`` does (``src/middlewares/hooks/index.ts``).

- A hook's checks run side by side on the same context, or one after another (``sequential``,
  and every mutator), each then seeing the last one's transformed request or answer. Side by
  side, the transformations are applied in check order, a later one replacing an earlier one.
- A check that raises fails with Portkey's ``Check error``. A hook passes when each of its checks
  passed or erred without ``failOnError``: errors fail open unless the check says otherwise.
- Hooks run in config order, each on the request as the hooks before it left it. (Portkey starts
  them all on the original request and keeps only the last transformation: two redacting hooks
  would leave the first one's matches in the clear.)
- Skipped, as Portkey skips them: every hook of a request type hooks do not run on, the
  after-request hooks of an answer whose status is not 200, and on embeddings after-request
  hooks and mutators.
- Checks that need no I/O run straight through, with no task or future per check.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from time import perf_counter
from typing import Any

import msgspec

from fastgate.guardrails.check import Check, CheckError, CheckOutcome
from fastgate.guardrails.compile import Hook, LeafHooks
from fastgate.guardrails.context import AFTER, BEFORE, BEFORE_ONLY, EMBED, HOOKED_TYPES, HookContext
from fastgate.guardrails.results import CheckResult, Feedback, HookResult, iso_now
from fastgate.guardrails.runtime import Runtime

log = logging.getLogger(__name__)
_CRASHED = CheckError("Error executing check", "Check error")


class HookRun:
    """What one event's hooks decided."""

    __slots__ = ("denied", "failed", "request", "response", "results")

    def __init__(self, results: list[HookResult], ctx: HookContext) -> None:
        self.results = results
        #: A hook with ``deny`` failed: 446.
        self.denied = False
        #: Some hook failed (with or without ``deny``): 246 when the answer would be a 200.
        self.failed = False
        for result in results:
            if not result.verdict:
                self.failed = True
                self.denied = self.denied or result.deny
        #: The request to send and the answer to return, when a check changed them (else None).
        self.request = ctx.request if ctx.request_transformed else None
        self.response = ctx.response if ctx.response_transformed else None


def _skipped(hook: Hook, event: str, ctx: HookContext) -> bool:
    kind = ctx.request_type
    if kind not in HOOKED_TYPES:
        return True
    if kind in BEFORE_ONLY and (event == AFTER or (kind == EMBED and hook.type == "mutator")):
        return True
    return event == AFTER and ctx.status != 200


def _result(check: Check, outcome: CheckOutcome, start: float, created: str) -> CheckResult:
    """``start``: the check's ``perf_counter`` reading as it began (its whole milliseconds since
    then are its execution time)."""
    error = outcome.error
    return CheckResult(
        outcome.data,
        outcome.verdict,
        check.id,
        msgspec.UNSET if error is None else error,
        int((perf_counter() - start) * 1000),
        outcome.request is not None or outcome.response is not None,
        created,
        outcome.log,
        check.fail_on_error,
    )


def _crashed(check: Check) -> CheckOutcome:
    if log.isEnabledFor(logging.WARNING):
        log.warning("guardrail check %s raised", check.id, exc_info=True)
    return CheckOutcome(False, None, _CRASHED)


async def _call_io(
    check: Check, ctx: HookContext, event: str, runtime: Runtime
) -> tuple[CheckResult, CheckOutcome]:
    start, created = perf_counter(), iso_now()
    try:
        outcome = await check.run_async(ctx, event, runtime) if check.is_async else check.run(ctx, event)
    except Exception:
        outcome = _crashed(check)
    return _result(check, outcome, start, created), outcome


def _feedback(hook: Hook, checks: list[CheckResult]) -> Feedback | None:
    """Portkey's ``createFeedbackObject``: ``on_success`` when every check passed or erred."""
    passed = all(c.verdict or c.error is not msgspec.UNSET for c in checks)
    spec = hook.on_success if passed else hook.on_fail
    if spec is None:
        return None
    return Feedback(
        value=spec.value,
        weight=spec.weight,
        metadata={
            **(spec.metadata or {}),
            "successfulChecks": ", ".join(c.id for c in checks if c.verdict),
            "failedChecks": ", ".join(c.id for c in checks if not c.verdict and c.error is msgspec.UNSET),
            "erroredChecks": ", ".join(
                c.id for c in checks if not c.verdict and c.error is not msgspec.UNSET
            ),
        },
    )


def _hook_result(hook: Hook, checks: list[CheckResult], start: float, created: str) -> HookResult:
    verdict, transformed = True, False
    for c in checks:
        if not c.verdict and (c.error is msgspec.UNSET or c.fail_on_error):
            verdict = False
        transformed = transformed or c.transformed
    return HookResult(
        verdict=verdict,
        id=hook.id,
        transformed=transformed,
        checks=checks,
        feedback=None if hook.on_fail is None and hook.on_success is None else _feedback(hook, checks),
        execution_time=int((perf_counter() - start) * 1000),
        async_=hook.is_async,
        type=hook.type,
        created_at=created,
        deny=hook.deny and not verdict,
    )


def _apply(ctx: HookContext, outcomes: Sequence[CheckOutcome]) -> None:
    for outcome in outcomes:
        if outcome.request is not None or outcome.response is not None:
            ctx.replace(outcome.request, outcome.response)


def run_local(hook: Hook, event: str, ctx: HookContext) -> HookResult:
    """A hook whose checks need no I/O, run straight through. Side by side, each check's
    ``created_at`` is its hook's (the same millisecond)."""
    start, created = perf_counter(), iso_now()
    checks = []
    sequential = hook.sequential
    changed = []
    for check in hook.checks:
        began, check_created = perf_counter(), iso_now() if sequential else created
        try:
            outcome = check.run(ctx, event)
        except Exception:
            outcome = _crashed(check)
        checks.append(_result(check, outcome, began, check_created))
        if outcome.request is not None or outcome.response is not None:
            if sequential:  # the next check reads what this one made
                ctx.replace(outcome.request, outcome.response)
            else:
                changed.append(outcome)
    _apply(ctx, changed)
    return _hook_result(hook, checks, start, created)


async def run_io(hook: Hook, event: str, ctx: HookContext, runtime: Runtime) -> HookResult:
    """A hook with checks that wait on the network: side by side unless ``sequential``."""
    start, created = perf_counter(), iso_now()
    checks = []
    if hook.sequential:
        for check in hook.checks:
            result, outcome = await _call_io(check, ctx, event, runtime)
            _apply(ctx, (outcome,))
            checks.append(result)
    else:
        done = await asyncio.gather(*(_call_io(check, ctx, event, runtime) for check in hook.checks))
        checks = [result for result, _ in done]
        _apply(ctx, [outcome for _, outcome in done])
    return _hook_result(hook, checks, start, created)


async def run_hooks(hooks: Sequence[Hook], event: str, ctx: HookContext, runtime: Runtime) -> HookRun:
    """Run one event's in-line hooks on ``ctx``; ``ctx`` is left with what they changed."""
    results = []
    for hook in hooks:
        if _skipped(hook, event, ctx):
            continue
        if hook.needs_io:
            results.append(await run_io(hook, event, ctx, runtime))
        else:
            results.append(run_local(hook, event, ctx))
    return HookRun(results, ctx)


def before_request(hooks: LeafHooks, ctx: HookContext, runtime: Runtime) -> Coroutine[Any, Any, HookRun]:
    """The before-request hooks of a leaf, on the request in ``ctx`` (to await)."""
    return run_hooks(hooks.before, BEFORE, ctx, runtime)


def after_request(
    hooks: LeafHooks, ctx: HookContext, answer: dict[str, Any] | None, status: int, runtime: Runtime
) -> Coroutine[Any, Any, HookRun]:
    """The after-request hooks of a leaf, on ``answer`` (decoded JSON; None for a stream whose
    text could not be assembled) with the upstream's ``status``."""
    ctx.set_response(answer, status)
    ctx.response_transformed = False
    return run_hooks(hooks.after, AFTER, ctx, runtime)


def spawn_async(hooks: LeafHooks, ctx: HookContext, runtime: Runtime) -> asyncio.Task[Any] | None:
    """Start a leaf's ``async`` hooks, to run after the answer went out (Portkey's open-source
    gateway never runs them); their results are logged at debug level and change nothing."""
    if not (hooks.before_async or hooks.after_async):
        return None

    async def run() -> None:
        before = await run_hooks(hooks.before_async, BEFORE, ctx, runtime)
        after = await run_hooks(hooks.after_async, AFTER, ctx, runtime)
        if log.isEnabledFor(logging.DEBUG):
            for result in before.results + after.results:
                log.debug("async hook %s: verdict %s", result.id, result.verdict)

    return runtime.spawn(run())
