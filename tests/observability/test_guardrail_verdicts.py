"""Guardrail verdicts in the metrics: each hooks run of a request through a real gateway counted
by its event and verdict (``fastgate_guardrail_verdicts_total``), a stream's output verdict too."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Gateway, Upstream
from tests.guardrails.conftest import guarded, openai_client, refused
from tests.observability.test_gateway_observability import sample, scrape

VERDICTS = "fastgate_guardrail_verdicts_total"
CARD = r"\b(?:\d[ -]?){13,16}\b"
NO_CARDS = {"deny": True, "default.regexMatch": {"rule": CARD, "not": True}}
#: Fails on the mock's answer ("Mock reply to: ..." has more than three words).
SHORT = {"default.wordCount": {"minWords": 1, "maxWords": 3}}
MOCKED = {"default.contains": {"words": ["Mock"], "operator": "any"}}


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def counts(metrics: str) -> dict[tuple[str, str], float]:
    return {
        (event, verdict): sample(metrics, VERDICTS, event=event, verdict=verdict)
        for event in ("before_request", "after_request")
        for verdict in ("passed", "failed", "denied")
    }


async def test_each_hooks_run_is_counted_by_event_and_verdict(gateway: Gateway, upstream: Upstream) -> None:
    assert set(counts(await scrape(gateway)).values()) == {0}

    await refused(gateway, guarded(upstream, input_guardrails=[NO_CARDS]), chat("card 4111 1111 1111 1111"))
    passing = guarded(upstream, input_guardrails=[NO_CARDS], output_guardrails=[MOCKED])
    async with openai_client(gateway, passing) as client:
        await client.chat.completions.create(**chat("hello"))
    failing = guarded(upstream, output_guardrails=[SHORT])
    async with openai_client(gateway, failing) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat("hello"))
    assert raw.status_code == 246
    denying = guarded(upstream, output_guardrails=[{"deny": True, **SHORT}])
    await refused(gateway, denying, chat("hello"))
    resp = await gateway.post(
        "/v1/chat/completions", chat("hello", stream=True), {"x-portkey-config": json.dumps(failing)}
    )
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    await resp.read()  # the stream's verdict is given as it ends

    assert counts(await scrape(gateway)) == {
        ("before_request", "passed"): 1,
        ("before_request", "failed"): 0,
        ("before_request", "denied"): 1,
        ("after_request", "passed"): 1,
        ("after_request", "failed"): 2,
        ("after_request", "denied"): 1,
    }


async def test_a_request_without_hooks_counts_no_verdict(gateway: Gateway, upstream: Upstream) -> None:
    async with openai_client(gateway, guarded(upstream)) as client:
        await client.chat.completions.create(**chat("hello"))
    assert set(counts(await scrape(gateway)).values()) == {0}
