"""webhook, log and jwt against real aiohttp servers on loopback, through the gateway's own
upstream pool (the transport the gateway gives them)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from fastgate.guardrails.context import BEFORE
from fastgate.guardrails.engine import after_request, before_request
from fastgate.guardrails.jwks import JwksCache
from fastgate.guardrails.runtime import Runtime
from fastgate.guardrails.transport import PoolTransport
from fastgate.ssrf import HostPolicy
from fastgate.upstream.dns import CachingResolver
from fastgate.upstream.pool import UpstreamPool
from tests.guardrails.conftest import Hook, MakeServer, chat, chat_answer, context, leaf_hooks


@pytest.fixture
async def runtime() -> AsyncIterator[Runtime]:
    pool = UpstreamPool(CachingResolver(HostPolicy()), connect_timeout=1.0, read_timeout=5.0)
    yield Runtime(PoolTransport(pool))
    await pool.close()


def webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"webhookURL": url, **extra}


async def test_webhook_gets_the_context_without_headers_and_decides(
    endpoint: tuple[Hook, str], runtime: Runtime
) -> None:
    hook, base = endpoint
    hooks = leaf_hooks(
        {
            "input_guardrails": [
                {"deny": True, "webhook": webhook(f"{base}/hook?t=1", headers={"X-Token": "t"})}
            ]
        }
    )
    ctx = context(chat("hi"), headers={"authorization": "Bearer sk-provider-secret"}, metadata={"user": "u"})
    hook.answer = {"verdict": True, "data": {"score": 0.1}}
    run = await before_request(hooks, ctx, runtime)
    assert not run.failed
    (check,) = run.results[0].checks
    assert check.data == {
        "verdict": True,
        "explanation": "Webhook request succeeded",
        "webhookUrl": f"{base}/hook?t=1",
        "responseData": {"score": 0.1},
        "requestContext": {"timeout": 3000},
    }
    (body,) = hook.bodies
    assert body["request"]["json"] == chat("hi") and body["request"]["text"] == "hi"
    assert (
        body["eventType"] == BEFORE
        and body["metadata"] == {"user": "u"}
        and body["requestType"] == "chatComplete"
    )
    assert "headers" not in body["request"]
    assert "sk-provider-secret" not in json.dumps(body) and "sk-provider-secret" not in str(hook.headers)
    assert hook.headers[0]["X-Token"] == "t" and hook.headers[0]["Content-Type"] == "application/json"
    hook.answer = {"verdict": False}
    run = await before_request(hooks, ctx, runtime)
    assert run.denied and run.results[0].checks[0].data["explanation"] == "Webhook request failed"


async def test_webhook_transforms_the_request_and_the_answer(
    endpoint: tuple[Hook, str], runtime: Runtime
) -> None:
    hook, base = endpoint
    url = f"{base}/hook"
    hooks = leaf_hooks(
        {"input_guardrails": [{"webhook": webhook(url)}], "output_guardrails": [{"webhook": webhook(url)}]}
    )
    ctx = context(chat("raw"))
    hook.answer = {"verdict": True, "transformedData": {"request": {"json": chat("cleaned")}}}
    before = await before_request(hooks, ctx, runtime)
    assert before.request == chat("cleaned") and before.results[0].transformed
    hook.answer = {"verdict": True, "transformedData": {"response": {"json": chat_answer("safe")}}}
    after = await after_request(hooks, ctx, chat_answer("unsafe"), 200, runtime)
    assert after.response == chat_answer("safe")
    assert (
        hook.bodies[-1]["response"]["json"] == chat_answer("unsafe")
        and hook.bodies[-1]["request"]["text"] == "cleaned"
    )


@pytest.mark.parametrize(
    ("setup", "name", "message"),
    [
        ({"delay": 1.0}, "TimeoutError", "Request timed out after 100ms"),
        ({"status": 500, "answer": {"why": "down"}}, "HttpError", "HTTP error! status: 500"),
    ],
)
async def test_webhook_failures_are_check_errors_that_fail_open(
    endpoint: tuple[Hook, str], runtime: Runtime, setup: dict[str, Any], name: str, message: str
) -> None:
    hook, base = endpoint
    for key, value in setup.items():
        setattr(hook, key, value)
    hooks = leaf_hooks(
        {"input_guardrails": [{"deny": True, "webhook": webhook(f"{base}/hook", timeout=100)}]}
    )
    run = await before_request(hooks, context(chat("hi")), runtime)
    assert not run.denied and run.results[0].verdict is True
    (check,) = run.results[0].checks
    assert (
        check.verdict is False
        and check.error is not None
        and (check.error.name, check.error.message) == (name, message)
    )
    assert check.data["explanation"] == f"Webhook error: {message}"
    assert check.data.get("responseData") == ({"why": "down"} if name == "HttpError" else None)


async def test_webhook_redirects_are_not_followed(endpoint: tuple[Hook, str], runtime: Runtime) -> None:
    hook, base = endpoint
    hooks = leaf_hooks({"input_guardrails": [{"webhook": webhook(f"{base}/moved", failOnError=True)}]})
    run = await before_request(hooks, context(chat("hi")), runtime)
    (check,) = run.results[0].checks
    assert check.error is not None and check.error.message == "HTTP error! status: 302"
    assert hook.bodies == [] and run.failed  # failOnError: the error fails the hook


async def test_log_posts_the_context_and_passes(endpoint: tuple[Hook, str], runtime: Runtime) -> None:
    hook, base = endpoint
    hooks = leaf_hooks(
        {"output_guardrails": [{"log": {"logURL": f"{base}/hook", "headers": '{"X-Log": "1"}'}}]}
    )
    ctx = context(chat("q"), headers={"authorization": "Bearer sk-secret"})
    after = await after_request(hooks, ctx, chat_answer("a"), 200, runtime)
    (check,) = after.results[0].checks
    assert check.verdict is True and check.data == {"message": f"Logged the request to {base}/hook"}
    assert hook.bodies[0]["response"]["json"] == chat_answer("a") and hook.headers[0]["X-Log"] == "1"
    assert "sk-secret" not in json.dumps(hook.bodies)
    hook.status = 503
    after = await after_request(hooks, ctx, chat_answer("a"), 200, runtime)
    assert after.results[0].verdict is True and after.results[0].checks[0].error is not None


class Issuer:
    """A JWKS endpoint with two RSA keys, counting its fetches."""

    def __init__(self) -> None:
        self.keys = {
            kid: rsa.generate_private_key(public_exponent=65537, key_size=2048) for kid in ("k1", "k2")
        }
        self.published = ["k1"]
        self.fetches = 0

    async def jwks(self, request: web.Request) -> web.Response:
        self.fetches += 1
        keys = []
        for kid in self.published:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return web.json_response({"keys": keys})

    def token(self, kid: str = "k1", **claims: Any) -> str:
        now = int(time.time())
        payload = {"sub": "user", "iat": now, "exp": now + 600, **claims}
        return jwt.encode(payload, self.keys[kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
async def issuer(aiohttp_server: MakeServer) -> tuple[Issuer, str]:
    found = Issuer()
    app = web.Application()
    app.router.add_get("/.well-known/jwks.json", found.jwks)
    server = await aiohttp_server(app)
    return found, str(server.make_url("/.well-known/jwks.json"))


async def jwt_verdict(runtime: Runtime, uri: str, token: str | None, **params: Any) -> tuple[bool, str]:
    hooks = leaf_hooks(
        {
            "input_guardrails": [
                {"deny": True, "jwt": {"jwksUri": uri, "headerKey": "Authorization", **params}}
            ]
        }
    )
    headers = {"authorization": f"Bearer {token}"} if token else {}
    run = await before_request(hooks, context(chat("hi"), headers=headers), runtime)
    (check,) = run.results[0].checks
    return check.verdict, check.data["explanation"]


async def test_jwt_valid_token_passes_and_the_key_set_is_cached(
    issuer: tuple[Issuer, str], runtime: Runtime
) -> None:
    found, uri = issuer
    for _ in range(3):
        assert await jwt_verdict(runtime, uri, found.token()) == (True, "JWT token validation succeeded")
    assert found.fetches == 1


@pytest.mark.parametrize(
    ("make", "params", "words"),
    [
        (lambda i: i.token(exp=int(time.time()) - 60), {}, "expired"),
        (lambda i: i.token(iat=int(time.time()) - 7200), {"maxTokenAge": "1h"}, "too far in the past"),
        (lambda i: i.token()[:-4] + "AAAA", {}, "Signature verification failed"),
        (lambda i: None, {}, "Missing authorization header"),
        # Signed with HMAC under the RSA key's kid: the key's own algorithm (RS256) is required.
        (
            lambda i: jwt.encode(
                {"iat": int(time.time())}, "s" * 32, algorithm="HS256", headers={"kid": "k1"}
            ),
            {},
            "alg",
        ),
    ],
)
async def test_jwt_refusals(
    issuer: tuple[Issuer, str],
    runtime: Runtime,
    make: Callable[[Issuer], str | None],
    params: dict[str, Any],
    words: str,
) -> None:
    found, uri = issuer
    verdict, explanation = await jwt_verdict(runtime, uri, make(found), **params)
    assert verdict is False and words in explanation


async def test_jwt_unknown_kid_refetches_at_most_once_per_cooldown(issuer: tuple[Issuer, str]) -> None:
    found, uri = issuer
    pool = UpstreamPool(CachingResolver(HostPolicy()), connect_timeout=1.0, read_timeout=5.0)
    now = [1000.0]
    runtime = Runtime(PoolTransport(pool))
    runtime.jwks = JwksCache(runtime.transport, clock=lambda: now[0])
    try:
        assert (await jwt_verdict(runtime, uri, found.token("k1")))[0] is True
        found.published = ["k1", "k2"]  # the issuer rotates a key in
        assert await jwt_verdict(runtime, uri, found.token("k2")) == (False, "No matching key found for kid")
        assert found.fetches == 1  # within the cooldown: no refetch for an unknown kid
        now[0] += 31
        assert (await jwt_verdict(runtime, uri, found.token("k2")))[0] is True
        assert found.fetches == 2
    finally:
        await pool.close()


async def test_jwt_set_that_cannot_be_fetched_is_a_check_error(
    runtime: Runtime, aiohttp_server: MakeServer
) -> None:
    app = web.Application()
    server = await aiohttp_server(app)
    hooks = leaf_hooks(
        {"input_guardrails": [{"jwt": {"jwksUri": str(server.make_url("/missing")), "headerKey": "x-jwt"}}]}
    )
    run = await before_request(hooks, context(chat("hi"), headers={"x-jwt": Issuer().token()}), runtime)
    (check,) = run.results[0].checks
    assert check.error is not None and "Failed to fetch JWKS" in check.error.message
    assert run.results[0].verdict is True  # an error: fails open
