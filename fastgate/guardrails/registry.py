"""Check ids → check classes: Portkey's default plugin, and operators' own checks from the
``fastgate.guardrails`` entry-point group.

An entry point's name is the check id (``myorg.pii``) and its object either a :class:`Check`
subclass (built once per config with its parameters) or a function ``(context, parameters,
event) -> CheckOutcome`` (a coroutine function for checks that wait on I/O). Entry points are
read once, at the first config that names a check the default plugin does not have.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from functools import partial
from importlib.metadata import entry_points
from typing import Any

from fastgate.guardrails.check import AsyncFunctionCheck, Check, FunctionCheck
from fastgate.guardrails.checks.jwt import Jwt
from fastgate.guardrails.checks.remote import Log, Webhook
from fastgate.guardrails.checks.request import (
    AllowedRequestTypes,
    ModelRules,
    ModelWhitelist,
    RequiredMetadataKeys,
)
from fastgate.guardrails.checks.structured import JsonKeys, JsonSchema
from fastgate.guardrails.checks.text import (
    AllLowercase,
    AllUppercase,
    CharacterCount,
    Contains,
    ContainsCode,
    EndsWith,
    NotNull,
    RegexMatch,
    SentenceCount,
    WordCount,
)
from fastgate.guardrails.checks.transform import AddPrefix, RegexReplace

GROUP = "fastgate.guardrails"
#: How a check is built: ``(id, parameters) -> Check``.
Factory = Callable[[str, Mapping[str, Any]], Check]

DEFAULT: dict[str, Factory] = {
    "default.regexMatch": RegexMatch,
    "default.regexReplace": RegexReplace,
    "default.sentenceCount": SentenceCount,
    "default.wordCount": WordCount,
    "default.characterCount": CharacterCount,
    "default.jsonSchema": JsonSchema,
    "default.jsonKeys": JsonKeys,
    "default.contains": Contains,
    "default.containsCode": ContainsCode,
    "default.alluppercase": AllUppercase,
    "default.alllowercase": AllLowercase,
    "default.endsWith": EndsWith,
    "default.modelWhitelist": ModelWhitelist,
    "default.modelRules": ModelRules,
    "default.allowedRequestTypes": AllowedRequestTypes,
    "default.requiredMetadataKeys": RequiredMetadataKeys,
    "default.notNull": NotNull,
    "default.addPrefix": AddPrefix,
    "default.jwt": Jwt,
    "default.webhook": Webhook,
    "default.log": Log,
}
#: Portkey plugins that call a hosted service with the config's credentials: not built in.
PARTNERS = frozenset(
    {
        "portkey",
        "qualifire",
        "aporia",
        "sydelabs",
        "pillar",
        "patronus",
        "mistral",
        "pangea",
        "promptfoo",
        "bedrock",
        "acuvity",
        "lasso",
        "exa",
        "azure",
        "promptsecurity",
        "panw-prisma-airs",
        "walledai",
        "javelin",
        "f5-guardrails",
        "crowdstrike-aidr",
    }
)


def as_factory(obj: Any) -> Factory:
    """A factory for an entry point's object: a Check subclass, or a check function."""
    if isinstance(obj, type) and issubclass(obj, Check):
        return obj
    if callable(obj):
        cls = AsyncFunctionCheck if inspect.iscoroutinefunction(obj) else FunctionCheck
        return partial(_function_check, cls, obj)
    raise TypeError(f"{obj!r} is neither a Check subclass nor a check function")


def _function_check(cls: type[FunctionCheck], function: Any, id: str, parameters: Mapping[str, Any]) -> Check:
    return cls(id, parameters, function)


class Registry:
    """The checks a config may name."""

    def __init__(self, checks: Mapping[str, Factory] | None = None, *, plugins: bool = True) -> None:
        self._checks: dict[str, Factory] = dict(DEFAULT if checks is None else checks)
        self._plugins_read = not plugins

    def add(self, id: str, check: Any) -> None:
        self._checks[id] = as_factory(check)

    def get(self, id: str) -> Factory | None:
        found = self._checks.get(id)
        if found is None and not self._plugins_read:
            self._plugins_read = True
            for point in entry_points(group=GROUP):
                self._checks.setdefault(point.name, as_factory(point.load()))
            found = self._checks.get(id)
        return found

    def missing(self, id: str) -> str:
        """Why ``id`` names no check, for the 400."""
        source = id.split(".", 1)[0]
        if source in PARTNERS:
            return (
                f"unknown check {id!r}: Portkey's {source} plugin calls a hosted service and is not built "
                f"in; a package can provide it through the {GROUP!r} entry-point group"
            )
        return f"unknown check {id!r} (built in: {', '.join(sorted(DEFAULT))}; more through {GROUP!r})"


#: The registry configs are compiled against, unless a test or an embedder passes its own.
REGISTRY = Registry()
