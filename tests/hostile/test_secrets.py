"""Provider keys and Authorization values never appear in logs, error bodies or metrics.

Every log record of every logger is captured at DEBUG while requests carrying known keys go
through success, upstream errors (one upstream echoes the key it was sent, as some do), failed
connections, timeouts, refusals and broken input; then the captured text, every response body
and header, and /metrics are searched for the keys.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from fastgate.observability.logs import RedactingFormatter
from tests.conftest import Gateway, Upstream
from tests.faults.test_provider_faults import HEADERS

KEY = "sk-proj-SECRETsecret0123456789abcdefXYZ"
CONFIG_KEY = "sk-ant-api03-CONFIGsecret9876543210zyxw"
ODD_KEY = "plainSECRETvalueWithoutAnyKnownShape42"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY99"
KEYS = (KEY, CONFIG_KEY, ODD_KEY, AWS_SECRET)
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, list[logging.LogRecord]]]:
    """Every record, formatted as the gateway writes its logs, and the raw records too."""
    text = io.StringIO()
    records: list[logging.LogRecord] = []
    formatted = logging.StreamHandler(text)
    formatted.setFormatter(RedactingFormatter("%(levelname)s %(name)s %(message)s"))

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    level = root.level
    keep = Keep()
    root.addHandler(formatted)
    root.addHandler(keep)
    root.setLevel(logging.DEBUG)
    yield text, records
    root.removeHandler(formatted)
    root.removeHandler(keep)
    root.setLevel(level)


@pytest.fixture
async def echoing(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    """An upstream that rejects every key and quotes it back in full."""

    async def reject(request: web.Request) -> web.Response:
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        body = {"error": {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error"}}
        # Under /under200/ the same refusal comes with a 200, as some proxies send it.
        return web.json_response(body, status=200 if "/under200/" in request.path else 401)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", reject)
    server = await aiohttp_server(app)
    return str(server.make_url("/v1"))


def scenarios(upstream: Upstream, echoing: str, dead: str) -> list[tuple[dict[str, str], Any]]:
    def via(host: str, key: str = KEY, **extra: str) -> dict[str, str]:
        return {
            "x-portkey-provider": "openai",
            "x-portkey-custom-host": host,
            "Authorization": f"Bearer {key}",
            **extra,
        }

    config = {"provider": "openai", "custom_host": upstream.url, "api_key": CONFIG_KEY}
    return [
        (via(upstream.url), CHAT),
        (via(upstream.url), {**CHAT, "stream": True}),
        (via(upstream.url, ODD_KEY), {**CHAT, "mock": {"status": 401}}),
        (via(upstream.url), {**CHAT, "mock": {"fail": "drop"}}),
        (via(upstream.url), {**CHAT, "stream": True, "mock": {"fail": "drop_mid_stream"}}),
        (via(upstream.url, **{"x-portkey-request-timeout": "50"}), {**CHAT, "mock": {"delay_ms": 500}}),
        (via(echoing), CHAT),
        (via(echoing.replace("/v1", "/under200/v1")), CHAT),
        (via(echoing.replace("/v1", "/under200/v1")), {**CHAT, "stream": True}),
        (via(echoing, ODD_KEY), {**CHAT, "stream": True}),
        (via(dead), CHAT),
        (via("http://169.254.169.254/v1"), CHAT),
        (via(upstream.url, KEY + "\u2603"), CHAT),
        ({"x-portkey-config": msgspec.json.encode(config).decode()}, CHAT),
        ({"x-portkey-config": msgspec.json.encode({**config, "custom_host": echoing}).decode()}, CHAT),
        ({"x-portkey-config": msgspec.json.encode({**config, "retry": {"attempts": "x"}}).decode()}, CHAT),
        ({"x-portkey-config": msgspec.json.encode({**config, "provider": 5}).decode()}, CHAT),
        ({"x-portkey-config": msgspec.json.encode(config).decode()[:-1]}, CHAT),
        ({"x-portkey-config": CONFIG_KEY}, CHAT),
        ({"x-portkey-config": msgspec.json.encode({**config, "api_key": [CONFIG_KEY]}).decode()}, CHAT),
        (via(upstream.url), b"{broken json " + KEY.encode()),
        *provider_scenarios(upstream),
    ]


def provider_scenarios(upstream: Upstream) -> list[tuple[dict[str, str], Any]]:
    """Anthropic's x-api-key and a Bedrock secret key (signing fails at the mock: a 403)."""
    out: list[tuple[dict[str, str], Any]] = []
    if "anthropic" in HEADERS:
        anthropic = {**HEADERS["anthropic"](upstream), "x-api-key": KEY}
        out += [
            (anthropic, CHAT),
            (anthropic, {**CHAT, "messages": [{"role": "user", "content": "[mock status=401]"}]}),
        ]
    if "bedrock" in HEADERS:
        bedrock = {**HEADERS["bedrock"](upstream), "x-portkey-aws-secret-access-key": AWS_SECRET}
        out += [(bedrock, CHAT), (bedrock, {**CHAT, "stream": True})]
    return out


async def test_keys_never_leak(
    gateway: Gateway,
    upstream: Upstream,
    echoing: str,
    unused_tcp_port: int,
    captured: tuple[io.StringIO, list[logging.LogRecord]],
) -> None:
    text, records = captured
    answers: list[str] = []
    for headers, body in scenarios(upstream, echoing, f"http://127.0.0.1:{unused_tcp_port}/v1"):
        data = body if isinstance(body, bytes) else msgspec.json.encode(body)
        resp = await gateway.post("/v1/chat/completions", data=data, headers=headers)
        payload = (await resp.read()).decode("utf-8", "replace")
        answers.append(f"{resp.status} {dict(resp.headers)} {payload}")
    metrics = await gateway.get("/metrics")
    answers.append(await metrics.text())
    raw = "\n".join(r.getMessage() + str(r.exc_info or "") + str(r.args) for r in records)
    for key in KEYS:
        for answer in answers:
            assert key not in answer, answer
        assert key not in text.getvalue()
        assert key not in raw
    assert any(a.startswith("401") for a in answers)  # the scenarios did reach the upstreams
    if "bedrock" in HEADERS:
        assert any(a.startswith("403") for a in answers)  # a signature made with the wrong secret
