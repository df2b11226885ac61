"""A plain OpenAI client that changed only its ``base_url`` works: no header, no server config.

Its requests go to ``openai`` with its own key, and a model named ``<provider>/<model>`` with a
provider slug fastgate knows goes to that provider, the client's key as that provider's. Only
when nothing else picks the provider: a model id with a slash of its own reaches the provider a
request names untouched. The providers' public base URLs point at the loopback mock here (the
one seam: no test may reach a real provider).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import openai
import pytest

from fastgate.providers.registry import PROVIDERS
from tests.conftest import Gateway, Upstream

MESSAGES: Any = [{"role": "user", "content": "drop in"}]
REROUTED = ("openai", "anthropic", "groq", "together-ai", "openrouter")


@pytest.fixture(autouse=True)
def providers_at_the_mock(monkeypatch: pytest.MonkeyPatch, upstream: Upstream) -> None:
    for slug in REROUTED:
        monkeypatch.setattr(PROVIDERS[slug], "base_url", upstream.url)


def plain(gateway: Gateway, key: str = "sk-client-own", **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key=key, max_retries=0, default_headers=headers or None
    )


def sent(upstream: Upstream) -> tuple[str, dict[str, Any], dict[str, Any]]:
    record = upstream.requests[-1]
    return record["path"], record["headers"], msgspec.json.decode(record["body"]) if record["body"] else {}


async def test_a_plain_client_reaches_openai_with_its_own_key(gateway: Gateway, upstream: Upstream) -> None:
    async with plain(gateway) as client:
        raw = await client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        answer = raw.parse()
        path, headers, body = sent(upstream)
        assert answer.choices[0].message.content == "Mock reply to: drop in"
        assert raw.headers["x-portkey-provider"] == "openai"
        assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-client-own"
        assert body == {"model": "gpt-4o-mini", "messages": MESSAGES}
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Mock reply to: drop in"
        vectors = await client.embeddings.create(model="text-embedding-3-small", input="hi")
        assert len(vectors.data[0].embedding) > 0
        models = await client.models.list()
        assert [m.id for m in models.data] and sent(upstream)[0] == "/v1/models"


@pytest.mark.parametrize(
    ("model", "provider", "path", "upstream_model", "auth"),
    [
        (
            "anthropic/claude-sonnet-4-5",
            "anthropic",
            "/v1/messages",
            "claude-sonnet-4-5",
            ("x-api-key", "sk-client-own"),
        ),
        (
            "groq/llama-3.1-8b-instant",
            "groq",
            "/v1/chat/completions",
            "llama-3.1-8b-instant",
            ("Authorization", "Bearer sk-client-own"),
        ),
        (
            "@anthropic/claude-sonnet-4-5",
            "anthropic",
            "/v1/messages",
            "claude-sonnet-4-5",
            ("x-api-key", "sk-client-own"),
        ),
        (
            "openai/gpt-4o",
            "openai",
            "/v1/chat/completions",
            "gpt-4o",
            ("Authorization", "Bearer sk-client-own"),
        ),
        # Not a provider slug: the whole id goes to openai as it is.
        (
            "meta-llama/Llama-3.3-70B",
            "openai",
            "/v1/chat/completions",
            "meta-llama/Llama-3.3-70B",
            ("Authorization", "Bearer sk-client-own"),
        ),
    ],
)
async def test_a_provider_slug_in_the_model_routes_to_that_provider(
    gateway: Gateway,
    upstream: Upstream,
    model: str,
    provider: str,
    path: str,
    upstream_model: str,
    auth: tuple[str, str],
) -> None:
    async with plain(gateway) as client:
        raw = await client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    answer = raw.parse()
    assert raw.headers["x-portkey-provider"] == provider
    assert answer.object == "chat.completion" and "drop in" in (answer.choices[0].message.content or "")
    sent_path, headers, body = sent(upstream)
    assert sent_path == path and body["model"] == upstream_model
    assert headers[auth[0]] == auth[1]


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("together-ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
        ("groq", "meta-llama/llama-4-scout-17b-16e-instruct"),
        ("openrouter", "anthropic/claude-3.5-sonnet"),
        ("openai", "groq/not-a-route-here"),
    ],
)
async def test_a_slashed_model_goes_untouched_to_the_provider_the_request_names(
    gateway: Gateway, upstream: Upstream, provider: str, model: str
) -> None:
    async with plain(gateway, **{"x-portkey-provider": provider}) as client:
        raw = await client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
    assert raw.headers["x-portkey-provider"] == provider
    assert sent(upstream)[2]["model"] == model


async def test_a_server_default_picks_the_provider_before_the_model_does(
    make_gateway: Any, upstream: Upstream, tmp_path: Path
) -> None:
    path = tmp_path / "fastgate.json"
    default = {"provider": "mistral-ai", "api_key": "sk-server", "custom_host": upstream.url}
    path.write_text(msgspec.json.encode({"default": default}).decode())
    gateway: Gateway = await make_gateway(config_path=str(path))
    async with plain(gateway) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="groq/llama-3.1-8b-instant", messages=MESSAGES
        )
    assert raw.headers["x-portkey-provider"] == "mistral-ai"
    _, headers, body = sent(upstream)
    assert body["model"] == "groq/llama-3.1-8b-instant" and headers["Authorization"] == "Bearer sk-server"


async def test_the_default_provider_setting_picks_the_provider_before_the_model_does(
    make_gateway: Any, upstream: Upstream
) -> None:
    gateway: Gateway = await make_gateway(default_provider="mock")
    async with plain(gateway) as client:
        raw = await client.chat.completions.with_raw_response.create(model="groq/llama", messages=MESSAGES)
    assert raw.headers["x-portkey-provider"] == "mock" and raw.parse().model == "groq/llama"
    assert upstream.requests == []


async def test_without_any_key_it_is_still_portkeys_400(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/chat/completions", {"model": "gpt-4o", "messages": MESSAGES})
    assert resp.status == 400
    assert "x-portkey-provider" in (await resp.json())["error"]["message"]
    assert upstream.requests == []


async def test_an_unknown_provider_after_an_at_sign_is_a_400(gateway: Gateway, upstream: Upstream) -> None:
    async with plain(gateway) as client:
        with pytest.raises(openai.BadRequestError, match="nobody"):
            await client.chat.completions.create(model="@nobody/gpt-4o", messages=MESSAGES)
    assert upstream.requests == []
