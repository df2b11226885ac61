"""Files, uploads and batches through the ``openai`` SDK: against the mock over HTTP (as ``openai``
with a custom host, and as ``azure-openai`` at Azure's URLs) and the in-process ``mock``."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest
from openai import AsyncOpenAI

from tests.conftest import Gateway, Upstream
from tests.multimodal.conftest import headers_for, sdk_client


@pytest.fixture(params=["openai", "azure-openai", "mock"])
async def client(request: Any, gateway: Gateway, upstream: Upstream) -> AsyncIterator[AsyncOpenAI]:
    headers = headers_for(request.param, upstream.url)
    async with sdk_client(gateway, headers) as c:
        yield c


BATCH_INPUT = b"".join(
    json.dumps(
        {
            "custom_id": f"req-{i}",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"question {i}"}]},
        }
    ).encode()
    + b"\n"
    for i in range(3)
)


async def test_file_upload_list_retrieve_content_delete(client: AsyncOpenAI) -> None:
    data = bytes(range(256)) * 40
    created = await client.files.create(file=("notes.bin", io.BytesIO(data)), purpose="user_data")
    assert (created.object, created.bytes, created.filename, created.purpose) == (
        "file",
        len(data),
        "notes.bin",
        "user_data",
    )
    listed = await client.files.list(purpose="user_data")
    assert created.id in [f.id for f in listed.data]
    assert (await client.files.retrieve(created.id)).bytes == len(data)
    content = await client.files.content(created.id)
    assert content.read() == data
    deleted = await client.files.delete(created.id)
    assert deleted.deleted is True and deleted.id == created.id
    with pytest.raises(openai.NotFoundError, match="No such File object"):
        await client.files.retrieve(created.id)


async def test_batch_create_retrieve_output_list_cancel(client: AsyncOpenAI) -> None:
    source = await client.files.create(file=("batch.jsonl", io.BytesIO(BATCH_INPUT)), purpose="batch")
    batch = await client.batches.create(
        input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert (batch.object, batch.status, batch.input_file_id) == ("batch", "validating", source.id)
    done = await client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None and done.request_counts.completed == 3
    assert done.output_file_id is not None
    output = (await client.files.content(done.output_file_id)).read()
    lines = [json.loads(line) for line in output.splitlines()]
    assert [line["custom_id"] for line in lines] == ["req-0", "req-1", "req-2"]
    assert lines[1]["response"]["body"]["choices"][0]["message"]["content"] == "Mock reply to: question 1"
    assert batch.id in [b.id async for b in client.batches.list()]
    with pytest.raises(openai.BadRequestError, match="Cannot cancel"):
        await client.batches.cancel(batch.id)


async def test_upload_in_parts(client: AsyncOpenAI) -> None:
    first, second = b"a" * 3000, b"b" * 1000
    upload = await client.uploads.create(
        bytes=4000, filename="big.jsonl", mime_type="text/jsonl", purpose="batch"
    )
    parts = [await client.uploads.parts.create(upload.id, data=piece) for piece in (first, second)]
    done = await client.uploads.complete(upload.id, part_ids=[p.id for p in parts])
    assert done.status == "completed" and done.file is not None
    assert (await client.files.content(done.file.id)).read() == first + second


async def test_missing_file_is_openais_400(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="No such File object"):
        await client.batches.create(
            input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
        )


@pytest.mark.parametrize(
    ("provider", "options", "instead"),
    [
        ("bedrock", {"x-portkey-aws-region": "us-east-1"}, "CreateModelInvocationJob"),
        ("vertex-ai", {"x-portkey-vertex-region": "us-central1"}, "batchPredictionJobs"),
    ],
)
async def test_bedrock_and_vertex_batches_say_what_to_use_instead(
    gateway: Gateway, provider: str, options: dict[str, str], instead: str
) -> None:
    headers = {"x-portkey-provider": provider, **options}
    async with sdk_client(gateway, headers) as c:
        with pytest.raises(openai.BadRequestError, match=instead) as refused:
            await c.batches.create(
                input_file_id="file-1", endpoint="/v1/chat/completions", completion_window="24h"
            )
        assert refused.value.code == "unsupported_endpoint"
        with pytest.raises(openai.BadRequestError, match="files is not supported"):
            await c.files.create(file=("a.jsonl", io.BytesIO(b"{}\n")), purpose="batch")


async def test_a_provider_without_the_operation_gets_it_through_its_passthrough(
    gateway: Gateway, upstream: Upstream
) -> None:
    """Anthropic's Files API is reached as any /v1/* path is: the upload streamed as it came."""
    headers = {"x-portkey-provider": "anthropic", "x-portkey-custom-host": upstream.url}
    async with sdk_client(gateway, headers, key="sk-ant") as c:
        created = await c.files.create(file=("a.txt", io.BytesIO(b"passthrough")), purpose="user_data")
    assert created.bytes == len(b"passthrough")
    [received] = upstream.requests
    assert received["path"] == "/v1/files"
    assert received["headers"]["x-api-key"] == "sk-ant"
    assert received["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"input_file_id": ', "Request body is not valid JSON"),
        (b'{"model": 24}', "Invalid request body"),
        (
            b'{"input_file_id": "f", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "nested too deeply",
        ),
    ],
)
async def test_a_bad_batch_body_is_a_400_before_any_upstream(
    gateway: Gateway, upstream: Upstream, body: bytes, message: str
) -> None:
    headers = {**headers_for("openai", upstream.url), "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url + "/v1/batches", data=body, headers=headers) as resp,
    ):
        answer = await resp.json()
    assert resp.status == 400
    assert message in answer["error"]["message"]
    assert upstream.requests == []
