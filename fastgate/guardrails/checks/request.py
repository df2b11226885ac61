"""Checks on who asks for what: the model, the request type, the metadata (Portkey's
``modelWhitelist``, ``modelRules``, ``allowedRequestTypes``, ``requiredMetadataKeys``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastgate.guardrails.check import Check, CheckError, CheckOutcome, Explanations, error, explain
from fastgate.guardrails.checks.text import operator_explanation, operator_verdict
from fastgate.guardrails.context import BEFORE, HookContext


class ModelWhitelist(Check):
    """The request's model is in ``models``; ``not`` makes the list a block list."""

    __slots__ = ("models",)
    EXPLANATIONS: Explanations = (
        lambda model: f'Model "{model}" is allowed.',
        lambda model: f'Model "{model}" is not in the allowed list.',
        lambda model: f'Model "{model}" is not in the allowed list as expected.',
        lambda model: f'Model "{model}" is in the allowed list when it should not be.',
    )

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.models = parameters.get("models")

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        models, model = self.models, ctx.model
        if not isinstance(models, list) or not model:
            message = (
                "Missing or invalid model whitelist"
                if not isinstance(models, list)
                else "Missing model in request"
            )
            return CheckOutcome(
                False,
                {
                    "explanation": f"An error occurred while checking model whitelist: {message}",
                    "requestedModel": model or "No model specified",
                    "not": self.invert,
                    "allowedModels": models or [],
                },
                error(message),
            )
        listed = model in models
        verdict = not listed if self.invert else listed
        explanation = explain(self.EXPLANATIONS, verdict, self.invert, model)
        return CheckOutcome(
            verdict,
            {
                "verdict": verdict,
                "not": self.invert,
                "explanation": explanation,
                "requestedModel": model,
                "allowedModels": models,
            },
        )


class ModelRules(Check):
    """The request's model is among those ``rules`` allow for its metadata
    (``{"defaults": [models], "metadata": {key: {value: [models]}}}``); ``not`` inverts."""

    __slots__ = ("defaults", "rules", "table")
    EXPLANATIONS: Explanations = (
        lambda model: f'Model "{model}" is allowed by rules.',
        lambda model: f'Model "{model}" is not allowed by rules.',
        lambda model: f'Model "{model}" is not permitted by rules (blocked list).',
        lambda model: f'Model "{model}" is permitted by rules (in blocked list).',
    )

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        rules = parameters.get("rules")
        self.rules = rules if isinstance(rules, dict) else None
        rules = self.rules or {}
        defaults = rules.get("defaults")
        self.defaults = [str(m) for m in defaults] if isinstance(defaults, list) else []
        table = rules.get("metadata")
        self.table: dict[str, Any] = table if isinstance(table, dict) else {}

    def _failed(self, message: str) -> CheckOutcome:
        return CheckOutcome(
            False, {"explanation": f"An error occurred while checking model rules: {message}"}, error(message)
        )

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        model = ctx.model
        if not model:
            return self._failed("Missing model in request")
        if self.rules is None:
            return self._failed("Missing rules configuration")
        allowed: dict[str, None] = {}
        matched: list[str] = []
        for key, mapping in self.table.items():
            value = ctx.metadata.get(key)
            if value is None or not isinstance(mapping, dict):
                continue
            for one in value if isinstance(value, list) else [value]:
                label = _js_string(one)
                models = mapping.get(label)
                if isinstance(models, list):
                    matched.append(f"{key}:{label}")
                    allowed.update((m, None) for m in models if isinstance(m, str) and m)
        using_defaults = not allowed
        resolved = self.defaults if using_defaults else list(allowed)
        if not resolved:
            return self._failed("No allowed models resolved from rules")
        listed = model in resolved
        verdict = not listed if self.invert else listed
        explanation = explain(self.EXPLANATIONS, verdict, self.invert, model)
        if verdict and matched:
            explanation += f" (matched rules: {', '.join(matched)})"
        elif verdict and using_defaults:
            explanation += " (using default models)"
        return CheckOutcome(verdict, {"explanation": explanation})


def _js_string(value: Any) -> str:
    """``String(value)`` in JavaScript, for metadata values used as keys."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _type_list(value: Any) -> list[Any]:
    """A list of request types: an array, or a comma-separated string."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value:
        return [t.strip() for t in value.split(",")]
    return []


