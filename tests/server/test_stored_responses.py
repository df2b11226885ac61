"""The stored Responses' routes (``GET`` / ``DELETE /v1/responses/{id}``, ``GET .../input_items``)
served by fastgate's own HTTP server over both store backends, read by the openai SDK."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from fastgate.gateway.stored_responses import StoredResponses
from fastgate.server.dispatch import Dispatcher
from fastgate.server.http_server import HTTPServer
from fastgate.server.messages import Request, Response
from fastgate.server.router import Router
from fastgate.store.client import RedisClient
from fastgate.store.redis_responses import RedisResponseStore
from fastgate.store.responses import MemoryResponseStore, ResponseStore
from tests.redis_server import RedisProcess
from tests.support.responses import answered, response_store


async def serve(routes: StoredResponses) -> HTTPServer:
    router = Router()
    router.add("GET", "/v1/responses/{id}", routes.retrieve)
    router.add("DELETE", "/v1/responses/{id}", routes.delete)
    router.add("GET", "/v1/responses/{id}/input_items", routes.input_items)
    server = HTTPServer(Dispatcher(router, 100), max_body=1 << 20)
    await server.start("127.0.0.1", 0)
    return server


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ResponseStore]:
    async with response_store(request) as backend:
        yield backend


@pytest.fixture
async def client(store: ResponseStore) -> AsyncIterator[AsyncOpenAI]:
    server = await serve(StoredResponses(store))
    async with AsyncOpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="k", max_retries=0) as c:
        yield c
    await server.stop(1)


async def stored(store: ResponseStore, items: Any) -> str:
    response_id, record = answered(items)
    await store.put(response_id, record)
    return response_id


async def test_retrieve_answers_the_response_as_it_was_sent(
    client: AsyncOpenAI, store: ResponseStore
) -> None:
    response_id = await stored(store, "what was said")
    response = await client.responses.retrieve(response_id)
    assert response.id == response_id and response.output_text == "kept" and response.status == "completed"


async def test_input_items_list_newest_first_by_default(client: AsyncOpenAI, store: ResponseStore) -> None:
    items = [{"role": "user", "content": f"turn {n}"} for n in range(5)]
    response_id = await stored(store, items)
    page = await client.responses.input_items.list(response_id)
    texts = [item.content[0].text for item in page.data if item.type == "message"]
    assert texts == [f"turn {n}" for n in reversed(range(5))]
    assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id and not page.has_more
    first_two = await client.responses.input_items.list(response_id, order="asc", limit=2)
    assert [i.content[0].text for i in first_two.data if i.type == "message"] == ["turn 0", "turn 1"]
    assert first_two.has_more
    rest = await client.responses.input_items.list(response_id, order="asc", after=first_two.last_id)
    assert [i.content[0].text for i in rest.data if i.type == "message"] == ["turn 2", "turn 3", "turn 4"]


async def test_delete_then_404_in_openai_shape(client: AsyncOpenAI, store: ResponseStore) -> None:
    response_id = await stored(store, "short-lived")
    await client.responses.delete(response_id)
    with pytest.raises(openai.NotFoundError) as caught:
        await client.responses.retrieve(response_id)
    assert caught.value.body == {
        "message": f"Response with id '{response_id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        await client.responses.delete(response_id)
    with pytest.raises(openai.NotFoundError):
        await client.responses.input_items.list(response_id)


async def test_bad_paging_is_a_400(client: AsyncOpenAI, store: ResponseStore) -> None:
    response_id = await stored(store, "x")
    with pytest.raises(openai.BadRequestError):
        await client.responses.input_items.list(response_id, limit=0)
    with pytest.raises(openai.BadRequestError):
        await client.responses.input_items.list(response_id, extra_query={"order": "sideways"})


async def test_a_response_not_held_goes_to_on_miss() -> None:
    async def provider_side(request: Request) -> Response:
        return Response(
            200, b'{"id": "%s", "object": "response", "from": "provider"}' % request.match_info["id"].encode()
        )

    server = await serve(StoredResponses(MemoryResponseStore(ttl=60), on_miss=provider_side))
    try:
        async with AsyncOpenAI(
            base_url=f"http://127.0.0.1:{server.port}/v1", api_key="k", max_retries=0
        ) as c:
            raw = await c.responses.with_raw_response.retrieve("resp_upstream")
            assert raw.parse().id == "resp_upstream"
            assert raw.http_response.json()["from"] == "provider"
    finally:
        await server.stop(1)


async def test_redis_down_is_a_503(redis_server: RedisProcess) -> None:
    redis = RedisClient.from_url(redis_server.url)
    server = await serve(StoredResponses(RedisResponseStore(redis, ttl=60)))
    redis_server.stop()
    try:
        async with AsyncOpenAI(
            base_url=f"http://127.0.0.1:{server.port}/v1", api_key="k", max_retries=0
        ) as c:
            with pytest.raises(openai.InternalServerError) as caught:
                await c.responses.retrieve("resp_x")
            assert caught.value.status_code == 503
    finally:
        redis_server.start()
        await server.stop(1)
        await redis.close()
