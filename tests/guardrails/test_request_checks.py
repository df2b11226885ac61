"""modelWhitelist, modelRules, allowedRequestTypes, requiredMetadataKeys."""

from __future__ import annotations

from typing import Any

import pytest

from fastgate.guardrails.context import AFTER, BEFORE, CHAT, EMBED, MESSAGES
from tests.guardrails.conftest import chat, context, run


@pytest.mark.parametrize(
    ("model", "invert", "verdict", "explanation"),
    [
        ("gpt-4o", False, True, 'Model "gpt-4o" is allowed.'),
        ("o1", False, False, 'Model "o1" is not in the allowed list.'),
        ("o1", True, True, 'Model "o1" is not in the allowed list as expected.'),
        ("gpt-4o", True, False, 'Model "gpt-4o" is in the allowed list when it should not be.'),
    ],
)
def test_model_whitelist(model: str, invert: bool, verdict: bool, explanation: str) -> None:
    ctx = context({**chat("hi"), "model": model})
    out = run("default.modelWhitelist", {"models": ["gpt-4o", "gpt-4o-mini"], "not": invert}, ctx)
    assert out.verdict is verdict and out.data["explanation"] == explanation
    assert out.data["requestedModel"] == model and out.data["allowedModels"] == ["gpt-4o", "gpt-4o-mini"]


def test_model_whitelist_errors() -> None:
    out = run("default.modelWhitelist", {"models": ["a"]}, context({"messages": []}))
    assert out.error is not None and out.error.message == "Missing model in request"
    assert out.data["requestedModel"] == "No model specified"
    out = run("default.modelWhitelist", {"models": "a"}, context())
    assert out.error is not None and out.error.message == "Missing or invalid model whitelist"


RULES = {
    "defaults": ["gpt-4o-mini"],
    "metadata": {"tier": {"pro": ["gpt-4o", "o1"], "free": ["gpt-4o-mini"]}},
}


@pytest.mark.parametrize(
    ("model", "metadata", "verdict", "explanation"),
    [
        ("gpt-4o", {"tier": "pro"}, True, 'Model "gpt-4o" is allowed by rules. (matched rules: tier:pro)'),
        ("gpt-4o", {"tier": "free"}, False, 'Model "gpt-4o" is not allowed by rules.'),
        ("gpt-4o-mini", {}, True, 'Model "gpt-4o-mini" is allowed by rules. (using default models)'),
        (
            "o1",
            {"tier": ["free", "pro"]},
            True,
            'Model "o1" is allowed by rules. (matched rules: tier:free, tier:pro)',
        ),
    ],
)
def test_model_rules(model: str, metadata: dict[str, Any], verdict: bool, explanation: str) -> None:
    ctx = context({**chat("hi"), "model": model}, metadata=metadata)
    out = run("default.modelRules", {"rules": RULES}, ctx)
    assert out.verdict is verdict and out.data == {"explanation": explanation}


def test_model_rules_inverted_and_errors() -> None:
    ctx = context({**chat("hi"), "model": "gpt-4o"}, metadata={"tier": "pro"})
    out = run("default.modelRules", {"rules": RULES, "not": True}, ctx)
    assert out.verdict is False and "permitted by rules (in blocked list)" in out.data["explanation"]
    out = run("default.modelRules", {}, ctx)
    assert out.error is not None and out.error.message == "Missing rules configuration"
    out = run("default.modelRules", {"rules": {"defaults": []}}, ctx)
    assert out.error is not None and out.error.message == "No allowed models resolved from rules"


@pytest.mark.parametrize(
    ("params", "metadata", "kind", "verdict", "mode", "source"),
    [
        ({}, {}, CHAT, True, "unrestricted", "default"),
        ({"allowedTypes": ["chatComplete", "embed"]}, {}, CHAT, True, "allowlist", "parameters"),
        ({"allowedTypes": "embed, complete"}, {}, CHAT, False, "allowlist", "parameters"),
        ({"blockedTypes": ["embed"]}, {}, EMBED, False, "blocklist", "parameters"),
        ({"blockedTypes": ["embed"]}, {}, MESSAGES, True, "blocklist", "parameters"),
        (
            {"allowedTypes": ["chatComplete"], "blockedTypes": ["embed"]},
            {},
            EMBED,
            False,
            "combined",
            "parameters",
        ),
        ({}, {"supported_endpoints": "messages"}, MESSAGES, True, "allowlist", "metadata"),
        ({}, {"blocked_endpoints": ["chatComplete"]}, CHAT, False, "blocklist", "metadata"),
    ],
)
def test_allowed_request_types(
    params: dict[str, Any], metadata: dict[str, Any], kind: str, verdict: bool, mode: str, source: str
) -> None:
    ctx = context(chat("hi"), kind=kind, metadata=metadata)
    out = run("default.allowedRequestTypes", params, ctx)
    assert out.verdict is verdict and out.error is None
    assert out.data["mode"] == mode and out.data["source"] == source
    assert out.data["currentRequestType"] == kind


def test_allowed_request_types_conflict_is_an_error() -> None:
    out = run(
        "default.allowedRequestTypes", {"allowedTypes": ["embed"], "blockedTypes": ["embed"]}, context()
    )
    assert out.verdict is False and out.error is not None and "Conflict detected" in out.error.message


@pytest.mark.parametrize(
    ("operator", "verdict", "explanation"),
    [
        ("all", False, "Check failed for 'all' metadata keys. Some metadata keys were missing."),
        ("any", True, "Check passed for 'any' metadata keys. At least one metadata key was found."),
        ("none", False, "Check failed for 'none' metadata keys. Some metadata keys were found."),
    ],
)
def test_required_metadata_keys(operator: str, verdict: bool, explanation: str) -> None:
    ctx = context(metadata={"user": "u1"})
    out = run("default.requiredMetadataKeys", {"metadataKeys": ["user", "team"], "operator": operator}, ctx)
    assert out.verdict is verdict and out.data["explanation"] == explanation
    assert out.data["found_metadata_keys"] == ["user"] and out.data["missing_metadata_keys"] == ["team"]


def test_required_metadata_keys_defaults_to_all_and_is_before_only() -> None:
    ctx = context(metadata={"user": "u1", "team": "t"})
    assert run("default.requiredMetadataKeys", {"metadataKeys": ["user", "team"]}, ctx).verdict is True
    out = run("default.requiredMetadataKeys", {"metadataKeys": ["user"]}, ctx, AFTER)
    assert out.error is not None and out.error.name is not None  # an error object, as Portkey's
    out = run("default.requiredMetadataKeys", {"metadataKeys": []}, ctx, BEFORE)
    assert out.verdict is True and out.error is not None
