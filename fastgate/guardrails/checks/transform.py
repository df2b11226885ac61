"""Checks that change what is sent or returned: ``regexReplace`` and ``addPrefix`` (Portkey's
``plugins/default/regexReplace.ts``, ``addPrefix.ts``). Each returns the changed JSON; the engine
makes it what later checks read and what the gateway sends upstream or to the client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastgate.guardrails.check import Check, CheckError, CheckOutcome, error
from fastgate.guardrails.context import BEFORE, CHAT, COMPLETE, MESSAGES, HookContext
from fastgate.guardrails.patterns import compile_pattern


class RegexReplace(Check):
    """Every text part's ``rule`` matches replaced by ``redactText`` (default ``[REDACTED]``);
    passes unless ``failOnDetection`` and something matched."""

    __slots__ = ("fail_on_detection", "pattern", "redact", "rule")

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        rule = parameters.get("rule")
        self.rule = rule
        self.pattern = compile_pattern(str(rule), "rule", slashed=True) if rule else None
        self.redact = str(parameters.get("redactText") or "[REDACTED]")
        self.fail_on_detection = bool(parameters.get("failOnDetection", False))

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        content, texts = ctx.content(event)
        pattern = self.pattern
        if pattern is None or not content:
            message = "Missing regex pattern" if pattern is None else "Missing text to match"
            return CheckOutcome(
                True,
                {
                    "explanation": f"An error occurred while processing the regex: {message}",
                    "regexPattern": self.rule,
                },
                error(message),
            )
        matched = False
        replaced: list[str | None] = []
        for text in texts:
            if not text or not isinstance(text, str):
                replaced.append(None)
                continue
            new, count = pattern.sub(self.redact, text)
            matched = matched or count > 0
            replaced.append(new)
        changed = ctx.with_texts(event, replaced) if matched else None
        verdict = not (self.fail_on_detection and matched)
        explanation = (
            f"Pattern '{self.rule}' matched and was replaced with '{self.redact}'"
            if matched
            else f"The regex pattern '{self.rule}' did not match any text."
        )
        data = {"regexPattern": self.rule, "verdict": verdict, "explanation": explanation}
        if event == BEFORE:
            return CheckOutcome(verdict, data, request=changed)
        return CheckOutcome(verdict, data, response=changed)


class AddPrefix(Check):
    """``prefix`` put before the prompt, or before the first message of ``applyToRole`` (default
    ``user``): added to it (``addToExisting``, default true) or as a new message before it, only
    when that message is empty with ``onlyIfEmpty``. Before-request, chat / completions /
    Messages only; it always passes."""

    __slots__ = ("add_to_existing", "only_if_empty", "prefix", "role")

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.prefix = parameters.get("prefix")
        self.role = parameters.get("applyToRole") or "user"
        self.add_to_existing = parameters.get("addToExisting") is not False
        self.only_if_empty = parameters.get("onlyIfEmpty") is True

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        kind = ctx.request_type
        if event != BEFORE or kind not in (COMPLETE, CHAT, MESSAGES):
            return CheckOutcome(True)
        prefix = self.prefix
        if not prefix or not isinstance(prefix, str):
            return CheckOutcome(True, None, CheckError("Prefix parameter is required and must be a string"))
        if kind == COMPLETE:
            content, texts = ctx.content(event)
            changed = None
            if content:
                changed = ctx.with_texts(event, [f"{prefix}{texts[0] or ''}", *texts[1:]])
        else:
            changed = self._chat(ctx.request, kind, prefix)
        data = {
            "prefix": prefix,
            "requestType": kind,
            "applyToRole": self.role,
            "addToExisting": self.add_to_existing,
            "onlyIfEmpty": self.only_if_empty,
        }
        outcome = CheckOutcome(True, data, request=changed)
        return outcome

    def _chat(self, request: dict[str, Any], kind: str, prefix: str) -> dict[str, Any]:
        out = dict(request)
        messages = list(request.get("messages") or ())
        role = self.role
        if kind == MESSAGES and role == "system":
            # Anthropic's Messages API has no system role in messages: the top-level system field.
            system = request.get("system")
            if self.only_if_empty and system and (not isinstance(system, str) or system.strip()):
                return out
            out["system"] = (
                _prefixed(system, prefix) if self.add_to_existing or not system else _before(system, prefix)
            )
            return out
        index = next(
            (i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == role), None
        )
        fresh = {"role": role, "content": [{"type": "text", "text": prefix}] if kind == MESSAGES else prefix}
        if index is None:
            if role == "system":
                messages.insert(0, fresh)
            else:
                messages.append(fresh)
        else:
            message = messages[index]
            content = message.get("content")
            empty = (isinstance(content, str) and not content.strip()) or (
                isinstance(content, list) and not content
            )
            if self.only_if_empty and not empty:
                return out
            if self.add_to_existing:
                messages[index] = {**message, "content": _prefixed(content, prefix)}
            else:
                messages.insert(index, fresh)
        out["messages"] = messages
        return out


def _prefixed(existing: Any, prefix: str) -> Any:
    """Portkey's ``buildPrefixedContent``: the prefix joined to a string, to a first text part,
    or as a text part of its own before parts that do not start with text."""
    if existing is None or isinstance(existing, str):
        return f"{prefix}{existing or ''}"
    if isinstance(existing, list):
        if existing and isinstance(existing[0], dict) and existing[0].get("type") == "text":
            first = {**existing[0], "text": f"{prefix}{existing[0].get('text') or ''}"}
            return [first, *existing[1:]]
        return [{"type": "text", "text": prefix}, *existing]
    return f"{prefix}{existing}"


def _before(existing: Any, prefix: str) -> Any:
    """A Messages system prompt with the prefix as a block of its own before it."""
    blocks = [{"type": "text", "text": existing}] if isinstance(existing, str) else list(existing)
    return [{"type": "text", "text": prefix}, *blocks]
