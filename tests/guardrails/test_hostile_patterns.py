"""A pattern from a config cannot hang a worker: RE2 runs in time linear in the text, and what
it cannot run that way is refused with the config. The per-test timeout turns a hang into a
failure by name; nothing here measures time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate.guardrails.check import ConfigError
from fastgate.guardrails.checks.text import RegexMatch
from fastgate.guardrails.checks.transform import RegexReplace
from fastgate.guardrails.context import AFTER
from fastgate.guardrails.patterns import compile_pattern
from tests.guardrails.conftest import chat_answer, context

#: Catastrophic for a backtracking engine (JavaScript's, Python's re) on "aaaa...b".
CLASSICS = ["(a+)+$", "(a|aa)*$", "(a|a?)+$", "(.*a){12}$", "^(a+)+b", "(\\w+\\s?)*$", "((a*)*)*b"]
ATOMS = st.sampled_from(["a", "a?", "a*", "a+", ".", "\\w", "[ab]", "(a|aa)", "(?:a+)"])


@st.composite
def nested(draw: st.DrawFn, depth: int = 3) -> str:
    pattern = draw(ATOMS)
    for _ in range(draw(st.integers(1, depth))):
        pattern = f"({pattern}{draw(ATOMS)}){draw(st.sampled_from(['*', '+', '{1,20}', '?']))}"
    return pattern + draw(st.sampled_from(["$", "b", "c$", ""]))


HOSTILE_TEXT = "a" * 30_000 + "!"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("pattern", CLASSICS)
def test_classic_catastrophic_patterns_run_through(pattern: str) -> None:
    check = RegexMatch("default.regexMatch", {"rule": pattern})
    out = check.run(context(answer=chat_answer(HOSTILE_TEXT)), AFTER)
    assert out.error is None and isinstance(out.verdict, bool)


@pytest.mark.timeout(60)
@settings(max_examples=80, deadline=None)
@given(pattern=nested(), length=st.integers(1_000, 20_000))
def test_generated_nested_quantifiers_never_hang(pattern: str, length: int) -> None:
    text = "a" * length + "!"
    try:
        match = RegexMatch("default.regexMatch", {"rule": pattern})
        replace = RegexReplace("default.regexReplace", {"rule": f"/{pattern}/g"})
    except ConfigError:
        return  # refused with the config: it never runs
    ctx = context(answer=chat_answer(text))
    assert isinstance(match.run(ctx, AFTER).verdict, bool)
    assert replace.run(ctx, AFTER).verdict is True


@pytest.mark.parametrize("pattern", ["(a)\\1", "(?=a)", "(?<!a)b", "a{1000}{1000}", "(?<n>a)\\k<n>"])
def test_what_re2_cannot_run_in_linear_time_is_refused(pattern: str) -> None:
    with pytest.raises(ConfigError, match="cannot be compiled by RE2"):
        compile_pattern(pattern, "rule")
