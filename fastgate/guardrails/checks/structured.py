"""Checks on JSON found in the text: ``jsonSchema`` and ``jsonKeys`` (Portkey's
``plugins/default/jsonSchema.ts``, ``jsonKeys.ts``).

JSON is looked for as Portkey does: fenced code blocks, then ``{...}`` spans up to the first
``}``. Those spans cannot hold a nested object, so Portkey finds no JSON in a plain nested
answer (``{"user": {"name": "x"}}``, what ``response_format: json_object`` returns); here a text
that is itself one JSON object is tried first. The schema is checked and its validator built once
per config (``jsonschema``, draft 2020-12 as Portkey's ``@cfworker/json-schema``, formats
checked); ``$ref`` never fetches anything (``referencing`` resolves nothing remote).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastgate.guardrails.check import Check, CheckOutcome, ConfigError, Explanations, error, excerpt, explain
from fastgate.guardrails.checks.text import operator_verdict
from fastgate.guardrails.context import HookContext

if TYPE_CHECKING:
    from jsonschema import Draft202012Validator

_FENCED = re.compile(r"```+(?:json)?\s*([\s\S]*?)```+")
_FLAT_OBJECT = re.compile(r"\{[^}]*\}")


def json_candidates(text: str, *, spans_too: bool) -> list[str]:
    """JSON texts to try, in Portkey's order: fenced blocks, then (``jsonSchema``: only when no
    block was found; ``jsonKeys``: always) the whole text if it is an object, and flat spans."""
    found = [m.strip() for m in _FENCED.findall(text)]
    if found and not spans_too:
        return found
    whole = text.strip()
    if whole.startswith("{") and whole.endswith("}"):
        found.append(whole)
    found.extend(_FLAT_OBJECT.findall(text))
    return found


def _parsed(candidate: str) -> Any:
    try:
        return json.loads(candidate)
    except ValueError:
        return None


class JsonSchema(Check):
    """Some JSON in the text validates against ``schema``; ``not`` inverts."""

    __slots__ = ("validator",)
    EXPLANATIONS: Explanations = (
        lambda: "Successfully validated JSON against the provided schema.",
        lambda: "Failed to validate JSON against the provided schema.",
        lambda: "Successfully validated JSON does not match the schema as expected.",
        lambda: "JSON matches the schema when it should not.",
    )

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        schema = parameters.get("schema")
        self.validator: Draft202012Validator | None = None
        if isinstance(schema, dict):
            # Imported with the first jsonSchema check a config names: a worker without one does
            # not load jsonschema (5 MB of RSS).
            from jsonschema import Draft202012Validator
            from jsonschema.exceptions import SchemaError

            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise ConfigError(f"schema is not a valid JSON Schema: {exc.message}") from None
            self.validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        validator = self.validator
        if validator is None:
            return CheckOutcome(
                False,
                {
                    "explanation": "An error occurred while processing the JSON.",
                    "error": "Missing or invalid JSON schema",
                    "not": self.invert,
                },
                error("Missing or invalid JSON schema"),
            )
        best: tuple[Any, list[Any]] | None = None
        valid = False
        for candidate in json_candidates(ctx.text(event), spans_too=False):
            value = _parsed(candidate)
            if value is None:
                continue
            try:
                errors = list(validator.iter_errors(value))
            except Exception as exc:  # an unresolvable $ref, a schema keyword that cannot run
                message = str(exc)
                return CheckOutcome(
                    False,
                    {
                        "explanation": "An error occurred while processing the JSON.",
                        "error": message,
                        "not": self.invert,
                    },
                    error(message),
                )
            if not errors or best is None:
                best = (value, errors)
            if not errors:
                valid = True
                break
        if best is None:
            return CheckOutcome(
                False, {"explanation": "No valid JSON found in the response.", "not": self.invert}
            )
        verdict = not valid if self.invert else valid
        explanation = explain(self.EXPLANATIONS, verdict, self.invert)
        return CheckOutcome(
            verdict,
            {
                "matchedJson": best[0],
                "not": self.invert,
                "explanation": explanation,
                "validationErrors": [
                    {"path": "".join(f"/{p}" for p in e.absolute_path), "message": e.message} for e in best[1]
                ],
            },
        )


class JsonKeys(Check):
    """Some JSON object in the text has ``keys`` by ``operator`` (``any`` / ``all`` / ``none``)."""

    __slots__ = ("keys", "operator")

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.keys = parameters.get("keys")
        self.operator = parameters.get("operator", "any")

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        text = ctx.text(event)
        keys, operator = self.keys, self.operator
        if not text:
            message = "Missing text to analyze"
        elif not isinstance(keys, list) or not keys:
            message = "Missing or invalid keys array"
        elif operator not in ("any", "all", "none"):
            message = 'Invalid or missing operator (must be "any", "all", or "none")'
        else:
            return self._judge(text, keys, operator)
        return CheckOutcome(
            False,
            {
                "explanation": f"An error occurred while processing JSON: {message}",
                "operator": operator,
                "requiredKeys": keys,
                "textExcerpt": excerpt(text) or "No text available",
            },
            error(message),
        )

    def _judge(self, text: str, keys: list[Any], operator: str) -> CheckOutcome:
        candidates = json_candidates(text, spans_too=True)
        if not candidates:
            return CheckOutcome(
                False,
                {
                    "explanation": "No valid JSON found in the text.",
                    "requiredKeys": keys,
                    "operator": operator,
                    "textExcerpt": excerpt(text),
                },
            )
        best: tuple[Any, list[Any], list[Any], bool] = (None, [], keys, False)
        for candidate in candidates:
            value = _parsed(candidate)
            if not isinstance(value, dict):
                continue
            present = [k for k in keys if k in value]
            missing = [k for k in keys if k not in value]
            verdict = operator_verdict(operator, len(present), len(missing))
            if verdict or len(present) > len(best[1]):
                best = (value, present, missing, verdict)
            if verdict:
                break
        value, present, missing, verdict = best
        return CheckOutcome(
            verdict,
            {
                "matchedJson": value,
                "verdict": verdict,
                "explanation": _keys_explanation(operator, present, missing, verdict),
                "presentKeys": present,
                "missingKeys": missing,
                "operator": operator,
                "textExcerpt": excerpt(text),
            },
        )


def _keys_explanation(operator: str, present: list[Any], missing: list[Any], verdict: bool) -> str:
    found = f"Found keys: [{', '.join(map(str, present))}]" if present else "No matching keys found"
    lacking = f"Missing keys: [{', '.join(map(str, missing))}]" if missing else "No missing keys"
    if operator == "any":
        return (
            f"Successfully found at least one required key. {found}."
            if verdict
            else f"Failed to find any required keys. {lacking}."
        )
    if operator == "all":
        return (
            f"Successfully found all required keys. {found}."
            if verdict
            else f"Failed to find all required keys. {lacking}."
        )
    return (
        f"Successfully verified no required keys are present. {lacking}."
        if verdict
        else f"Found some keys that should not be present. {found}."
    )
