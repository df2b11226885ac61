"""Hook objects as configs write them (Portkey's ``HookObject``), and the shorthands.

Full hooks come in ``before_request_hooks`` / ``after_request_hooks``. The shorthands
``input_guardrails`` / ``output_guardrails`` / ``input_mutators`` / ``output_mutators`` (and the
``x-portkey-default-*-guardrails`` headers) are lists of objects whose reserved keys (``deny``,
``on_fail``, ``on_success``, ``async``, ``id``, ``type``, ``guardrail_version_id``,
``sequential``) are the hook's and every other key is a check: the key (or its value's ``id``) is
the check id, ``default.`` put before an id without a dot, and the value its parameters
(Portkey's ``convertHooksShorthand``). A hook without an ``id`` gets Portkey's kind of name,
``input_guardrail_x1z``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Literal, Protocol

import msgspec

from fastgate.guardrails.check import ConfigError


class FeedbackSpec(msgspec.Struct, kw_only=True):
    value: float | msgspec.UnsetType = msgspec.UNSET
    weight: float | msgspec.UnsetType = msgspec.UNSET
    metadata: dict[str, Any] | None = None


class OutcomeSpec(msgspec.Struct, kw_only=True):
    """``on_fail`` / ``on_success``: the feedback a hook's result carries."""

    feedback: FeedbackSpec | None = None


class CheckSpec(msgspec.Struct, kw_only=True):
    id: str
    parameters: dict[str, Any] = {}
    is_enabled: bool | None = None


class HookSpec(msgspec.Struct, kw_only=True):
    id: str | None = None
    #: Portkey runs no check of a hook without a type; a guardrail is what such a hook means.
    type: Literal["guardrail", "mutator"] = "guardrail"
    checks: list[CheckSpec] = []
    deny: bool = False
    async_: bool = msgspec.field(name="async", default=False)
    sequential: bool = False
    on_fail: OutcomeSpec | None = None
    on_success: OutcomeSpec | None = None
    guardrail_version_id: str | None = None


class HookFields(Protocol):
    """The hook fields of a config node (``fastgate.routing.config.ConfigNode``)."""

    before_request_hooks: list[HookSpec] | None
    after_request_hooks: list[HookSpec] | None
    input_guardrails: list[Any] | None
    output_guardrails: list[Any] | None
    input_mutators: list[Any] | None
    output_mutators: list[Any] | None


#: Shorthand keys that belong to the hook, by the name HookSpec gives them.
_RESERVED = {
    "deny": "deny",
    "on_fail": "on_fail",
    "onFail": "on_fail",
    "on_success": "on_success",
    "onSuccess": "on_success",
    "async": "async",
    "id": "id",
    "type": "type",
    "guardrail_version_id": "guardrail_version_id",
    "guardrailVersionId": "guardrail_version_id",
    "sequential": "sequential",
}
_ID_CHARS = "0123456789abcdefghijklmnopqrstuvwxyz"


def check_id(given: str) -> str:
    return given if "." in given else f"default.{given}"


def generated_id(kind: str) -> str:
    """Portkey's name for a shorthand hook: ``input_guardrail_`` and three base-36 characters."""
    return f"{kind}_guardrail_{''.join(random.choices(_ID_CHARS, k=3))}"


def from_shorthand(item: Any, kind: str, hook_type: str, where: str) -> HookSpec:
    """One shorthand object as a hook; a ConfigError naming ``where`` if it cannot be one."""
    if isinstance(item, str):
        raise ConfigError(
            f"{where}: {item!r} names a guardrail saved on Portkey's hosted app; those are not known "
            'here: write the guardrail inline ({"deny": true, "default.regexMatch": {...}})'
        )
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: a guardrail must be an object of check ids to parameters")
    fields: dict[str, Any] = {"type": hook_type}
    checks = []
    for key, value in item.items():
        if key in _RESERVED:
            fields[_RESERVED[key]] = value
            continue
        if value is True:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}.{key}: a check's value must be an object of its parameters")
        given = value.get("id", key)
        if not isinstance(given, str) or not given:
            raise ConfigError(f"{where}.{key}.id: must be a check id")
        enabled = value.get("is_enabled")
        checks.append({"id": check_id(given), "parameters": value, "is_enabled": enabled})
    fields["checks"] = checks
    try:
        hook = msgspec.convert(fields, HookSpec)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if hook.id is None:
        hook.id = generated_id(kind)
    return hook


#: Per event: the node's field of full hooks, its guardrail and mutator shorthands, the kind.
FIELDS = {
    "before": ("before_request_hooks", "input_guardrails", "input_mutators", "input"),
    "after": ("after_request_hooks", "output_guardrails", "output_mutators", "output"),
}
Event = Literal["before", "after"]


def node_specs(node: HookFields, event: Event, path: str) -> list[tuple[HookSpec, str]] | None:
    """A node's own hooks for one event with each one's path, in Portkey's order (full hooks,
    guardrails, mutators); None when it names none, so it inherits its parent's.

    A field present but empty counts as naming none of its own: ``[]`` clears what is inherited,
    as in Portkey (an empty array is truthy in JavaScript)."""
    full_name, guard_name, mutator_name, kind = FIELDS[event]
    full = getattr(node, full_name)
    guards = getattr(node, guard_name)
    mutators = getattr(node, mutator_name)
    if full is None and guards is None and mutators is None:
        return None
    prefix = f"{path}." if path else ""
    specs: list[tuple[HookSpec, str]] = []
    for i, hook in enumerate(full or ()):
        if hook.id is None:
            hook.id = generated_id(kind)
        specs.append((hook, f"{prefix}{full_name}[{i}]"))
    specs += shorthand_specs(guards or (), kind, "guardrail", f"{prefix}{guard_name}")
    specs += shorthand_specs(mutators or (), kind, "mutator", f"{prefix}{mutator_name}")
    return specs


def shorthand_specs(
    items: Iterable[Any], kind: str, hook_type: str, where: str
) -> list[tuple[HookSpec, str]]:
    """A shorthand list's hooks, each with its path (``where[i]``)."""
    return [
        (from_shorthand(item, kind, hook_type, f"{where}[{i}]"), f"{where}[{i}]")
        for i, item in enumerate(items)
    ]
