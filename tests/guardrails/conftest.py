"""Helpers for the guardrail tests: contexts of each request type and one check run on them, and
a webhook / log endpoint on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI

from fastgate.guardrails.check import CheckOutcome
from fastgate.guardrails.compile import LeafHooks, compile_check
from fastgate.guardrails.context import AFTER, BEFORE, CHAT, HookContext
from fastgate.guardrails.registry import REGISTRY
from fastgate.routing.config import decode_config
from fastgate.routing.plan import Leaf, compile_plan
from fastgate.ssrf import HostPolicy
from tests.conftest import Gateway, Upstream, config_target

POLICY = HostPolicy((), True)
MakeServer = Callable[[web.Application], Awaitable[TestServer]]


def chat(text: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}], **extra}


def chat_answer(text: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }


def context(
    request: dict[str, Any] | None = None,
    answer: dict[str, Any] | None = None,
    *,
    kind: str = CHAT,
    metadata: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> HookContext:
    ctx = HookContext(
        request if request is not None else chat("hi"), kind, "openai", metadata=metadata, headers=headers
    )
    if answer is not None:
        ctx.set_response(answer, 200)
    return ctx


def run(check_id: str, parameters: dict[str, Any], ctx: HookContext, event: str = BEFORE) -> CheckOutcome:
    """One default check built and run the way the engine does (no network)."""
    check = compile_check(check_id, parameters, "config.checks[0]", REGISTRY)
    return check.run(ctx, event)


def on_text(check_id: str, parameters: dict[str, Any], text: Any, event: str = AFTER) -> CheckOutcome:
    """A check on an answer's text (after) or a request's last message (before)."""
    if event == AFTER:
        return run(check_id, parameters, context(answer=chat_answer(text)), AFTER)
    return run(check_id, parameters, context(chat(text)), BEFORE)


def plan_leaf(config: dict[str, Any]) -> Leaf:
    root = compile_plan(decode_config(msgspec.json.encode(config).decode(), POLICY)).root
    assert isinstance(root, Leaf)
    return root


def leaf_hooks(config: dict[str, Any]) -> LeafHooks:
    hooks = plan_leaf({"provider": "openai", "api_key": "sk-test", **config}).hooks
    assert hooks is not None
    return hooks


class Hook:
    """A webhook / log endpoint that records what it got and answers as told."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.answer: Any = {"verdict": True}
        #: Answers for the next requests, in order, before ``answer`` again.
        self.answers: list[Any] = []
        self.status = 200
        self.delay = 0.0
        #: Set when a request arrived; with a ``hold``, requests wait until it is set.
        self.arrived = asyncio.Event()
        self.hold: asyncio.Event | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        app.router.add_post("/moved", self.moved)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        self.headers.append(dict(request.headers))
        self.arrived.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        answer = self.answers.pop(0) if self.answers else self.answer
        return web.json_response(answer, status=self.status)

    async def moved(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/hook")


@pytest.fixture
async def endpoint(aiohttp_server: MakeServer) -> tuple[Hook, str]:
    hook = Hook()
    server = await aiohttp_server(hook.app())
    return hook, str(server.make_url(""))


def guarded(upstream: Upstream, **hooks: Any) -> dict[str, Any]:
    """A config target reaching the mock as OpenAI, with ``hooks`` (guardrails, mutators...)."""
    return {**config_target(upstream, "sk-guarded"), **hooks}


def openai_client(gateway: Gateway, config: dict[str, Any] | None = None, **headers: str) -> AsyncOpenAI:
    """The ``openai`` SDK with only its base URL changed, sending ``config`` as Portkey's header."""
    if config is not None:
        headers["x-portkey-config"] = json.dumps(config)
    return AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key="sk-client", max_retries=0, default_headers=headers
    )


def hook_results(body: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The before- and after-request results of an answer (or a 446's) body."""
    results = body["hook_results"]
    return results["before_request_hooks"], results["after_request_hooks"]


async def refused(
    gateway: Gateway, config: dict[str, Any], body: dict[str, Any], status: int = 446, **headers: str
) -> dict[str, Any]:
    """A chat request the ``openai`` SDK raises on with ``status``: the error's whole body."""
    async with openai_client(gateway, config, **headers) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(**body)
    assert info.value.status_code == status
    answer: dict[str, Any] = info.value.response.json()
    return answer
