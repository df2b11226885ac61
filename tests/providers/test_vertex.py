"""Provider ``vertex-ai`` (publisher google): URLs, auth and service-account tokens, over loopback HTTP."""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fastgate.providers.base import Call, Endpoint, Target
from fastgate.providers.google_auth import ServiceAccount, TokenCache, load_rsa_key, rs256_sign
from fastgate.providers.vertex import VertexProvider
from fastgate.schema.openai import view_decoder
from fastgate.ssrf import HostPolicy
from fastgate.upstream.dns import CachingResolver
from fastgate.upstream.pool import UpstreamPool
from tests.conftest import Gateway, Upstream
from tests.providers.gemini_support import client, mock_root, recorded, sent
from tests.support.sse import data_payloads

MODEL = "gemini-2.0-flash"
ACCOUNT: dict[str, Any] = msgspec.json.decode(recorded("service_account.json"))
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hello vertex"}]}


def vertex_headers(upstream: Upstream, **extra: str) -> dict[str, str]:
    return {
        "x-portkey-provider": "vertex-ai",
        "x-portkey-custom-host": mock_root(upstream) + "/v1",
        "x-portkey-vertex-project-id": "proj-1",
        "x-portkey-vertex-region": "europe-west4",
        **extra,
    }


def account_json(upstream: Upstream, **changes: str) -> str:
    return msgspec.json.encode({**ACCOUNT, "token_uri": mock_root(upstream) + "/token", **changes}).decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def test_chat_with_the_clients_access_token(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, vertex_headers(upstream), key="ya29.client-token") as c:
        answer = await c.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert answer.choices[0].message.content == "Mock reply to: hello vertex"
    assert answer.model_extra is not None and answer.model_extra["provider"] == "vertex-ai"
    [received] = upstream.requests
    assert received["path"] == (
        f"/v1/projects/proj-1/locations/europe-west4/publishers/google/models/{MODEL}:generateContent"
    )
    assert received["headers"]["Authorization"] == "Bearer ya29.client-token"
    assert sent(upstream)["contents"] == [{"role": "user", "parts": [{"text": "hello vertex"}]}]


async def test_stream_uses_sse_and_ends_with_done(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post(
        "/v1/chat/completions",
        {**CHAT, "stream": True},
        vertex_headers(upstream, Authorization="Bearer ya29.t"),
    )
    payloads = data_payloads(await resp.read())
    assert payloads[-1] == b"[DONE]"
    chunks = [msgspec.json.decode(p) for p in payloads[:-1]]
    assert "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks) == (
        "Mock reply to: hello vertex"
    )
    assert {ch["provider"] for ch in chunks} == {"vertex-ai"}
    [received] = upstream.requests
    assert received["path"].endswith(f"/models/{MODEL}:streamGenerateContent")
    assert received["query"] == "alt=sse"


def _url(options: dict[str, Any], model: str = MODEL) -> str:
    body = msgspec.json.encode({"model": model, "messages": [{"role": "user", "content": "x"}]})
    call = Call(
        endpoint=Endpoint.CHAT,
        target=Target(provider="vertex-ai", api_key="ya29.t", options=options),
        body=body,
        view=view_decoder.decode(body),
    )
    return VertexProvider().request(call).url


def test_urls_by_region_and_publisher_prefix() -> None:
    assert _url({"vertex_project_id": "p", "vertex_region": "us-east5"}) == (
        "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5"
        f"/publishers/google/models/{MODEL}:generateContent"
    )
    assert _url({"vertex_project_id": "p", "vertex_region": "global"}, "google." + MODEL) == (
        f"https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/google/models/{MODEL}"
        ":generateContent"
    )
    assert _url({"vertex_project_id": "p"}).startswith("https://us-central1-aiplatform.googleapis.com/")


@pytest.mark.parametrize(
    ("headers", "model", "status", "fragment"),
    [
        ({}, "meta.llama-3.1-405b-instruct-maas", 400, "publisher 'meta'"),
        ({"x-portkey-vertex-project-id": ""}, MODEL, 400, "needs a project"),
        ({"x-portkey-vertex-region": "us/../x"}, MODEL, 400, "vertex_region"),
        ({"x-portkey-vertex-service-account-json": "{not json"}, MODEL, 400, "service-account key"),
    ],
)
async def test_bad_requests_never_reach_vertex(
    gateway: Gateway, upstream: Upstream, headers: dict[str, str], model: str, status: int, fragment: str
) -> None:
    all_headers = {**vertex_headers(upstream, Authorization="Bearer ya29.t"), **headers}
    resp = await gateway.post("/v1/chat/completions", {**CHAT, "model": model}, all_headers)
    assert resp.status == status
    assert fragment in (await resp.json())["error"]["message"]
    assert upstream.requests == []


