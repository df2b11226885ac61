"""Cohere embeddings (/v2/embed) and legacy completions (via /v2/chat) through the gateway."""

from __future__ import annotations

import base64
import struct
from typing import Any

import msgspec
import pytest

from fastgate.mock.openai_format import embedding_vector
from tests.conftest import Gateway, Upstream
from tests.support.replay import sdk


def headers(upstream: Upstream, key: str | None = "co-test") -> dict[str, str]:
    out = {"x-portkey-provider": "cohere", "x-portkey-custom-host": str(upstream.server.make_url(""))}
    if key:
        out["Authorization"] = f"Bearer {key}"
    return out


def sent(upstream: Upstream, path: str) -> dict[str, Any]:
    [record] = upstream.requests
    assert record["path"] == path
    return msgspec.json.decode(record["body"])


async def test_embeddings_request_and_float_answer(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, headers(upstream, None))
    answer = await client.embeddings.create(
        model="embed-v4.0", input=["hello world", "bye"], dimensions=4, encoding_format="float"
    )
    assert sent(upstream, "/v2/embed") == {
        "model": "embed-v4.0",
        "texts": ["hello world", "bye"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 4,
    }
    assert answer.object == "list"
    assert answer.model == "embed-v4.0"
    assert [d.index for d in answer.data] == [0, 1]
    assert answer.data[0].embedding == embedding_vector("hello world", 4)
    assert answer.data[1].embedding == embedding_vector("bye", 4)
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (3, 3)
    await client.close()


async def test_embeddings_base64_is_what_the_sdk_asks_by_default(
    gateway: Gateway, upstream: Upstream
) -> None:
    # Without encoding_format the openai SDK requests base64 and decodes float32 LE itself.
    client = sdk(gateway, headers(upstream, None))
    answer = await client.embeddings.create(model="embed-v4.0", input="one text")
    expected = embedding_vector("one text", 8)
    assert answer.data[0].embedding == pytest.approx(expected, rel=1e-6)
    await client.close()
    body = {"model": "embed-v4.0", "input": "one text", "encoding_format": "base64"}
    data = await (await gateway.post("/v1/embeddings", body, headers(upstream))).json()
    packed = base64.b64decode(data["data"][0]["embedding"])
    assert struct.unpack("<8f", packed) == pytest.approx(expected, rel=1e-6)


async def test_embeddings_input_type_from_request(gateway: Gateway, upstream: Upstream) -> None:
    body = {"model": "embed-v4.0", "input": "query text", "input_type": "search_query"}
    resp = await gateway.post("/v1/embeddings", body, headers(upstream))
    assert resp.status == 200
    assert sent(upstream, "/v2/embed")["input_type"] == "search_query"


async def test_token_array_input_is_refused(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/embeddings", {"model": "e", "input": [[1, 2, 3]]}, headers(upstream))
    assert resp.status == 400
    assert "strings" in (await resp.json())["error"]["message"]
    assert upstream.requests == []


async def test_completion_goes_through_chat(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, headers(upstream, None))
    answer = await client.completions.create(
        model="command-a", prompt="Write a haiku", max_tokens=3, temperature=0.5, stop=["\n"]
    )
    assert sent(upstream, "/v2/chat") == {
        "model": "command-a",
        "messages": [{"role": "user", "content": "Write a haiku"}],
        "max_tokens": 3,
        "temperature": 0.5,
        "stop_sequences": ["\n"],
    }
    assert answer.object == "text_completion"
    assert answer.choices[0].text == "Mock reply to:"
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 3
    await client.close()


async def test_completion_stream(gateway: Gateway, upstream: Upstream) -> None:
    client = sdk(gateway, headers(upstream, None))
    stream = await client.completions.create(
        model="command-a",
        prompt="stream a completion [mock chunks=3]",
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Mock reply to: stream a completion"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    await client.close()


async def test_completion_with_several_prompts_is_refused(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post("/v1/completions", {"model": "c", "prompt": ["a", "b"]}, headers(upstream))
    assert resp.status == 400
    assert upstream.requests == []
