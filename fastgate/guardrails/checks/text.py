"""Portkey's default checks that judge the text (``plugins/default/*.ts``): their parameters,
defaults, ``not`` flags, verdicts and ``data`` objects.

Defaults are the plugin manifest's (``plugins/default/manifest.json``), which Portkey's app fills
in; its gateway run without them reports a "missing range" error that fails open.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastgate._transforms import word_count
from fastgate.guardrails.check import Check, CheckOutcome, Explanations, error, excerpt, explain
from fastgate.guardrails.context import HookContext
from fastgate.guardrails.patterns import compile_pattern

_NO_TEXT = "No text available"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _integer(value: Any) -> bool:
    return _number(value) and float(value).is_integer()


def utf16_length(text: str) -> int:
    """``String.length`` in JavaScript: UTF-16 code units (a character past U+FFFF counts two)."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le")) // 2


class RegexMatch(Check):
    """``rule`` found in the text; ``not`` inverts."""

    __slots__ = ("pattern", "rule")
    EXPLANATIONS: Explanations = (
        lambda rule: f"The regex pattern '{rule}' successfully matched the text.",
        lambda rule: f"The regex pattern '{rule}' did not match the text.",
        lambda rule: f"The regex pattern '{rule}' did not match the text as expected.",
        lambda rule: f"The regex pattern '{rule}' matched the text when it should not have.",
    )

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        rule = parameters.get("rule")
        self.rule = rule
        self.pattern = compile_pattern(str(rule), "rule") if rule else None

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        text = ctx.text(event)
        problem = (
            "Missing regex pattern" if self.pattern is None else "Missing text to match" if not text else ""
        )
        if problem or self.pattern is None:
            return CheckOutcome(
                False,
                {
                    "explanation": f"An error occurred while processing the regex: {problem}",
                    "regexPattern": self.rule,
                    "not": self.invert,
                    "textExcerpt": excerpt(text) or _NO_TEXT,
                },
                error(problem),
            )
        match = self.pattern.search(text)
        verdict = (match is None) if self.invert else (match is not None)
        rule = self.rule
        explanation = explain(self.EXPLANATIONS, verdict, self.invert, rule)
        details = None
        if match is not None:
            details = {
                "matchedText": match.group(0),
                "index": match.start(),
                "groups": match.groupdict(),
                "captures": list(match.groups()),
            }
        return CheckOutcome(
            verdict,
            {
                "regexPattern": rule,
                "not": self.invert,
                "verdict": verdict,
                "explanation": explanation,
                "matchDetails": details,
                "textExcerpt": excerpt(text),
            },
        )


class _Range(Check):
    """A count of the text within ``[min, max]``; ``not`` inverts. Subclasses say what is counted."""

    __slots__ = ("high", "integers", "low")
    min_name = max_name = ""
    #: The names the error ``data`` gives the bounds (the parameters' own, but for sentenceCount).
    data_names: tuple[str, str] = ("", "")
    low_default = 0
    high_default = 0

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.low = parameters.get(self.min_name, self.low_default)
        self.high = parameters.get(self.max_name, self.high_default)
        #: Portkey's wordCount and characterCount take whole numbers only.
        self.integers = _integer(self.low) and _integer(self.high)

    def in_range(self, count: int) -> bool:
        inside = self.low <= count <= self.high
        return not inside if self.invert else inside

    #: Word and character counts' explanations; sentenceCount words its own.
    EXPLANATIONS: Explanations = (
        lambda count, noun, lo, hi: (
            f"The text contains {count} {noun}, which is within the specified range of {lo}-{hi} {noun}."
        ),
        lambda count, noun, lo, hi: (
            f"The text contains {count} {noun}, which is outside the specified range of {lo}-{hi} {noun}."
        ),
        lambda count, noun, lo, hi: (
            f"The text contains {count} {noun}, which is outside the specified range of {lo}-{hi} {noun} "
            f"as expected."
        ),
        lambda count, noun, lo, hi: (
            f"The text contains {count} {noun}, which is within the specified range of {lo}-{hi} {noun} "
            f"when it should not be."
        ),
    )
    #: What is counted, the error data's verb, the range error, and whether the text is stripped.
    noun = count_name = doing = range_error = ""
    strips = False

    def measure(self, text: str) -> int:
        raise NotImplementedError

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        text = ctx.text(event)
        if self.strips:
            text = text.strip()
        if not text:
            message = "Missing text to analyze"
        elif not self.integers:
            message = self.range_error
        else:
            count = self.measure(text)
            verdict = self.in_range(count)
            lo, hi, invert = self.low, self.high, self.invert
            return CheckOutcome(
                verdict,
                {
                    self.count_name: count,
                    self.min_name: lo,
                    self.max_name: hi,
                    "not": invert,
                    "verdict": verdict,
                    "explanation": explain(self.EXPLANATIONS, verdict, invert, count, self.noun, lo, hi),
                    "textExcerpt": excerpt(text),
                },
            )
        return self.failed(ctx, event, f"An error occurred while {self.doing}: {message}", message)

    def failed(self, ctx: HookContext, event: str, explanation: str, message: str) -> CheckOutcome:
        return CheckOutcome(
            False,
            {
                "explanation": explanation,
                (self.data_names[0] or self.min_name): self.low,
                (self.data_names[1] or self.max_name): self.high,
                "not": self.invert,
                "textExcerpt": excerpt(ctx.text(event)) or _NO_TEXT,
            },
            error(message),
        )


