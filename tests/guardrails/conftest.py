"""Helpers for the guardrail tests: contexts of each request type and one check run on them."""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate.guardrails.check import CheckOutcome
from fastgate.guardrails.compile import LeafHooks, compile_check
from fastgate.guardrails.context import AFTER, BEFORE, CHAT, HookContext
from fastgate.guardrails.registry import REGISTRY
from fastgate.routing.config import decode_config
from fastgate.routing.plan import Leaf, compile_plan
from fastgate.ssrf import HostPolicy

POLICY = HostPolicy((), True)


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
