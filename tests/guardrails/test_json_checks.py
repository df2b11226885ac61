"""jsonSchema and jsonKeys: JSON found in the text, validated or searched for keys."""

from __future__ import annotations

import pytest

from fastgate.errors import GatewayError
from tests.guardrails.conftest import leaf_hooks, on_text

SCHEMA = {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}


def test_json_schema_validates_a_fenced_block_first() -> None:
    text = 'before ```json\n{"key": "value"}\n```\n and after {"key":"value'
    out = on_text("default.jsonSchema", {"schema": SCHEMA}, text)
    assert out.verdict is True and out.error is None
    assert out.data["matchedJson"] == {"key": "value"}
    assert out.data["explanation"] == "Successfully validated JSON against the provided schema."
    assert out.data["validationErrors"] == []


def test_json_schema_reports_validation_errors_with_paths() -> None:
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["name"]}
    out = on_text("default.jsonSchema", {"schema": schema}, '{"age": "x"}')
    assert out.verdict is False
    assert out.data["explanation"] == "Failed to validate JSON against the provided schema."
    paths = sorted((e["path"], e["message"]) for e in out.data["validationErrors"])
    assert paths == [("", "'name' is a required property"), ("/age", "'x' is not of type 'integer'")]


def test_json_schema_reads_a_whole_nested_answer() -> None:
    """Portkey's ``{...}`` spans stop at the first ``}``: a nested object answer is found here."""
    schema = {
        "type": "object",
        "properties": {"user": {"type": "object", "required": ["name"]}},
        "required": ["user"],
    }
    out = on_text("default.jsonSchema", {"schema": schema}, '{"user": {"name": "x", "email": "a@b.co"}}')
    assert out.verdict is True and out.data["matchedJson"]["user"]["name"] == "x"


def test_json_schema_checks_formats() -> None:
    schema = {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}}
    assert on_text("default.jsonSchema", {"schema": schema}, '{"email": "nope"}').verdict is False
    assert on_text("default.jsonSchema", {"schema": schema}, '{"email": "a@b.co"}').verdict is True


def test_json_schema_not_and_no_json() -> None:
    out = on_text("default.jsonSchema", {"schema": SCHEMA, "not": True}, '{"other": 1}')
    assert out.verdict is True and "does not match the schema as expected" in out.data["explanation"]
    out = on_text("default.jsonSchema", {"schema": SCHEMA}, "just text")
    assert out.verdict is False and out.data == {
        "explanation": "No valid JSON found in the response.",
        "not": False,
    }


def test_json_schema_missing_schema_is_a_runtime_error() -> None:
    out = on_text("default.jsonSchema", {}, '{"key": "v"}')
    assert out.verdict is False and out.error is not None
    assert out.error.message == "Missing or invalid JSON schema"


def test_json_schema_that_is_not_a_schema_refuses_the_config() -> None:
    config = {"output_guardrails": [{"default.jsonSchema": {"schema": {"type": 12}}}]}
    with pytest.raises(GatewayError) as info:
        leaf_hooks(config)
    assert info.value.status == 400
    assert info.value.param == "config.output_guardrails[0].checks[0].parameters"
    assert "not a valid JSON Schema" in info.value.message


def test_json_schema_remote_ref_is_never_fetched() -> None:
    schema = {"$ref": "http://169.254.169.254/schema.json"}
    out = on_text("default.jsonSchema", {"schema": schema}, '{"key": 1}')
    assert out.verdict is False and out.error is not None  # unresolvable: an error, no request made


@pytest.mark.parametrize(
    ("operator", "keys", "verdict", "explanation"),
    [
        ("any", ["a", "z"], True, "Successfully found at least one required key. Found keys: [a]."),
        ("all", ["a", "b"], True, "Successfully found all required keys. Found keys: [a, b]."),
        ("all", ["a", "z"], False, "Failed to find all required keys. Missing keys: [z]."),
        ("none", ["z"], True, "Successfully verified no required keys are present. Missing keys: [z]."),
        ("none", ["a"], False, "Found some keys that should not be present. Found keys: [a]."),
    ],
)
def test_json_keys(operator: str, keys: list[str], verdict: bool, explanation: str) -> None:
    out = on_text("default.jsonKeys", {"keys": keys, "operator": operator}, 'Result: {"a": 1, "b": 2}')
    assert out.verdict is verdict
    assert out.data["explanation"] == explanation
    assert out.data["matchedJson"] == (
        {"a": 1, "b": 2} if operator != "none" or not verdict else out.data["matchedJson"]
    )


def test_json_keys_no_json_and_bad_parameters() -> None:
    out = on_text("default.jsonKeys", {"keys": ["a"], "operator": "any"}, "plain")
    assert out.verdict is False and out.data["explanation"] == "No valid JSON found in the text."
    out = on_text("default.jsonKeys", {"keys": [], "operator": "any"}, '{"a": 1}')
    assert out.error is not None and out.error.message == "Missing or invalid keys array"
    out = on_text("default.jsonKeys", {"keys": ["a"], "operator": "some"}, '{"a": 1}')
    assert out.error is not None and "Invalid or missing operator" in out.error.message