class SentenceCount(_Range):
    __slots__ = ()
    min_name, max_name, high_default = "minSentences", "maxSentences", 99999
    data_names = ("minCount", "maxCount")
    EXPLANATIONS: Explanations = (
        lambda count, lo, hi: f"The sentence count ({count}) is within the specified range of {lo} to {hi}.",
        lambda count, lo, hi: f"The sentence count ({count}) is outside the specified range of {lo} to {hi}.",
        lambda count, lo, hi: (
            f"The sentence count ({count}) is outside the specified range of {lo} to {hi} as expected."
        ),
        lambda count, lo, hi: (
            f"The sentence count ({count}) is within the specified range of {lo} to {hi} "
            "when it should not be."
        ),
    )

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        if not (_number(self.low) and _number(self.high)):
            message = "Missing sentence count range"
            return self.failed(ctx, event, f"An error occurred: {message}", message)
        text = ctx.text(event)
        # Portkey's countSentences: text.split(/[.!?]/).length - 1, the number of . ! and ?.
        count = text.count(".") + text.count("!") + text.count("?")
        verdict = self.in_range(count)
        lo, hi = self.low, self.high
        explanation = explain(self.EXPLANATIONS, verdict, self.invert, count, lo, hi)
        return CheckOutcome(
            verdict,
            {
                "sentenceCount": count,
                "minCount": lo,
                "maxCount": hi,
                "not": self.invert,
                "verdict": verdict,
                "explanation": explanation,
                "textExcerpt": excerpt(text),
            },
        )


class WordCount(_Range):
    __slots__ = ()
    min_name, max_name, high_default = "minWords", "maxWords", 99999
    noun, count_name, doing, strips = "words", "wordCount", "processing word count", True
    range_error = "Invalid or missing word count range"

    def measure(self, text: str) -> int:
        return word_count(text)


class CharacterCount(_Range):
    __slots__ = ()
    min_name, max_name, high_default = "minCharacters", "maxCharacters", 9999999
    noun, count_name, doing = "characters", "characterCount", "counting characters"
    range_error = "Invalid or missing character count range"

    def measure(self, text: str) -> int:
        return utf16_length(text)


_ASCII_LOWER = re.compile("[a-z]")
_ASCII_UPPER = re.compile("[A-Z]")