async def test_without_credentials_is_a_401(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/chat/completions", CHAT, vertex_headers(upstream))
    assert resp.status == 401
    error = (await resp.json())["error"]
    assert error["type"] == "authentication_error"
    assert "vertex_service_account_json" in error["message"]
    assert upstream.requests == []


async def test_vertex_errors_are_mapped(gateway: Gateway, upstream: Upstream) -> None:
    body = {**CHAT, "messages": [{"role": "user", "content": "x [mock status=429]"}]}
    resp = await gateway.post(
        "/v1/chat/completions", body, vertex_headers(upstream, Authorization="Bearer t")
    )
    assert resp.status == 429
    data = await resp.json()
    assert data["provider"] == "vertex-ai"
    assert data["error"]["type"] == "rate_limit_error" and data["error"]["code"] == "RESOURCE_EXHAUSTED"


async def test_service_account_token_is_minted_once_for_many_requests(
    gateway: Gateway, upstream: Upstream
) -> None:
    headers = vertex_headers(upstream, **{"x-portkey-vertex-service-account-json": account_json(upstream)})
    async with client(gateway, headers, key="unused") as c:
        answers = await asyncio.gather(*(c.chat.completions.create(**CHAT) for _ in range(6)))  # type: ignore[call-overload]
        for _ in range(3):
            answers.append(await c.chat.completions.create(**CHAT))  # type: ignore[call-overload]
    assert len(answers) == 9
    token_requests = [r for r in upstream.requests if r["path"] == "/token"]
    vertex_requests = [r for r in upstream.requests if r["path"] != "/token"]
    assert len(token_requests) == 1
    assert len(vertex_requests) == 9
    tokens = {r["headers"]["Authorization"] for r in vertex_requests}
    assert len(tokens) == 1 and tokens.pop().startswith("Bearer ya29.mock-")
    # The account's project_id wins over the header's, as in Portkey.
    assert all(
        "/projects/fastgate-test-project/locations/europe-west4/" in r["path"] for r in vertex_requests
    )

    form = dict(item.split("=", 1) for item in token_requests[0]["body"].split("&"))
    assert form["grant_type"] == "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
    header_b64, claims_b64, _signature = form["assertion"].split(".")
    header = msgspec.json.decode(_b64url_decode(header_b64))
    claims = msgspec.json.decode(_b64url_decode(claims_b64))
    assert header == {"alg": "RS256", "typ": "JWT", "kid": ACCOUNT["private_key_id"]}
    assert claims["iss"] == ACCOUNT["client_email"]
    assert claims["aud"] == mock_root(upstream) + "/token"
    assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert claims["exp"] - claims["iat"] == 3600


@pytest.mark.parametrize(
    ("token_uri", "status", "fragment"),
    [
        ("https://evil.example.com/token", 400, "token_uri"),
        ("http://169.254.169.254/token", 400, "token_uri"),
        ("{root}/no-such-token-endpoint", 502, "token exchange was refused (HTTP 404)"),
        ("http://127.0.0.1:9/token", 502, "upstream connection failed"),
    ],
)
async def test_token_endpoint_is_checked_and_its_refusal_reported(
    gateway: Gateway, upstream: Upstream, token_uri: str, status: int, fragment: str
) -> None:
    account = account_json(upstream, token_uri=token_uri.format(root=mock_root(upstream)))
    headers = vertex_headers(upstream, **{"x-portkey-vertex-service-account-json": account})
    resp = await gateway.post("/v1/chat/completions", CHAT, headers)
    assert resp.status == status
    assert fragment in (await resp.json())["error"]["message"]
    assert not [r for r in upstream.requests if "/publishers/" in r["path"]]


async def test_token_is_refreshed_shortly_before_expiry(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    issued: list[int] = []
    lifetime = [3600]

    async def token(request: web.Request) -> web.Response:
        issued.append(1)
        return web.json_response({"access_token": f"tok-{len(issued)}", "expires_in": lifetime[0]})

    app = web.Application()
    app.router.add_post("/token", token)
    server = await aiohttp_server(app)
    account = msgspec.convert({**ACCOUNT, "token_uri": str(server.make_url("/token"))}, ServiceAccount)
    cache = TokenCache()
    pool = UpstreamPool(CachingResolver(HostPolicy()), connect_timeout=5, read_timeout=5)
    try:
        assert [await cache.token(account, pool) for _ in range(3)] == ["tok-1"] * 3
        cache._tokens.clear()
        lifetime[0] = 200  # inside the 300 s refresh margin: never reused
        assert [await cache.token(account, pool) for _ in range(2)] == ["tok-2", "tok-3"]
    finally:
        await pool.close()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to cross-check")
def test_rs256_signatures_verify_with_openssl(tmp_path: Path) -> None:
    pem = ACCOUNT["private_key"]
    (tmp_path / "key.pem").write_text(pem)
    subprocess.run(
        ["openssl", "pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"], cwd=tmp_path, check=True
    )
    key = load_rsa_key(pem)
    for i, message in enumerate([b"", b"header.claims", bytes(range(256)) * 5]):
        (tmp_path / f"m{i}").write_bytes(message)
        (tmp_path / f"s{i}").write_bytes(rs256_sign(key, message))
        done = subprocess.run(
            ["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", f"s{i}", f"m{i}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert done.stdout.strip() == "Verified OK", done.stderr
    (tmp_path / "s0").write_bytes(rs256_sign(key, b"other"))
    refused = subprocess.run(
        ["openssl", "dgst", "-sha256", "-verify", "pub.pem", "-signature", "s0", "m0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert refused.returncode != 0


async def test_options_and_service_account_from_a_config(gateway: Gateway, upstream: Upstream) -> None:
    config = {
        "provider": "vertex-ai",
        "custom_host": mock_root(upstream) + "/v1",
        "vertexRegion": "global",
        "vertex_service_account_json": {**ACCOUNT, "token_uri": mock_root(upstream) + "/token"},
    }
    headers = {"x-portkey-config": msgspec.json.encode(config).decode()}
    for _ in range(2):
        resp = await gateway.post("/v1/chat/completions", CHAT, headers)
        assert resp.status == 200
    paths = [r["path"] for r in upstream.requests]
    assert paths == [
        "/token",
        *[
            f"/v1/projects/fastgate-test-project/locations/global/publishers/google/models/{MODEL}:generateContent"
        ]
        * 2,
    ]


async def test_embeddings_use_predict(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, vertex_headers(upstream), key="ya29.t") as c:
        result = await c.embeddings.create(
            model="text-embedding-005",
            input=["one two", "three"],
            dimensions=4,
            extra_body={"input_type": "retrieval_query"},
        )
    assert [len(d.embedding) for d in result.data] == [4, 4]
    assert result.usage.prompt_tokens == 3 and result.usage.total_tokens == 3
    [received] = upstream.requests
    assert received["path"] == (
        "/v1/projects/proj-1/locations/europe-west4/publishers/google/models/text-embedding-005:predict"
    )
    assert sent(upstream) == {
        "instances": [
            {"content": "one two", "task_type": "RETRIEVAL_QUERY"},
            {"content": "three", "task_type": "RETRIEVAL_QUERY"},
        ],
        "parameters": {"outputDimensionality": 4},
    }


async def test_passthrough_with_a_minted_token(gateway: Gateway, upstream: Upstream) -> None:
    headers = vertex_headers(upstream, **{"x-portkey-vertex-service-account-json": account_json(upstream)})
    path = (
        f"/projects/fastgate-test-project/locations/europe-west4/publishers/google/models/{MODEL}:countTokens"
    )
    body = {"contents": [{"role": "user", "parts": [{"text": "two words"}]}]}
    resp = await gateway.post("/v1" + path, body, {**headers, "Authorization": "Bearer client-token"})
    assert resp.status == 200
    assert (await resp.json())["totalTokens"] == 2
    token_request, received = upstream.requests
    assert token_request["path"] == "/token"
    assert received["path"] == "/v1" + path
    assert received["headers"]["Authorization"].startswith("Bearer ya29.mock-")


async def test_unreachable_token_endpoint_falls_back_to_the_next_target(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {
                "provider": "vertex-ai",
                "custom_host": mock_root(upstream) + "/v1",
                "vertex_service_account_json": {**ACCOUNT, "token_uri": "http://127.0.0.1:9/token"},
            },
            {
                "provider": "google",
                "api_key": "AIza-fallback",
                "custom_host": mock_root(upstream) + "/v1beta",
            },
        ],
    }
    resp = await gateway.post(
        "/v1/chat/completions", CHAT, {"x-portkey-config": msgspec.json.encode(config).decode()}
    )
    assert resp.status == 200
    assert resp.headers["x-portkey-provider"] == "google"
    assert resp.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert [r["path"] for r in upstream.requests] == [f"/v1beta/models/{MODEL}:generateContent"]
