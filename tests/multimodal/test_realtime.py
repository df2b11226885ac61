"""The Realtime API's WebSocket through the gateway, with the ``openai`` SDK's realtime client:
against the mock over a real WebSocket (``openai`` with a custom host, ``azure-openai`` at Azure's
URL) and the in-process ``mock``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from openai import AsyncOpenAI

from tests.conftest import Gateway, Upstream

AZURE = {
    "x-portkey-provider": "azure-openai",
    "x-portkey-azure-resource-name": "unused",
    "x-portkey-azure-deployment-id": "gpt-realtime",
    "x-portkey-azure-api-version": "2025-04-01-preview",
}


def _headers(kind: str, upstream: Upstream) -> dict[str, str]:
    if kind == "openai":
        return {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url}
    if kind == "azure-openai":
        return {**AZURE, "x-portkey-custom-host": upstream.url.removesuffix("/v1") + "/openai"}
    return {"x-portkey-provider": "mock"}


@pytest.fixture(params=["openai", "azure-openai", "mock"])
async def client(request: Any, gateway: Gateway, upstream: Upstream) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key="sk-realtime", max_retries=0,
        default_headers=_headers(request.param, upstream),
    ) as c:
        yield c


async def test_session_text_turn(client: AsyncOpenAI) -> None:
    async with client.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        await conn.session.update(session={"type": "realtime", "instructions": "Be brief."})
        updated = await conn.recv()
        assert updated.type == "session.updated"
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}
        )
        await conn.response.create()
        text, kinds = "", []
        async for event in conn:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
            if event.type == "response.done":
                break
        assert text == "Mock reply to: Hello there"
        assert kinds[:2] == ["conversation.item.added", "conversation.item.done"]
        assert "response.created" in kinds and kinds[-1] == "response.done"