class _Case(Check):
    """Every ASCII letter of the text in one case (Portkey ignores every other character)."""

    __slots__ = ()
    other: re.Pattern[str] = _ASCII_LOWER
    case = other_case = ""
    EXPLANATIONS: Explanations = (
        lambda case, other: f"All alphabetic characters in the text are {case}.",
        lambda case, other: f"The text contains {other} characters.",
        lambda case, other: f"The text contains {other} characters as expected.",
        lambda case, other: f"All alphabetic characters in the text are {case} when they should not be.",
    )

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        text = ctx.text(event)
        if not text:
            return CheckOutcome(
                False,
                {
                    "explanation": f"An error occurred while checking {self.case}: Missing text to analyze",
                    "not": self.invert,
                    "textExcerpt": _NO_TEXT,
                },
                error("Missing text to analyze"),
            )
        one_case = self.other.search(text) is None
        verdict = not one_case if self.invert else one_case
        explanation = explain(self.EXPLANATIONS, verdict, self.invert, self.case, self.other_case)
        return CheckOutcome(
            verdict,
            {
                "verdict": verdict,
                "not": self.invert,
                "explanation": explanation,
                "textExcerpt": excerpt(text),
            },
        )


class AllUppercase(_Case):
    __slots__ = ()
    other, case, other_case = _ASCII_LOWER, "uppercase", "lowercase"


class AllLowercase(_Case):
    __slots__ = ()
    other, case, other_case = _ASCII_UPPER, "lowercase", "uppercase"


class EndsWith(Check):
    """The text ends with ``suffix`` (or with ``suffix`` and a period); ``not`` inverts."""

    __slots__ = ("suffix",)
    EXPLANATIONS: Explanations = (
        lambda suffix, period: f'The text ends with "{suffix}"{period}.',
        lambda suffix, period: f'The text does not end with "{suffix}".',
        lambda suffix, period: f'The text does not end with "{suffix}" as expected.',
        lambda suffix, period: f'The text ends with "{suffix}" when it should not.',
    )

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.suffix = parameters.get("suffix")

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        text = ctx.text(event)
        suffix = self.suffix
        if not text or not suffix or not isinstance(suffix, str):
            message = "Missing text to analyze" if not text else "Missing or empty suffix"
            return CheckOutcome(
                False,
                {
                    "explanation": f"An error occurred while checking suffix: {message}",
                    "suffix": suffix,
                    "not": self.invert,
                    "textExcerpt": excerpt(text) or _NO_TEXT,
                },
                error(message),
            )
        with_period = text.endswith(f"{suffix}.")
        ends = text.endswith(suffix) or with_period
        verdict = not ends if self.invert else ends
        period = " (including trailing period)" if with_period else ""
        explanation = explain(self.EXPLANATIONS, verdict, self.invert, suffix, period)
        return CheckOutcome(
            verdict,
            {
                "suffix": suffix,
                "not": self.invert,
                "verdict": verdict,
                "explanation": explanation,
                "textExcerpt": excerpt(text),
            },
        )


_OPERATOR_FOUND = {
    "any": "At least one {} was found.",
    "all": "All {}s were found.",
    "none": "No {}s were found.",
}
_OPERATOR_MISSED = {
    "any": "No {}s were found.",
    "all": "Some {}s were missing.",
    "none": "Some {}s were found.",
}


def operator_verdict(operator: Any, found: int, missing: int) -> bool:
    """Portkey's ``any`` / ``all`` / ``none`` over found and missing items (else False)."""
    if operator == "any":
        return found > 0
    if operator == "all":
        return missing == 0
    if operator == "none":
        return found == 0
    return False


def operator_explanation(operator: Any, verdict: bool, noun: str) -> str:
    text = f"Check {'passed' if verdict else 'failed'} for '{operator}' {noun}s."
    tail = (_OPERATOR_FOUND if verdict else _OPERATOR_MISSED).get(operator)
    return f"{text} {tail.format(noun)}" if tail else text


class Contains(Check):
    """``words`` found in the text (case-sensitive substrings) by ``operator`` (default ``any``)."""

    __slots__ = ("operator", "words")

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.words = parameters.get("words")
        self.operator = parameters.get("operator", "any")

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        words = self.words
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            message = "words must be an array of strings"
            return CheckOutcome(
                False,
                {"explanation": "An error occurred while processing the text.", "error": message},
                error(message),
            )
        text = ctx.text(event)
        found = [w for w in words if w in text]
        missing = [w for w in words if w not in text]
        verdict = operator_verdict(self.operator, len(found), len(missing))
        return CheckOutcome(
            verdict,
            {
                "explanation": operator_explanation(self.operator, verdict, "word"),
                "foundWords": found,
                "missingWords": missing,
                "operator": self.operator,
            },
        )


