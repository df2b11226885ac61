"""What a chat request gets, image generations get too: configs (a fallback from OpenAI to Stability
answered in OpenAI's shape), retries, timeouts, the response cache, gateway keys and per-image
cost budgets."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from fastgate.mock.media import PNG
from tests.conftest import Gateway, Upstream
from tests.providers.gemini_support import mock_root

ADMIN = {"Authorization": "Bearer admin-secret"}


def stability_target(upstream: Upstream, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "stability-ai",
        "api_key": "sk-stab-0123456789",
        "custom_host": mock_root(upstream),
        **extra,
    }


def openai_target(upstream: Upstream, **extra: Any) -> dict[str, Any]:
    return {"provider": "openai", "api_key": "sk-openai-0123456789", "custom_host": upstream.url, **extra}


async def generate(gateway: Gateway, config: dict[str, Any], body: dict[str, Any], **headers: str) -> Any:
    return await gateway.post(
        "/v1/images/generations", body, {"x-portkey-config": json.dumps(config), **headers}
    )


async def test_fallback_from_openai_to_stability_answers_in_openais_shape(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            openai_target(upstream, override_params={"mock": {"status": 503}}),
            stability_target(upstream, override_params={"model": "core"}),
        ],
    }
    resp = await generate(gateway, config, {"model": "gpt-image-1.5", "prompt": "a fox", "size": "1024x1024"})
    assert resp.status == 200, await resp.text()
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert resp.headers["x-portkey-provider"] == "stability-ai"
    answer = await resp.json()
    assert set(answer) == {"created", "data", "output_format", "provider"}
    assert base64.b64decode(answer["data"][0]["b64_json"]) == PNG
    first, second = upstream.requests
    assert first["path"] == "/v1/images/generations"
    assert second["path"] == "/v2beta/stable-image/generate/core"


async def test_retries_and_timeouts(gateway: Gateway, upstream: Upstream) -> None:
    config = stability_target(upstream, retry={"attempts": 2, "on_status_codes": [503]})
    body = {"model": "core", "prompt": "[mock fail_first=1 key=img-retry] a fox"}
    resp = await generate(gateway, config, body)
    assert resp.status == 200 and resp.headers["x-portkey-retry-attempt-count"] == "1"
    assert len(upstream.requests) == 2
    slow = stability_target(upstream, request_timeout=100)
    resp = await generate(gateway, slow, {"model": "core", "prompt": "[mock delay_ms=2000] a fox"})
    assert resp.status == 408


async def test_image_answers_are_cached(gateway: Gateway, upstream: Upstream) -> None:
    config = stability_target(upstream, cache={"mode": "simple", "max_age": 60})
    body = {"model": "core", "prompt": "a cached fox", "n": 2}
    first = await generate(gateway, config, body)
    assert first.headers["x-portkey-cache-status"] == "MISS"
    payload = await first.read()
    await gateway.app.shared.guard.drain()
    second = await generate(gateway, config, body)
    assert second.headers["x-portkey-cache-status"] == "HIT"
    assert await second.read() == payload
    assert len(upstream.requests) == 2  # the first answer's two calls, none for the hit


async def test_a_gateway_key_limits_image_models(
    make_gateway: Any, tmp_path: Path, upstream: Upstream
) -> None:
    gateway = await make_gateway(data_dir=str(tmp_path), admin_token="admin-secret")
    resp = await gateway.post("/admin/keys", {"name": "artists", "allowed_models": ["core"]}, ADMIN)
    key = (await resp.json())["key"]
    config = stability_target(upstream)
    assert (
        await generate(gateway, config, {"model": "core", "prompt": "a"}, **{"x-portkey-api-key": key})
    ).status == 200
    refused = await generate(gateway, config, {"model": "ultra", "prompt": "a"}, **{"x-portkey-api-key": key})
    assert refused.status == 403
    assert (await generate(gateway, config, {"model": "core", "prompt": "a"})).status == 401


@pytest.mark.parametrize(
    ("price", "quality", "spent"),
    [
        ("image = 0.5", None, 1.0),
        ('image = { "hd/1024x1024" = 2.0, "1024x1024" = 0.25, default = 9.0 }', "hd", 4.0),
        ('image = { "hd/1024x1024" = 2.0, "1024x1024" = 0.25, default = 9.0 }', "standard", 0.5),
    ],
)
async def test_images_are_priced_per_image(
    make_gateway: Any, tmp_path: Path, upstream: Upstream, price: str, quality: str | None, spent: float
) -> None:
    server_config = tmp_path / "server.toml"
    server_config.write_text(f'[prices."dall-e-3"]\n{price}\n')
    gateway = await make_gateway(
        data_dir=str(tmp_path), admin_token="admin-secret", config_path=str(server_config)
    )
    resp = await gateway.post("/admin/keys", {"name": "img", "limits": {"budget_cost": spent + 0.1}}, ADMIN)
    key = await resp.json()
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream.url,
        "Authorization": "Bearer sk-x",
        "x-portkey-api-key": key["key"],
    }
    body: dict[str, Any] = {"model": "dall-e-3", "prompt": "a fox", "size": "1024x1024"}
    if quality:
        body["quality"] = quality
    for _ in range(2):
        assert (await gateway.post("/v1/images/generations", body, headers)).status == 200
        await gateway.app.shared.guard.drain()
    usage = await (await gateway.get(f"/admin/keys/{key['id']}/usage", ADMIN)).json()
    assert usage["cost"] == pytest.approx(spent)
    over = await gateway.post("/v1/images/generations", body, headers)
    assert over.status == 200  # 0.1 was left: admitted, then charged past the budget
    await gateway.app.shared.guard.drain()
    refused = await gateway.post("/v1/images/generations", body, headers)
    assert refused.status == 429 and (await refused.json())["error"]["code"] == "budget_exceeded"
