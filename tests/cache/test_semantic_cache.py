"""The semantic cache: prompts embedded through the gateway, a close one answered from the cache.

The embedding upstream here is a real loopback server computing bag-of-words vectors, so
prompts sharing their words are close and others are not (the mock provider's embeddings are
hashes of the whole text: every prompt would be far from every other).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.conftest import Gateway, Upstream
from tests.redis_server import RedisProcess

DIMS = 64


def bag_of_words(text: str) -> list[float]:
    vector = [0.0] * DIMS
    for word in re.findall(r"[a-z]+", text.lower()):
        vector[hashlib.sha256(word.encode()).digest()[0] % DIMS] += 1.0
    return vector


class Embedder:
    def __init__(self, server: TestServer, inputs: list[str]) -> None:
        self.url = str(server.make_url("/v1"))
        self.inputs = inputs


@pytest.fixture
async def embedder(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Embedder:
    inputs: list[str] = []

    async def embeddings(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer sk-embed"
        body = await request.json()
        inputs.append(body["input"])
        return web.json_response(
            {
                "object": "list",
                "model": body["model"],
                "data": [{"object": "embedding", "index": 0, "embedding": bag_of_words(body["input"])}],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )

    app = web.Application()
    app.router.add_post("/v1/embeddings", embeddings)
    return Embedder(await aiohttp_server(app), inputs)


def server_config(tmp_path: Path, embedder_url: str, threshold: float = 0.9) -> str:
    path = tmp_path / "server.json"
    embedding = {
        "provider": "openai",
        "api_key": "sk-embed",
        "custom_host": embedder_url,
        "override_params": {"model": "bow-64"},
    }
    path.write_text(json.dumps({"semantic_cache": {"threshold": threshold, "embedding": embedding}}))
    return str(path)


def semantic(upstream: Upstream) -> str:
    return json.dumps(
        {"provider": "openai", "api_key": "sk", "custom_host": upstream.url, "cache": {"mode": "semantic"}}
    )


async def ask(gateway: Gateway, config: str, text: str, **extra: Any) -> tuple[str, Any]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}
    resp = await gateway.post("/v1/chat/completions", body, {"x-portkey-config": config})
    assert resp.status == 200, await resp.text()
    data = await resp.json() if not extra.get("stream") else await resp.text()
    await gateway.app.shared.guard.drain()
    return resp.headers["x-portkey-cache-status"], data


async def test_a_close_prompt_is_a_semantic_hit(
    make_gateway: Any, upstream: Upstream, embedder: Embedder, tmp_path: Path
) -> None:
    gateway = await make_gateway(config_path=server_config(tmp_path, embedder.url))
    config = semantic(upstream)
    status, first = await ask(gateway, config, "What is the capital of France?")
    assert status == "SEMANTIC MISS"
    status, second = await ask(gateway, config, "what is the capital of france")
    assert status == "SEMANTIC HIT"
    assert second == first
    assert len(upstream.requests) == 1
    # The prompt went to the embedding target through the gateway, with the role it was sent with.
    assert embedder.inputs == ["user: What is the capital of France?", "user: what is the capital of france"]
    status, _ = await ask(gateway, config, "How do volcanoes form under the ocean?")
    assert status == "SEMANTIC MISS"
    # An exact repeat is found without embedding it again.
    status, _ = await ask(gateway, config, "What is the capital of France?")
    assert status == "SEMANTIC HIT"
    assert len(embedder.inputs) == 3


async def test_other_parameters_never_share_an_answer(
    make_gateway: Any, upstream: Upstream, embedder: Embedder, tmp_path: Path
) -> None:
    gateway = await make_gateway(config_path=server_config(tmp_path, embedder.url))
    config = semantic(upstream)
    await ask(gateway, config, "Name a prime number")
    assert (await ask(gateway, config, "name a prime number", temperature=0))[0] == "SEMANTIC MISS"
    other_key = config.replace('"sk"', '"sk-other"')
    assert (await ask(gateway, other_key, "name a prime number"))[0] == "SEMANTIC MISS"
    assert len(upstream.requests) == 3


@pytest.mark.parametrize(("threshold", "status"), [(0.8, "SEMANTIC HIT"), (0.9, "SEMANTIC MISS")])
async def test_threshold_decides(
    make_gateway: Any, upstream: Upstream, embedder: Embedder, tmp_path: Path, threshold: float, status: str
) -> None:
    gateway = await make_gateway(config_path=server_config(tmp_path, embedder.url, threshold=threshold))
    config = semantic(upstream)
    await ask(gateway, config, "the quick brown fox jumps")
    # "user: the quick brown fox ..." : five of six words shared, a cosine similarity of 5/6.
    first, second = (
        bag_of_words("user: the quick brown fox jumps"),
        bag_of_words("user: the quick brown fox sleeps"),
    )
    dot = sum(a * b for a, b in zip(first, second, strict=True))
    assert dot / (sum(a * a for a in first) ** 0.5 * sum(b * b for b in second) ** 0.5) == pytest.approx(
        5 / 6
    )
    assert (await ask(gateway, config, "the quick brown fox sleeps"))[0] == status


async def test_streams_hit_streams(
    make_gateway: Any, upstream: Upstream, embedder: Embedder, tmp_path: Path
) -> None:
    gateway = await make_gateway(config_path=server_config(tmp_path, embedder.url))
    config = semantic(upstream)
    status, first = await ask(gateway, config, "Tell me about the moon", stream=True)
    assert status == "SEMANTIC MISS"
    status, second = await ask(gateway, config, "tell me about the Moon!", stream=True)
    assert (status, second) == ("SEMANTIC HIT", first)
    assert second.endswith("data: [DONE]\n\n")
    # A JSON request is its own partition: a stream is never its answer.
    assert (await ask(gateway, config, "Tell me about the moon"))[0] == "SEMANTIC MISS"


async def test_an_embedding_failure_is_a_miss(make_gateway: Any, upstream: Upstream, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{_closed_port()}/v1"
    gateway = await make_gateway(config_path=server_config(tmp_path, dead))
    config = semantic(upstream)
    assert (await ask(gateway, config, "What is the capital of France?"))[0] == "SEMANTIC MISS"
    assert (await ask(gateway, config, "what is the capital of france"))[0] == "SEMANTIC MISS"
    # The answers were still stored under their exact keys: a repeat is served from the cache.
    assert (await ask(gateway, config, "What is the capital of France?"))[0] == "SEMANTIC HIT"
    assert len(upstream.requests) == 2


async def test_the_semantic_index_is_shared_through_redis(
    make_gateway: Any, upstream: Upstream, embedder: Embedder, tmp_path: Path, redis_server: RedisProcess
) -> None:
    path = server_config(tmp_path, embedder.url)
    first = await make_gateway(config_path=path, redis_url=redis_server.url)
    second = await make_gateway(config_path=path, redis_url=redis_server.url)
    config = semantic(upstream)
    _, answer = await ask(first, config, "Which planet is the largest?")
    status, shared = await ask(second, config, "which planet is the largest")
    assert (status, shared) == ("SEMANTIC HIT", answer)


def test_bad_semantic_settings_are_refused(tmp_path: Path) -> None:
    from fastgate.server_config import load_server_config
    from fastgate.ssrf import HostPolicy

    path = tmp_path / "bad.json"
    for bad, message in (
        ({"threshold": 0.9}, "embedding"),
        ({"threshold": 2, "embedding": {"provider": "openai"}}, "threshold"),
        ({"embedding": {"provider": "nope"}}, "semantic_cache.embedding"),
    ):
        path.write_text(json.dumps({"semantic_cache": bad}))
        with pytest.raises(ValueError, match=message):
            load_server_config(str(path), HostPolicy((), True))


def _closed_port() -> int:
    from tests.redis_server import free_port

    return free_port()
