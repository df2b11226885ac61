"""Portkey's default text checks: verdicts, ``not`` flags, defaults and ``data`` objects (cases
ported from ``plugins/default/default.test.ts``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate._transforms import word_count
from fastgate.guardrails.checks.text import utf16_length
from fastgate.guardrails.context import AFTER, BEFORE
from tests.guardrails.conftest import context, on_text, run

FOX = "The quick brown fox jumps over the lazy dog."


def test_regex_match_finds_the_pattern_with_its_details() -> None:
    out = on_text("default.regexMatch", {"rule": "quick.*fox", "not": False}, FOX)
    assert out.verdict is True and out.error is None
    assert "successfully matched" in out.data["explanation"]
    assert out.data["matchDetails"] == {
        "matchedText": "quick brown fox",
        "index": 4,
        "groups": {},
        "captures": [],
    }
    assert out.data["textExcerpt"] == FOX


def test_regex_match_groups_and_named_groups() -> None:
    out = on_text("default.regexMatch", {"rule": "(?<adj>quick) (brown) (?<animal>fox)"}, FOX)
    assert out.data["matchDetails"]["groups"] == {"adj": "quick", "animal": "fox"}
    assert out.data["matchDetails"]["captures"] == ["quick", "brown", "fox"]


@pytest.mark.parametrize(
    ("rule", "invert", "verdict", "phrase"),
    [
        ("zebra", False, False, "did not match the text."),
        ("zebra", True, True, "did not match the text as expected"),
        ("fox", True, False, "matched the text when it should not have"),
    ],
)
def test_regex_match_verdicts(rule: str, invert: bool, verdict: bool, phrase: str) -> None:
    out = on_text("default.regexMatch", {"rule": rule, "not": invert}, FOX)
    assert out.verdict is verdict
    assert phrase in out.data["explanation"]
    assert out.data["matchDetails"] is (None if rule == "zebra" else out.data["matchDetails"])


def test_regex_match_excerpt_is_cut_at_100_characters() -> None:
    out = on_text("default.regexMatch", {"rule": "a"}, "a" * 200)
    assert out.data["textExcerpt"] == "a" * 100 + "..."


@pytest.mark.parametrize(
    ("rule", "text", "message"),
    [("", FOX, "Missing regex pattern"), ("test", "", "Missing text to match")],
)
def test_regex_match_errors_are_reported_not_raised(rule: str, text: str, message: str) -> None:
    out = on_text("default.regexMatch", {"rule": rule}, text)
    assert out.verdict is False
    assert out.error is not None and out.error.message == message and out.error.name == "Error"
    assert message in out.data["explanation"]


def test_regex_match_reads_the_last_message_text_parts_before_the_request() -> None:
    request = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "card 4111"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "first"},
                    {"type": "image_url", "image_url": {"url": "data:x"}},
                    {"type": "text", "text": "second"},
                ],
            },
        ],
    }
    ctx = context(request)
    assert ctx.text(BEFORE) == "first\nsecond"
    assert run("default.regexMatch", {"rule": "4111"}, ctx, BEFORE).verdict is False
    assert run("default.regexMatch", {"rule": "first\nsecond"}, ctx, BEFORE).verdict is True


@pytest.mark.parametrize(
    ("text", "params", "verdict", "count"),
    [
        ("One. Two! Three?", {"minSentences": 1, "maxSentences": 3}, True, 3),
        ("One. Two! Three?", {"minSentences": 1, "maxSentences": 2}, False, 3),
        ("One. Two! Three?", {"minSentences": 1, "maxSentences": 2, "not": True}, True, 3),
        ("no end", {}, True, 0),  # the manifest's defaults: 0 to 99999
    ],
)
def test_sentence_count(text: str, params: dict[str, object], verdict: bool, count: int) -> None:
    out = on_text("default.sentenceCount", params, text)
    assert out.verdict is verdict and out.error is None
    assert out.data["sentenceCount"] == count
    assert out.data["minCount"] == params.get("minSentences", 0)


def test_sentence_count_range_must_be_numbers() -> None:
    out = on_text("default.sentenceCount", {"minSentences": "1"}, "A.")
    assert out.error is not None and out.error.message == "Missing sentence count range"
    assert out.data["minCount"] == "1"


@pytest.mark.parametrize(
    ("text", "params", "verdict", "explanation"),
    [
        (
            "one two  three\nfour",
            {"minWords": 3, "maxWords": 5},
            True,
            "within the specified range of 3-5 words.",
        ),
        ("one two", {"minWords": 3, "maxWords": 5}, False, "outside the specified range of 3-5 words."),
        ("one two", {"minWords": 3, "maxWords": 5, "not": True}, True, "as expected"),
        ("  one  ", {}, True, "contains 1 words"),
    ],
)
def test_word_count(text: str, params: dict[str, object], verdict: bool, explanation: str) -> None:
    out = on_text("default.wordCount", params, text)
    assert out.verdict is verdict
    assert explanation in out.data["explanation"]


@pytest.mark.parametrize(
    ("text", "params", "message"),
    [
        ("   ", {}, "Missing text to analyze"),
        ("a b", {"minWords": 1.5, "maxWords": 3}, "Invalid or missing word count range"),
    ],
)
def test_word_count_errors(text: str, params: dict[str, object], message: str) -> None:
    out = on_text("default.wordCount", params, text)
    assert out.verdict is False and out.error is not None and out.error.message == message


def test_character_count_counts_utf16_units_as_javascript_does() -> None:
    assert utf16_length("abc") == 3 and utf16_length("é😀") == 3
    out = on_text("default.characterCount", {"minCharacters": 1, "maxCharacters": 3}, "é😀")
    assert out.verdict is True and out.data["characterCount"] == 3
    out = on_text("default.characterCount", {"minCharacters": 1, "maxCharacters": 2}, "é😀")
    assert out.verdict is False
    assert on_text("default.characterCount", {"maxCharacters": 2, "not": True}, "abc").verdict is True
    assert on_text("default.characterCount", {}, "").error is not None


@pytest.mark.parametrize(
    ("check", "text", "invert", "verdict"),
    [
        ("default.alluppercase", "HELLO, WORLD 123 é", False, True),
        ("default.alluppercase", "HELLO World", False, False),
        ("default.alluppercase", "HELLO World", True, True),
        ("default.alllowercase", "hello, world É", False, True),
        ("default.alllowercase", "Hello", False, False),
        ("default.alllowercase", "HELLO", True, True),
    ],
)
def test_case_checks_judge_ascii_letters_only(check: str, text: str, invert: bool, verdict: bool) -> None:
    out = on_text(check, {"not": invert}, text)
    assert out.verdict is verdict
    assert out.data["verdict"] is verdict and out.data["textExcerpt"] == text


def test_case_checks_need_text() -> None:
    out = on_text("default.alluppercase", {}, "")
    assert out.error is not None and "Missing text to analyze" in out.data["explanation"]


@pytest.mark.parametrize(
    ("text", "params", "verdict", "explanation"),
    [
        ("Thanks, HarryPotter", {"suffix": "HarryPotter"}, True, 'ends with "HarryPotter".'),
        ("Thanks, HarryPotter.", {"suffix": "HarryPotter"}, True, "(including trailing period)"),
        ("Thanks, Hermione", {"suffix": "HarryPotter"}, False, 'does not end with "HarryPotter".'),
        ("Thanks, Hermione", {"suffix": "HarryPotter", "not": True}, True, "as expected"),
    ],
)
def test_ends_with(text: str, params: dict[str, object], verdict: bool, explanation: str) -> None:
    out = on_text("default.endsWith", params, text)
    assert out.verdict is verdict and explanation in out.data["explanation"]


def test_ends_with_needs_a_suffix() -> None:
    out = on_text("default.endsWith", {"suffix": ""}, "text")
    assert out.error is not None and out.error.message == "Missing or empty suffix"


@pytest.mark.parametrize(
    ("operator", "words", "verdict", "tail"),
    [
        ("any", ["fox", "zebra"], True, "At least one word was found."),
        ("any", ["zebra"], False, "No words were found."),
        ("all", ["fox", "dog"], True, "All words were found."),
        ("all", ["fox", "zebra"], False, "Some words were missing."),
        ("none", ["zebra"], True, "No words were found."),
        ("none", ["Fox", "fox"], False, "Some words were found."),
    ],
)
def test_contains(operator: str, words: list[str], verdict: bool, tail: str) -> None:
    out = on_text("default.contains", {"words": words, "operator": operator}, FOX)
    assert out.verdict is verdict
    assert (
        out.data["explanation"] == f"Check {'passed' if verdict else 'failed'} for '{operator}' words. {tail}"
    )
    assert out.data["foundWords"] == [w for w in words if w in FOX]


def test_contains_defaults_to_any_and_reports_bad_words() -> None:
    assert on_text("default.contains", {"words": ["dog"]}, FOX).verdict is True
    out = on_text("default.contains", {"words": "dog"}, FOX)
    assert out.verdict is False and out.error is not None


CODE = "Here:\n```py\nprint(1)\n```\nand\n```sql\nSELECT 1\n```"


@pytest.mark.parametrize(
    ("fmt", "invert", "verdict", "explanation"),
    [
        ("Python", False, True, "Found code block(s) in Python format"),
        ("SQL", False, True, "Found code block(s) in SQL format"),
        ("Go", False, False, "No code blocks in Go format found"),
        ("Go", True, True, "No code blocks in Go format found as expected"),
    ],
)
def test_contains_code(fmt: str, invert: bool, verdict: bool, explanation: str) -> None:
    out = on_text("default.containsCode", {"format": fmt, "not": invert}, CODE)
    assert out.verdict is verdict and out.data["explanation"] == explanation
    assert out.data["foundFormats"] == ["Python", "SQL"]


def test_contains_code_without_blocks_passes_only_inverted() -> None:
    assert on_text("default.containsCode", {"format": "Python"}, "no code").verdict is False
    out = on_text("default.containsCode", {"format": "Python", "not": True}, "no code")
    assert out.verdict is True and out.data["explanation"] == "No code blocks found in the text"


@pytest.mark.parametrize(
    ("content", "is_null"),
    [("Hello", False), ("", True), ("   ", True), (None, True)],
)
def test_not_null(content: object, is_null: bool) -> None:
    out = on_text("default.notNull", {}, content)
    assert out.verdict is (not is_null)
    assert out.data["isNull"] is is_null
    assert out.data["verdict"] == ("failed" if is_null else "passed")
    assert on_text("default.notNull", {"not": True}, content).verdict is is_null


def test_not_null_on_a_stream_answer_without_json() -> None:
    ctx = context()
    ctx.set_response(None, 200)
    out = run("default.notNull", {}, ctx, AFTER)
    assert out.verdict is False and out.data["contentType"] == "null"


@settings(max_examples=300)
@given(st.text(alphabet=st.sampled_from("ab \t\n\r\x0b\x0c\x1c\x1f\x85é\u00a0\u2003\u3000😀")))
def test_word_count_agrees_with_split(text: str) -> None:
    assert word_count(text) == len(text.split())
