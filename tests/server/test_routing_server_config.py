"""The server config file: saved configs by name, model aliases, ``@provider/model``, a default route.

A plain OpenAI SDK client that only changed its ``base_url`` is routed by the gateway.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import openai
import pytest

from fastgate.cli import main
from fastgate.server_config import build_server_config
from fastgate.ssrf import HostPolicy
from tests.conftest import Gateway, Upstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}


def toml_file(tmp_path: Path, upstream: Upstream) -> Path:
    host = upstream.url
    path = tmp_path / "fastgate.toml"
    path.write_text(
        f"""
default = "main"

[configs.main]
strategy = {{ mode = "fallback" }}

[[configs.main.targets]]
provider = "openai"
api_key = "sk-main-a"
custom_host = "{host}"
override_params = {{ mock = {{ status = 503 }} }}

[[configs.main.targets]]
provider = "groq"
api_key = "sk-main-b"
custom_host = "{host}"

[configs.retrying]
retry = {{ attempts = 2 }}

[providers.openai-prod]
provider = "openai"
api_key = "sk-catalog"
custom_host = "{host}"

[models]
legacy = "main"

[models.fast]
provider = "openai"
api_key = "sk-fast"
custom_host = "{host}"
override_params = {{ model = "gpt-4o-mini" }}

[models."gpt-4o"]
strategy = {{ mode = "loadbalance" }}
targets = [{{ provider = "openai", api_key = "sk-4o", customHost = "{host}" }}]
"""
    )
    return path


def keys(upstream: Upstream) -> list[str]:
    return [r["headers"].get("Authorization", "").removeprefix("Bearer ") for r in upstream.requests]


@pytest.fixture
async def routed(make_gateway: Any, upstream: Upstream, tmp_path: Path) -> Gateway:
    return await make_gateway(config_path=str(toml_file(tmp_path, upstream)), retry_base_ms=1.0)


async def test_saved_config_by_name(routed: Gateway, upstream: Upstream) -> None:
    resp = await routed.post("/v1/chat/completions", CHAT, {"x-portkey-config": "main"})
    assert resp.status == 200
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert resp.headers["x-portkey-provider"] == "groq"
    assert keys(upstream) == ["sk-main-a", "sk-main-b"]


async def test_saved_config_without_provider_is_completed_from_headers(
    routed: Gateway, upstream: Upstream
) -> None:
    hdrs = {
        "x-portkey-config": "retrying",
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream.url,
        "Authorization": "Bearer sk-client",
    }
    body = {**CHAT, "mock": {"fail_first": 1, "key": "saved"}}
    resp = await routed.post("/v1/chat/completions", body, hdrs)
    assert resp.status == 200
    assert resp.headers["x-portkey-retry-attempt-count"] == "1"
    assert keys(upstream) == ["sk-client", "sk-client"]


async def test_unknown_saved_config_is_400(routed: Gateway) -> None:
    resp = await routed.post("/v1/chat/completions", CHAT, {"x-portkey-config": "pc-abc123"})
    assert resp.status == 400
    assert "pc-abc123" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize(
    ("model", "key", "upstream_model"),
    [
        ("fast", "sk-fast", "gpt-4o-mini"),
        ("gpt-4o", "sk-4o", "gpt-4o"),
        ("@openai-prod/gpt-4.1-nano", "sk-catalog", "gpt-4.1-nano"),
        ("legacy", "sk-main-b", "legacy"),
        ("anything-else", "sk-main-b", "anything-else"),
    ],
)
async def test_plain_openai_client_is_routed_by_model(
    routed: Gateway, upstream: Upstream, model: str, key: str, upstream_model: str
) -> None:
    client = openai.AsyncOpenAI(base_url=routed.url + "/v1", api_key="client-key-ignored", max_retries=0)
    async with client:
        completion = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi there"}]
        )
    assert completion.choices[0].message.content == "Mock reply to: hi there"
    assert keys(upstream)[-1] == key
    assert msgspec.json.decode(upstream.requests[-1]["body"])["model"] == upstream_model


async def test_unknown_catalog_provider_is_400(routed: Gateway) -> None:
    resp = await routed.post("/v1/chat/completions", {**CHAT, "model": "@nobody/gpt"})
    assert resp.status == 400
    assert "nobody" in (await resp.json())["error"]["message"]


async def test_provider_header_still_wins_over_the_default(routed: Gateway, upstream: Upstream) -> None:
    hdrs = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream.url,
        "Authorization": "Bearer sk-h",
    }
    resp = await routed.post("/v1/chat/completions", {**CHAT, "model": "fast"}, hdrs)
    assert resp.status == 200
    assert keys(upstream) == ["sk-h"]


async def test_conditional_default_config_decodes_params_once(
    make_gateway: Any, upstream: Upstream, tmp_path: Path
) -> None:
    config = {
        "default": {
            "strategy": {
                "mode": "conditional",
                "conditions": [{"query": {"params.max_tokens": {"$gt": 100}}, "then": "big"}],
                "default": "small",
            },
            "targets": [
                {"name": "small", "provider": "openai", "api_key": "sk-small", "custom_host": upstream.url},
                {"name": "big", "provider": "openai", "api_key": "sk-big", "custom_host": upstream.url},
            ],
        }
    }
    path = tmp_path / "fastgate.json"
    path.write_text(json.dumps(config))
    gateway: Gateway = await make_gateway(config_path=str(path))
    for max_tokens in (500, 10):
        resp = await gateway.post("/v1/chat/completions", {**CHAT, "max_tokens": max_tokens})
        assert resp.status == 200
    assert keys(upstream) == ["sk-big", "sk-small"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"default": "missing"}, "default: "),
        ({"configs": {"x": {"strategy": {"mode": "nope"}, "targets": [{}]}}}, "configs.x: "),
        ({"models": {"m": {"retry": {"attempts": 1}}}}, "models.m: "),
        ({"providers": {"p": {"provider": "not-a-provider"}}}, "providers.p: "),
        ({"unknown_section": {}}, "unknown_section"),
    ],
)
def test_bad_server_config_names_the_entry(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        build_server_config(data, HostPolicy((), True))
    assert fragment in str(info.value)


def test_serve_refuses_a_bad_config_file_at_start_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[configs.a]\nstrategy = { mode = "sideways" }\ntargets = [{ provider = "openai" }]\n')
    assert main(["serve", "--config", str(path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "configs.a: " in err and "strategy.mode" in err


def test_check_config_command(
    tmp_path: Path, upstream_free_toml: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(upstream_free_toml)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text('{"models": {"m": {"provider": "openai", "weight": -2}}}')
    assert main(["check-config", str(bad)]) == 2
    assert "models.m: " in capsys.readouterr().err
    assert main(["check-config", str(tmp_path / "missing.toml")]) == 2


@pytest.fixture
def upstream_free_toml(tmp_path: Path) -> Path:
    path = tmp_path / "ok.toml"
    path.write_text('default = "a"\n[configs.a]\nprovider = "openai"\napi_key = "sk-x"\n')
    return path
