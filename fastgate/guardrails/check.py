"""What a check is: built once per config with its parameters, run per request on a context.

A built-in check and an operator's own (entry-point group ``fastgate.guardrails``, see
``docs/guardrails.md``) share this interface. ``Check.__init__`` raises :class:`ConfigError` for
parameters it can never run with (a regex RE2 cannot compile, a schema that is not a schema); the
config is then refused with a 400 naming the check's path. Problems Portkey reports at run time
(a missing ``rule``, no text to read) stay run-time errors, reported in the check's result and
failing open unless the check sets ``failOnError``, as Portkey does.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

if TYPE_CHECKING:
    from fastgate.guardrails.context import HookContext
    from fastgate.guardrails.runtime import Runtime


class ConfigError(ValueError):
    """Parameters a check cannot be built with: the config is refused (400)."""


class CheckError(msgspec.Struct, omit_defaults=True):
    """A check's error as Portkey reports it (``{name, message}``; ``name`` absent for errors
    that are plain objects in Portkey's plugins)."""

    message: str
    name: str | msgspec.UnsetType = msgspec.UNSET


def error(message: str) -> CheckError:
    """An error named like a JavaScript ``Error`` (what most of Portkey's plugins throw)."""
    return CheckError(message, "Error")


class CheckOutcome(msgspec.Struct):
    """What one run of a check found. ``request`` / ``response`` are the changed request or
    answer JSON of a transforming check (Portkey's ``transformedData``), None when unchanged."""

    verdict: bool
    data: Any = None
    error: CheckError | None = None
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    log: Any = None


class Check:
    """A compiled check. Local checks override :meth:`run`; checks that do I/O set
    ``is_async`` and override :meth:`run_async` (given the runtime's HTTP transport and caches)."""

    __slots__ = ("fail_on_error", "id", "invert", "parameters")
    #: The parameters that are URLs the gateway will call: judged by the SSRF policy at config time.
    url_parameters: ClassVar[tuple[str, ...]] = ()
    is_async: ClassVar[bool] = False

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        self.id = id
        self.parameters = parameters
        self.fail_on_error = bool(parameters.get("failOnError", False))
        #: Portkey's ``not`` flag, which most checks take: the verdict inverted.
        self.invert = bool(parameters.get("not", False))

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        raise NotImplementedError

    async def run_async(self, ctx: HookContext, event: str, runtime: Runtime) -> CheckOutcome:
        return self.run(ctx, event)


#: An operator's check as a plain function: ``(context, parameters, event) -> CheckOutcome``.
CheckFunction = Callable[["HookContext", Mapping[str, Any], str], "CheckOutcome | Awaitable[CheckOutcome]"]


class FunctionCheck(Check):
    """A check function from an entry point, called with its parameters on every run."""

    __slots__ = ("function",)

    def __init__(self, id: str, parameters: Mapping[str, Any], function: CheckFunction) -> None:
        super().__init__(id, parameters)
        self.function = function

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        outcome = self.function(ctx, self.parameters, event)
        assert isinstance(outcome, CheckOutcome), f"{self.id} must return a CheckOutcome"
        return outcome


class AsyncFunctionCheck(FunctionCheck):
    __slots__ = ()
    is_async = True

    async def run_async(self, ctx: HookContext, event: str, runtime: Runtime) -> CheckOutcome:
        outcome = self.function(ctx, self.parameters, event)
        result = await outcome if inspect.isawaitable(outcome) else outcome
        assert isinstance(result, CheckOutcome), f"{self.id} must return a CheckOutcome"
        return result


#: Portkey's four explanations of a check with a ``not`` flag: passed, failed, passed inverted,
#: failed inverted; each a function of the check's values (an f-string: ``str.format`` would
#: parse its template on every request).
Explanations = tuple[Callable[..., str], Callable[..., str], Callable[..., str], Callable[..., str]]


def explain(explanations: Explanations, verdict: bool, invert: bool, *values: Any) -> str:
    """The explanation for this verdict and flag (``values``: its function's arguments, in order)."""
    return explanations[(0 if verdict else 1) + (2 if invert else 0)](*values)


def excerpt(text: str) -> str:
    """Portkey's ``textExcerpt``: the first 100 characters, then ``...``."""
    return text[:100] + "..." if len(text) > 100 else text