class AllowedRequestTypes(Check):
    """The request type (``chatComplete``, ``complete``, ``embed``, ``messages``...) is in
    ``allowedTypes`` and not in ``blockedTypes``; without them, metadata ``supported_endpoints`` /
    ``blocked_endpoints`` decide; with neither, everything is allowed."""

    __slots__ = ("allowed", "blocked")

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.allowed = _type_list(parameters.get("allowedTypes"))
        self.blocked = _type_list(parameters.get("blockedTypes"))

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        metadata = ctx.metadata
        allowed = self.allowed or _type_list(metadata.get("supported_endpoints"))
        blocked = self.blocked or _type_list(metadata.get("blocked_endpoints"))
        kind = ctx.request_type
        conflicts = [t for t in allowed if t in blocked] if allowed and blocked else []
        if conflicts:
            message = (
                "Conflict detected: The following types appear in both allowedTypes and blockedTypes: "
                f"{', '.join(map(str, conflicts))}. Please remove them from one list."
            )
            return CheckOutcome(
                False,
                {
                    "explanation": f"An error occurred while checking allowed request types: {message}",
                    "currentRequestType": kind,
                    "allowedTypes": self.parameters.get("allowedTypes")
                    or metadata.get("supported_endpoints")
                    or [],
                    "blockedTypes": self.parameters.get("blockedTypes")
                    or metadata.get("blocked_endpoints")
                    or [],
                },
                error(message),
            )
        if not allowed and not blocked:
            mode, verdict = "unrestricted", True
            explanation = f'Request type "{kind}" is allowed (no restrictions configured).'
        elif not allowed:
            mode, verdict = "blocklist", kind not in blocked
            explanation = (
                f'Request type "{kind}" is allowed (not in blocklist).'
                if verdict
                else f'Request type "{kind}" is blocked.'
            )
        elif not blocked:
            mode, verdict = "allowlist", kind in allowed
            explanation = (
                f'Request type "{kind}" is allowed.'
                if verdict
                else f'Request type "{kind}" is not allowed. Allowed types are: '
                + ", ".join(map(str, allowed))
            )
        else:
            mode, verdict = "combined", kind not in blocked and kind in allowed
            if verdict:
                explanation = f'Request type "{kind}" is allowed (in allowlist and not blocked).'
            elif kind in blocked:
                explanation = f'Request type "{kind}" is explicitly blocked.'
            else:
                remaining = ", ".join(str(t) for t in allowed if t not in blocked)
                explanation = (
                    f'Request type "{kind}" is not in the allowed list. '
                    f"Allowed types (excluding blocked): {remaining}"
                )
        data: dict[str, Any] = {"currentRequestType": kind}
        if allowed:
            data["allowedTypes"] = allowed
        elif mode == "unrestricted":
            data["allowedTypes"] = ["all"]
        if blocked:
            data["blockedTypes"] = blocked
        if self.allowed or self.blocked:
            source = "parameters"
        elif metadata.get("supported_endpoints") or metadata.get("blocked_endpoints"):
            source = "metadata"
        else:
            source = "default"
        data.update(verdict=verdict, explanation=explanation, source=source, mode=mode)
        return CheckOutcome(verdict, data)


class RequiredMetadataKeys(Check):
    """The request's metadata has ``metadataKeys`` by ``operator`` (default ``all``)."""

    __slots__ = ("keys", "operator")

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.keys = parameters.get("metadataKeys")
        self.operator = parameters.get("operator", "all")

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        keys = self.keys
        # Portkey's plugin reports these as error objects without a name, and a verdict of true.
        if event != BEFORE:
            return CheckOutcome(True, None, CheckError("This plugin only works for before_request_hooks"))
        if not isinstance(keys, list) or not keys:
            return CheckOutcome(True, None, CheckError("metadataKeys must be an array and not empty"))
        if not all(isinstance(k, str) for k in keys):
            return CheckOutcome(True, None, CheckError("metadataKeys must be an array of strings"))
        if self.operator not in ("all", "any", "none"):
            return CheckOutcome(True, None, CheckError("operator must be one of: all, any, none"))
        metadata = ctx.metadata
        found = [k for k in keys if k in metadata]
        missing = [k for k in keys if k not in metadata]
        verdict = operator_verdict(self.operator, len(found), len(missing))
        return CheckOutcome(
            verdict,
            {
                "explanation": operator_explanation(self.operator, verdict, "metadata key"),
                "missing_metadata_keys": missing,
                "found_metadata_keys": found,
                "operator": self.operator,
            },
        )
