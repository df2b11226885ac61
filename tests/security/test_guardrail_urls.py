"""Guardrail checks that call a URL (webhook, log, jwt) are judged by the SSRF policy with the
config: a refused URL is a 400 naming the check's parameter, before any connection."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastgate.errors import GatewayError
from fastgate.guardrails.defaults import DefaultGuardrails
from fastgate.routing.config import decode_config
from fastgate.routing.plan import compile_plan
from fastgate.ssrf import HostPolicy
from tests.security.test_ssrf import REFUSED

pytestmark = pytest.mark.netns

POLICY = HostPolicy((), True)
CHECKS = [("webhook", "webhookURL"), ("log", "logURL"), ("jwt", "jwksUri")]
#: The custom-host refusals that are not about a query string (a webhook URL may carry one).
URLS = [u for u in REFUSED if "?" not in u]


def compiled(config: dict[str, Any], policy: HostPolicy = POLICY) -> None:
    compile_plan(decode_config(msgspec.json.encode(config).decode(), policy))


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(("check", "param"), CHECKS)
def test_refused_guardrail_urls(url: str, check: str, param: str) -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [{"provider": "openai", "api_key": "k", "output_guardrails": [{check: {param: url}}]}],
    }
    with pytest.raises(GatewayError) as info:
        compiled(config)
    assert info.value.status == 400
    assert info.value.param == f"config.targets[0].output_guardrails[0].checks[0].parameters.{param}"


def test_loopback_refused_when_the_policy_says_so() -> None:
    strict = HostPolicy((), allow_loopback=False)
    config = {
        "provider": "openai",
        "api_key": "k",
        "input_guardrails": [{"webhook": {"webhookURL": "http://127.0.0.1:9/h"}}],
    }
    with pytest.raises(GatewayError):
        compiled(config, strict)
    compiled(config)  # allowed by the default policy (tests and local sidecars)


def test_query_strings_are_allowed_on_allowed_hosts() -> None:
    compiled(
        {
            "provider": "openai",
            "api_key": "k",
            "input_guardrails": [{"webhook": {"webhookURL": "http://127.0.0.1:9/h?token=x"}}],
        }
    )


def test_refused_in_the_default_guardrail_header_too() -> None:
    header = msgspec.json.encode([{"webhook": {"webhookURL": "http://169.254.169.254/x"}}]).decode()
    with pytest.raises(GatewayError) as info:
        DefaultGuardrails(POLICY).read({"x-portkey-default-input-guardrails": header})
    assert info.value.param == "x-portkey-default-input-guardrails[0].checks[0].parameters.webhookURL"
