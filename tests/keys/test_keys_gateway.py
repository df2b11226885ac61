"""Gateway API keys and virtual keys through a real gateway, managed over the admin API."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiohttp import web
from openai import AsyncOpenAI, AuthenticationError, PermissionDeniedError
from portkey_ai import AsyncPortkey

from fastgate.mock.server import MOCK_KEY, make_mock_app
from tests.conftest import Gateway, Upstream, openai_headers

ADMIN = "admin-token-for-tests"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Admin:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.headers = {"Authorization": f"Bearer {ADMIN}"}

    async def add_key(self, **spec: Any) -> dict[str, Any]:
        resp = await self.gateway.post("/admin/keys", spec, headers=self.headers)
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())

    async def add_virtual_key(self, **spec: Any) -> dict[str, Any]:
        resp = await self.gateway.post("/admin/virtual-keys", spec, headers=self.headers)
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())


@pytest.fixture
async def keyed(make_gateway: Any, tmp_path: Path) -> tuple[Gateway, Admin]:
    gateway = await make_gateway(data_dir=str(tmp_path / "data"), admin_token=ADMIN)
    return gateway, Admin(gateway)


async def test_open_until_the_first_key_then_401_without_one(
    keyed: tuple[Gateway, Admin], upstream: Upstream
) -> None:
    gateway, admin = keyed
    assert (await gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream))).status == 200
    key = await admin.add_key(name="team-a")
    assert key["key"].startswith("fg-")
    assert "hash" not in key
    resp = await gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream))
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "missing_api_key"
    bad = await gateway.post(
        "/v1/chat/completions", CHAT, {**openai_headers(upstream), "x-portkey-api-key": "fg-nope"}
    )
    assert bad.status == 401
    assert (await bad.json())["error"]["code"] == "invalid_api_key"
    good = await gateway.post(
        "/v1/chat/completions", CHAT, {**openai_headers(upstream), "x-portkey-api-key": key["key"]}
    )
    assert good.status == 200
    # The provider key in Authorization still reaches the upstream; the gateway key does not.
    sent = upstream.requests[-1]["headers"]
    assert sent["Authorization"] == "Bearer sk-test-123"
    assert key["key"] not in json.dumps(sent)
    # /v1/models is an inference route too.
    assert (await gateway.get("/v1/models", openai_headers(upstream))).status == 401


async def test_virtual_key_by_header_with_the_gateway_key_as_bearer(
    keyed: tuple[Gateway, Admin], upstream: Upstream
) -> None:
    gateway, admin = keyed
    vk = await admin.add_virtual_key(
        provider="openai",
        name="open-ai-key",
        secret="sk-upstream-secret",
        custom_host=upstream.url,
        options={"openai_organization": "org-42"},
    )
    assert vk["slug"].startswith("open-ai-key-")
    assert "secret" not in vk
    key = await admin.add_key(name="sdk")
    # Portkey's documented client: api_key = the gateway key, virtual_key = the slug, no provider.
    client = AsyncOpenAI(
        api_key=key["key"],
        base_url=gateway.url + "/v1",
        default_headers={"x-portkey-virtual-key": vk["slug"]},
        max_retries=0,
    )
    completion = await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
    )
    assert completion.choices[0].message.content
    sent = upstream.requests[-1]["headers"]
    assert sent["Authorization"] == "Bearer sk-upstream-secret"
    assert sent["OpenAI-Organization"] == "org-42"
    with pytest.raises(AuthenticationError):
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-portkey-virtual-key": "no-such-key-000000"},
        )
    await client.close()


async def test_virtual_keys_in_config_targets_with_fallback(
    make_gateway: Any, tmp_path: Path, upstream: Upstream
) -> None:
    gateway = await make_gateway(data_dir=str(tmp_path), admin_token=ADMIN)
    admin = Admin(gateway)
    failing = await admin.add_virtual_key(provider="openai", secret="sk-first", custom_host=upstream.url)
    working = await admin.add_virtual_key(provider="groq", secret="sk-second", custom_host=upstream.url)
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [{"virtual_key": failing["slug"]}, {"virtual_key": working["slug"]}],
    }
    body = {**CHAT, "mock": {"fail_first": 1, "status": 503, "key": "vk-fallback"}}
    resp = await gateway.post("/v1/chat/completions", body, {"x-portkey-config": json.dumps(config)})
    assert resp.status == 200, await resp.text()
    assert resp.headers["x-portkey-provider"] == "groq"
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    auths = [r["headers"]["Authorization"] for r in upstream.requests]
    assert auths == ["Bearer sk-first", "Bearer sk-second"]


async def test_a_virtual_key_secret_never_reaches_the_client(
    keyed: tuple[Gateway, Admin], upstream: Upstream
) -> None:
    gateway, admin = keyed
    vk = await admin.add_virtual_key(provider="openai", secret="sk-hidden-999", custom_host=upstream.url)
    body = {**CHAT, "mock": {"status": 401}}
    resp = await gateway.post("/v1/chat/completions", body, {"x-portkey-virtual-key": vk["slug"]})
    assert resp.status == 401
    assert "sk-hidden-999" not in await resp.text()
    listing = await gateway.get("/admin/virtual-keys", admin.headers)
    text = await listing.text()
    assert vk["slug"] in text
    assert "sk-hidden-999" not in text


async def test_an_upstream_quoting_the_secret_is_redacted(
    keyed: tuple[Gateway, Admin], aiohttp_server: Any
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        key = request.headers["Authorization"].removeprefix("Bearer ")
        error = {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error"}
        return web.json_response({"error": error}, status=401)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", refuse)
    upstream = await aiohttp_server(app)
    gateway, admin = keyed
    vk = await admin.add_virtual_key(
        provider="openai", secret="sk-quoted-777", custom_host=str(upstream.make_url("/v1"))
    )
    resp = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-virtual-key": vk["slug"]})
    assert resp.status == 401
    message = (await resp.json())["error"]["message"]
    assert message == "openai error: Incorrect API key provided: [virtual key secret]"


async def test_key_policy_403(keyed: tuple[Gateway, Admin], upstream: Upstream) -> None:
    gateway, admin = keyed
    key = await admin.add_key(name="narrow", allowed_providers=["openai"], allowed_models=["gpt-4o-mini"])
    headers = {**openai_headers(upstream), "x-portkey-api-key": key["key"]}
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200
    other_model = await gateway.post("/v1/chat/completions", {**CHAT, "model": "gpt-4o"}, headers)
    assert other_model.status == 403
    assert (await other_model.json())["error"]["param"] == "model"
    other_provider = await gateway.post(
        "/v1/chat/completions", CHAT, {**openai_headers(upstream, "groq"), "x-portkey-api-key": key["key"]}
    )
    assert other_provider.status == 403
    # A config's override_params decide the model that is really used.
    config = {
        "provider": "openai",
        "api_key": "sk-x",
        "custom_host": upstream.url,
        "override_params": {"model": "gpt-4o"},
    }
    overridden = await gateway.post(
        "/v1/chat/completions",
        CHAT,
        {"x-portkey-config": json.dumps(config), "x-portkey-api-key": key["key"]},
    )
    assert overridden.status == 403
    client = AsyncOpenAI(
        api_key="sk-test-123",
        base_url=gateway.url + "/v1",
        default_headers={
            "x-portkey-provider": "groq",
            "x-portkey-custom-host": upstream.url,
            "x-portkey-api-key": key["key"],
        },
        max_retries=0,
    )
    with pytest.raises(PermissionDeniedError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    await client.close()


async def test_allowed_configs_only_by_name(make_gateway: Any, tmp_path: Path, upstream: Upstream) -> None:
    server_config = tmp_path / "server.json"
    target = {"provider": "openai", "api_key": "sk-server", "custom_host": upstream.url}
    server_config.write_text(json.dumps({"configs": {"main": target, "other": target}}))
    gateway = await make_gateway(data_dir=str(tmp_path), admin_token=ADMIN, config_path=str(server_config))
    key = await Admin(gateway).add_key(allowed_configs=["main"])
    auth = {"Authorization": f"Bearer {key['key']}"}
    ok = await gateway.post("/v1/chat/completions", CHAT, {**auth, "x-portkey-config": "main"})
    assert ok.status == 200, await ok.text()
    # The gateway key came as the bearer: the server's credential goes upstream, not the key.
    assert upstream.requests[-1]["headers"]["Authorization"] == "Bearer sk-server"
    for config in ("other", json.dumps(target)):
        resp = await gateway.post("/v1/chat/completions", CHAT, {**auth, "x-portkey-config": config})
        assert resp.status == 403
    assert (
        await gateway.post("/v1/chat/completions", CHAT, {**auth, **openai_headers(upstream)})
    ).status == 401


async def test_revoked_keys_stop_working_and_admin_needs_its_token(
    keyed: tuple[Gateway, Admin], upstream: Upstream
) -> None:
    gateway, admin = keyed
    first = await admin.add_key(name="first")
    second = await admin.add_key(name="second")
    listing = await (await gateway.get("/admin/keys", admin.headers)).json()
    assert [k["name"] for k in listing["data"]] == ["first", "second"]
    assert all("hash" not in k and "key" not in k for k in listing["data"])
    resp = await gateway.session.delete(gateway.url + f"/admin/keys/{first['id']}", headers=admin.headers)
    assert resp.status == 200
    headers = openai_headers(upstream)
    assert (
        await gateway.post("/v1/chat/completions", CHAT, {**headers, "x-portkey-api-key": first["key"]})
    ).status == 401
    assert (
        await gateway.post("/v1/chat/completions", CHAT, {**headers, "x-portkey-api-key": second["key"]})
    ).status == 200
    assert (
        await gateway.session.delete(gateway.url + "/admin/keys/nope", headers=admin.headers)
    ).status == 404
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        assert (await gateway.get("/admin/keys", headers)).status == 401
    assert (await gateway.post("/admin/keys", {"nme": "typo"}, admin.headers)).status == 400
    bad_host = await gateway.post(
        "/admin/virtual-keys", {"provider": "openai", "custom_host": "http://169.254.169.254"}, admin.headers
    )
    assert bad_host.status == 400
    assert (await gateway.post("/admin/virtual-keys", {"provider": "nope"}, admin.headers)).status == 400


async def test_no_admin_api_without_a_token(make_gateway: Any, tmp_path: Path) -> None:
    gateway = await make_gateway(data_dir=str(tmp_path))
    assert (await gateway.get("/admin/keys", {"Authorization": "Bearer x"})).status == 404


async def test_records_file_is_private_and_holds_no_key(keyed: tuple[Gateway, Admin], tmp_path: Path) -> None:
    _, admin = keyed
    key = await admin.add_key(name="k")
    path = tmp_path / "data" / "keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = msgspec.json.decode(path.read_bytes())
    assert key["key"] not in path.read_text()
    assert next(iter(stored["keys"].values()))["id"] == key["id"]


async def test_keys_in_redis_are_shared_by_two_gateways(
    make_gateway: Any, redis_server: Any, upstream: Upstream
) -> None:
    first = await make_gateway(redis_url=redis_server.url, admin_token=ADMIN)
    second = await make_gateway(redis_url=redis_server.url)
    vk = await Admin(first).add_virtual_key(provider="openai", secret="sk-shared", custom_host=upstream.url)
    key = await Admin(first).add_key(name="shared")
    registry = second.app.shared.registry
    assert registry is not None
    await registry.refresh()  # the background refresh runs each second; no need to wait for it
    headers = {"x-portkey-api-key": key["key"], "x-portkey-virtual-key": vk["slug"]}
    resp = await second.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 200, await resp.text()
    assert upstream.requests[-1]["headers"]["Authorization"] == "Bearer sk-shared"


async def test_records_lost_with_redis_keep_the_gateway_closed(
    make_gateway: Any, redis_server: Any, upstream: Upstream
) -> None:
    gateway = await make_gateway(redis_url=redis_server.url, admin_token=ADMIN)
    key = await Admin(gateway).add_key(name="k")
    registry = gateway.app.shared.registry
    assert registry is not None
    redis_server.stop()
    redis_server.start()  # no persistence: every record is gone
    await asyncio.sleep(0.6)
    await registry.refresh()
    assert (await gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream))).status == 401
    headers = {**openai_headers(upstream), "x-portkey-api-key": key["key"]}
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200


async def test_passthrough_never_relays_a_bearer_gateway_key(
    keyed: tuple[Gateway, Admin], upstream: Upstream
) -> None:
    gateway, admin = keyed
    vk = await admin.add_virtual_key(provider="openai", secret="sk-proxy-secret", custom_host=upstream.url)
    key = await admin.add_key()
    headers = {"Authorization": f"Bearer {key['key']}", "x-portkey-virtual-key": vk["slug"]}
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == 200
    resp = await gateway.get("/v1/models", headers)
    assert resp.status == 200
    resp = await gateway.post("/v1/moderations", {"input": "hi"}, headers)
    sent = [r["headers"] for r in upstream.requests]
    assert len(sent) == 3
    for h in sent:
        assert h["Authorization"] == "Bearer sk-proxy-secret"
        assert key["key"] not in json.dumps(h)


async def test_a_virtual_key_carries_provider_options(
    keyed: tuple[Gateway, Admin], upstream: Upstream
) -> None:
    gateway, admin = keyed
    root = str(upstream.server.make_url("")).rstrip("/")
    vk = await admin.add_virtual_key(
        provider="azure-openai",
        secret="azure-secret",
        custom_host=root + "/openai",  # Portkey's azure base includes /openai
        options={"deployment_id": "gpt4o-prod", "api_version": "2024-10-21"},
    )
    assert sorted(vk["options"]) == ["api_version", "deployment_id"]
    resp = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-virtual-key": vk["slug"]})
    assert resp.status == 200, await resp.text()
    assert resp.headers["x-portkey-provider"] == "azure-openai"
    sent = upstream.requests[-1]
    assert sent["path"] == "/openai/deployments/gpt4o-prod/chat/completions"
    assert sent["query"] == "api-version=2024-10-21"
    assert sent["headers"]["api-key"] == "azure-secret"
    # The request may add options, never replace the key's: the secret stays where it was meant to go.
    config = json.dumps(
        {"virtual_key": vk["slug"], "deployment_id": "elsewhere", "openai_beta": "assistants=v2"}
    )
    resp = await gateway.post("/v1/chat/completions", CHAT, {"x-portkey-config": config})
    assert resp.status == 200
    assert upstream.requests[-1]["path"] == "/openai/deployments/gpt4o-prod/chat/completions"
    assert upstream.requests[-1]["headers"]["OpenAI-Beta"] == "assistants=v2"


async def test_a_virtual_key_secret_cannot_be_sent_to_another_host(
    keyed: tuple[Gateway, Admin], upstream: Upstream, aiohttp_server: Any
) -> None:
    gateway, admin = keyed
    vk = await admin.add_virtual_key(provider="openai", secret="sk-stay-home", custom_host=upstream.url)
    elsewhere = await aiohttp_server(make_mock_app())
    for headers in (
        {"x-portkey-virtual-key": vk["slug"], "x-portkey-custom-host": str(elsewhere.make_url("/v1"))},
        {
            "x-portkey-config": json.dumps(
                {"virtual_key": vk["slug"], "custom_host": str(elsewhere.make_url("/v1"))}
            )
        },
    ):
        resp = await gateway.post("/v1/chat/completions", CHAT, headers)
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "custom_host_not_allowed"
    assert elsewhere.app[MOCK_KEY].records == []
    assert upstream.requests == []


async def test_keys_added_by_the_cli_reach_a_running_server(
    make_gateway: Any, tmp_path: Path, upstream: Upstream, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastgate.cli import main

    data = str(tmp_path / "data")
    gateway = await make_gateway(data_dir=data)
    assert (await gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream))).status == 200
    assert await asyncio.to_thread(main, ["keys", "add", "--data-dir", data, "--name", "cli"]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    registry = gateway.app.shared.registry
    assert registry is not None
    await registry.refresh()  # what the background refresh does each second
    assert (await gateway.post("/v1/chat/completions", CHAT, openai_headers(upstream))).status == 401
    headers = {**openai_headers(upstream), "x-portkey-api-key": key}
    assert (await gateway.post("/v1/chat/completions", CHAT, headers)).status == 200


def test_gateway_keys_are_redacted_from_logs() -> None:
    from fastgate.keys.models import new_token
    from fastgate.observability.logs import redact

    token = new_token()
    assert token not in redact(f"refused key {token} at startup")


async def test_portkey_sdk_with_api_key_and_virtual_key(
    keyed: tuple[Gateway, Admin], upstream: Upstream
) -> None:
    """Portkey's documented client, unchanged: ``api_key=PORTKEY_API_KEY, virtual_key=...``."""
    gateway, admin = keyed
    vk = await admin.add_virtual_key(provider="openai", secret="sk-behind-the-slug", custom_host=upstream.url)
    key = await admin.add_key(name="portkey-sdk", limits={"rpm": 2})
    async with (
        httpx.AsyncClient() as http,
        AsyncPortkey(
            http_client=http, base_url=gateway.url + "/v1", api_key=key["key"], virtual_key=vk["slug"]
        ) as client,
    ):
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=CHAT["messages"])
        assert completion.choices[0].message.content
        assert upstream.requests[-1]["headers"]["Authorization"] == "Bearer sk-behind-the-slug"
        chunks = await client.chat.completions.create(
            model="gpt-4o-mini", messages=CHAT["messages"], stream=True
        )
        assert [c async for c in chunks]
        # The SDK's own (vendored openai) RateLimitError: matched by what it says.
        with pytest.raises(Exception, match="requests per minute limit reached") as refused:
            await client.chat.completions.create(model="gpt-4o-mini", messages=CHAT["messages"])
        assert getattr(refused.value, "status_code", None) == 429
