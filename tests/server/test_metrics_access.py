"""``/metrics`` names upstream hosts: it follows the admin API's rule when an admin token is set,
needs a gateway key while keys are required, and is open otherwise or with ``metrics_public``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway

ADMIN = "admin-token-for-metrics"


async def status(gateway: Gateway, path: str, **headers: str) -> int:
    resp = await gateway.get(path, headers)
    await resp.read()
    return resp.status


async def test_open_without_admin_token_or_gateway_keys(gateway: Gateway) -> None:
    assert await status(gateway, "/metrics") == 200


async def test_the_admin_token_guards_it_when_set(make_gateway: Any, tmp_path: Path) -> None:
    gateway = await make_gateway(admin_token=ADMIN, data_dir=str(tmp_path))
    assert await status(gateway, "/metrics") == 401
    assert await status(gateway, "/metrics", Authorization="Bearer wrong") == 401
    resp = await gateway.get("/metrics")
    assert (await resp.json())["error"]["code"] == "invalid_admin_token"
    assert await status(gateway, "/metrics", Authorization=f"Bearer {ADMIN}") == 200
    assert await status(gateway, "/health") == 200


async def test_a_gateway_key_while_keys_are_required(make_gateway: Any, tmp_path: Path) -> None:
    gateway = await make_gateway(data_dir=str(tmp_path))
    assert await status(gateway, "/metrics") == 200
    registry = gateway.app.shared.registry
    assert registry is not None
    token, _ = await registry.add_key("scraper")
    assert await status(gateway, "/metrics") == 401
    assert await status(gateway, "/metrics", **{"x-portkey-api-key": "fg-wrong"}) == 401
    assert await status(gateway, "/metrics", **{"x-portkey-api-key": token}) == 200
    assert await status(gateway, "/metrics", Authorization=f"Bearer {token}") == 200
    assert await status(gateway, "/health") == 200


@pytest.mark.parametrize("admin_token", [ADMIN, None])
async def test_metrics_public_opens_it(make_gateway: Any, tmp_path: Path, admin_token: str | None) -> None:
    config = tmp_path / "fastgate.toml"
    config.write_text("metrics_public = true\n")
    gateway = await make_gateway(admin_token=admin_token, data_dir=str(tmp_path), config_path=str(config))
    await gateway.app.shared.registry.add_key("someone")  # type: ignore[union-attr]
    assert await status(gateway, "/metrics") == 200