#: Portkey's containsCode language names by fence tag.
LANGUAGES = {
    "sql": "SQL",
    "py": "Python",
    "python": "Python",
    "gyp": "Python",
    "ts": "TypeScript",
    "tsx": "TypeScript",
    "typescript": "TypeScript",
    "js": "JavaScript",
    "jsx": "JavaScript",
    "javascript": "JavaScript",
    "java": "Java",
    "cs": "C#",
    "cpp": "C++",
    "c": "C",
    "rb": "Ruby",
    "php": "PHP",
    "swift": "Swift",
    "kt": "Kotlin",
    "go": "Go",
    "rs": "Rust",
    "scala": "Scala",
    "r": "R",
    "pl": "Perl",
    "sh": "Shell",
    "html": "HTML",
    "css": "CSS",
    "xml": "XML",
    "json": "JSON",
    "yml": "YAML",
    "md": "Markdown",
    "dockerfile": "Dockerfile",
}
_FENCE = re.compile(r"```(\w+)\n[\s\S]*?\n```", re.ASCII)


class ContainsCode(Check):
    """A fenced code block in ``format`` (a language name: ``Python``, ``SQL``...); ``not`` inverts."""

    __slots__ = ("format",)
    EXPLANATIONS: Explanations = (
        lambda fmt: f"Found code block(s) in {fmt} format",
        lambda fmt: f"No code blocks in {fmt} format found",
        lambda fmt: f"No code blocks in {fmt} format found as expected",
        lambda fmt: f"Found code block(s) in {fmt} format when none were expected",
    )

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)
        self.format = parameters.get("format")

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        text = ctx.text(event)
        fmt = self.format
        if not fmt or not text:
            message = "Missing required parameter: format" if not fmt else "No text content to analyze"
            return CheckOutcome(
                False,
                {
                    "explanation": f"Error while checking for code blocks: {message}",
                    "searchedFormat": fmt,
                    "not": self.invert,
                    "textExcerpt": excerpt(text) or _NO_TEXT,
                },
                error(message),
            )
        tags = _FENCE.findall(text)
        if not tags:
            return CheckOutcome(
                self.invert,
                {
                    "explanation": "No code blocks found in the text",
                    "searchedFormat": fmt,
                    "not": self.invert,
                    "foundFormats": [],
                    "textExcerpt": excerpt(text),
                },
            )
        found = [LANGUAGES.get(tag.lower(), tag.lower()) for tag in tags]
        has = fmt in found
        verdict = not has if self.invert else has
        explanation = explain(self.EXPLANATIONS, verdict, self.invert, fmt)
        return CheckOutcome(
            verdict,
            {
                "explanation": explanation,
                "searchedFormat": fmt,
                "not": self.invert,
                "foundFormats": found,
                "textExcerpt": excerpt(text),
            },
        )


def _js_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "object"


class NotNull(Check):
    """The content is there and not blank; ``not`` inverts."""

    __slots__ = ()

    def __init__(self, id: str, parameters: Mapping[str, Any]) -> None:
        super().__init__(id, parameters)

    def run(self, ctx: HookContext, event: str) -> CheckOutcome:
        content, texts = ctx.content(event)
        is_null = (
            content is None
            or (isinstance(content, str) and not content.strip())
            or (isinstance(content, list) and not content)
            or all(not t or (isinstance(t, str) and not t.strip()) for t in texts)
        )
        verdict = is_null if self.invert else not is_null
        return CheckOutcome(
            verdict,
            {
                "isNull": is_null,
                "contentType": _js_type(content),
                "textArrayLength": len(texts),
                "explanation": "Content is null, undefined, or empty."
                if is_null
                else "Content exists and is not null.",
                "verdict": "passed" if verdict else "failed",
            },
        )
