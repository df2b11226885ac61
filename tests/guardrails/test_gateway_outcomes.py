"""Guardrails through a running gateway, as an SDK user meets them: 446 and no upstream call, 446
after the answer, 246 with the answer, ``hook_results`` on every JSON answer, checks that err
failing open, transformations reaching the upstream and the client (reference §7)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.conftest import Gateway, Upstream
from tests.guardrails.conftest import guarded, hook_results, openai_client, refused
from tests.support.sdk import portkey

CARD = r"\b(?:\d[ -]?){13,16}\b"
#: An input guardrail that denies a request carrying a card number.
NO_CARDS = {"deny": True, "default.regexMatch": {"rule": CARD, "not": True}}
#: An output guardrail (without deny) that wants a short answer.
SHORT = {"default.wordCount": {"minWords": 1, "maxWords": 3}}


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


async def test_a_failing_deny_input_guardrail_is_a_446_and_the_upstream_is_not_called(
    gateway: Gateway, upstream: Upstream
) -> None:
    body = await refused(
        gateway, guarded(upstream, input_guardrails=[NO_CARDS]), chat("my card is 4111 1111 1111 1111")
    )
    assert body["error"]["type"] == "hooks_failed"
    assert "guardrail checks defined in the config failed" in body["error"]["message"]
    before, after = hook_results(body)
    assert after == []
    assert [(h["verdict"], h["deny"], h["type"]) for h in before] == [(False, True, "guardrail")]
    check = before[0]["checks"][0]
    assert check["id"] == "default.regexMatch" and check["verdict"] is False
    assert check["data"]["matchDetails"]["matchedText"].startswith("4111")
    assert upstream.requests == []


async def test_passing_hooks_answer_with_hook_results_in_portkeys_shape(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(
        upstream,
        input_guardrails=[NO_CARDS],
        output_guardrails=[{"default.contains": {"words": ["Mock"], "operator": "any"}}],
    )
    async with openai_client(gateway, config) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat("hello"))
    assert raw.status_code == 200
    completion = raw.parse()
    assert completion.choices[0].message.content == "Mock reply to: hello"
    before, after = hook_results(json.loads(raw.content))
    for result in (*before, *after):
        assert set(result) == {
            "verdict", "id", "transformed", "checks", "feedback", "execution_time", "async", "type",
            "created_at", "deny",
        }  # fmt: skip
        assert result["verdict"] is True and result["async"] is False and result["deny"] is False
        assert result["id"].startswith(("input_guardrail_", "output_guardrail_"))
        for check in result["checks"]:
            assert {"id", "verdict", "data", "execution_time", "created_at", "transformed", "log"} <= set(
                check
            )
            assert check["created_at"].endswith("Z") and "error" not in check
    assert [c["id"] for c in after[0]["checks"]] == ["default.contains"]
    assert len(upstream.requests) == 1


async def test_a_failing_hook_without_deny_is_a_246_with_the_answer(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(upstream, input_guardrails=[{"default.wordCount": {"minWords": 10}}])
    async with openai_client(gateway, config) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat("too short"))
    assert raw.status_code == 246
    assert raw.parse().choices[0].message.content == "Mock reply to: too short"
    before, _ = hook_results(json.loads(raw.content))
    assert before[0]["verdict"] is False and before[0]["deny"] is False
    assert len(upstream.requests) == 1


async def test_a_failing_deny_output_guardrail_is_a_446_after_the_upstream_answered(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(upstream, output_guardrails=[{"deny": True, **SHORT}])
    body = await refused(gateway, config, chat("tell me a long story please"))
    assert "choices" not in body  # the answer is dropped
    before, after = hook_results(body)
    assert before == [] and after[0]["verdict"] is False and after[0]["deny"] is True
    assert after[0]["checks"][0]["data"]["wordCount"] == 9
    assert len(upstream.requests) == 1


async def test_a_failing_output_guardrail_without_deny_is_a_246(gateway: Gateway, upstream: Upstream) -> None:
    config = guarded(upstream, output_guardrails=[SHORT])
    async with openai_client(gateway, config) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat("tell me a long story please"))
    assert raw.status_code == 246
    assert raw.parse().choices[0].message.content == "Mock reply to: tell me a long story please"
    _, after = hook_results(json.loads(raw.content))
    assert after[0]["verdict"] is False


async def test_an_upstream_error_keeps_its_status_and_gets_the_results(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(upstream, input_guardrails=[NO_CARDS], output_guardrails=[SHORT])
    body = await refused(gateway, config, chat("hello", extra_body={"mock": {"status": 429}}), status=429)
    before, after = hook_results(body)
    assert before[0]["verdict"] is True
    assert after == []  # Portkey judges only a 200's answer


async def test_through_the_portkey_sdk(gateway: Gateway, upstream: Upstream) -> None:
    config = guarded(upstream, input_guardrails=[NO_CARDS], output_guardrails=[SHORT])
    async with portkey(base_url=gateway.url + "/v1", api_key="pk-unused", config=config) as client:
        with pytest.raises(Exception) as info:
            await client.chat.completions.create(**chat("card 4111-1111-1111-1111"))
        assert getattr(info.value, "status_code", None) == 446
        completion = await client.chat.completions.create(**chat("a reply of many words"))
    # The SDK hands a 246 over as the answer it is, ``hook_results`` among its fields.
    assert completion.choices[0].message.content == "Mock reply to: a reply of many words"
    before, after = hook_results(completion.model_dump())
    assert before[0]["verdict"] is True and after[0]["verdict"] is False
    assert len(upstream.requests) == 1


@pytest.mark.parametrize(
    ("parameters", "status"),
    [
        ({}, 200),  # no text to read: the check errs, and fails open
        ({"failOnError": True}, 446),
    ],
)
async def test_a_check_that_errs_fails_open_unless_fail_on_error(
    gateway: Gateway, upstream: Upstream, parameters: dict[str, Any], status: int
) -> None:
    check = {"deny": True, "default.wordCount": {"minWords": 1, **parameters}}
    config = guarded(upstream, input_guardrails=[check])
    body = chat(
        "", messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]
    )
    resp = await gateway.post("/v1/chat/completions", body, {"x-portkey-config": json.dumps(config)})
    assert resp.status == status
    before, _ = hook_results(await resp.json())
    check_result = before[0]["checks"][0]
    assert check_result["error"]["message"] == "Missing text to analyze"
    assert check_result["fail_on_error"] is bool(parameters)
    assert len(upstream.requests) == (1 if status == 200 else 0)


async def test_transformations_reach_the_upstream_and_the_client(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(
        upstream,
        input_mutators=[{"default.regexReplace": {"rule": r"[\w.]+@[\w.]+", "redactText": "[EMAIL]"}}],
        before_request_hooks=[
            {
                "id": "prefix",
                "type": "mutator",
                "checks": [{"id": "default.addPrefix", "parameters": {"prefix": "Be brief. "}}],
            }
        ],
        output_mutators=[{"default.regexReplace": {"rule": "Mock", "redactText": "Fake"}}],
    )
    async with openai_client(gateway, config) as client:
        raw = await client.chat.completions.with_raw_response.create(
            **chat("write to ann@example.com", temperature=0.5, seed=7)
        )
    sent = upstream.bodies()[0]
    # Both the hook given in full and the shorthand ran: the shorthand's first, being the first listed.
    assert sent["messages"][-1]["content"] == "Be brief. write to [EMAIL]"
    assert sent["temperature"] == 0.5 and sent["seed"] == 7  # the rest of the request as it came
    completion = raw.parse()
    assert completion.choices[0].message.content == "Fake reply to: Be brief. write to [EMAIL]"
    before, after = hook_results(json.loads(raw.content))
    assert all(h["transformed"] for h in before) and after[0]["transformed"] is True


async def test_completions_and_embeddings(gateway: Gateway, upstream: Upstream) -> None:
    config = guarded(upstream, input_guardrails=[NO_CARDS], output_guardrails=[{"deny": True, **SHORT}])
    async with openai_client(gateway, config) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="card 4111111111111111")
        assert info.value.status_code == 446
        with pytest.raises(openai.APIStatusError) as info:
            await client.embeddings.create(model="text-embedding-3-small", input="card 4111111111111111")
        assert info.value.status_code == 446
        assert upstream.requests == []
        # Embeddings run before-request guardrails only: the output guardrail is not applied.
        raw = await client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="ok")
        assert raw.status_code == 200
        before, after = hook_results(json.loads(raw.content))
        assert before[0]["verdict"] is True and after == []
        assert len(raw.parse().data[0].embedding) > 0


async def test_image_generations_run_before_request_guardrails_only(
    gateway: Gateway, upstream: Upstream
) -> None:
    config = guarded(upstream, input_guardrails=[NO_CARDS], output_guardrails=[{"deny": True, **SHORT}])
    async with openai_client(gateway, config) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.images.generate(model="gpt-image-1", prompt="a card 4111 1111 1111 1111")
        assert info.value.status_code == 446 and upstream.requests == []
        raw = await client.images.with_raw_response.generate(model="gpt-image-1", prompt="a red fox")
    assert raw.status_code == 200 and raw.parse().data
    before, after = hook_results(json.loads(raw.content))
    assert before[0]["verdict"] is True and before[0]["checks"][0]["data"]["textExcerpt"] == "a red fox"
    assert after == []


async def test_request_type_and_metadata_checks(gateway: Gateway, upstream: Upstream) -> None:
    config = guarded(
        upstream,
        input_guardrails=[
            {"deny": True, "default.allowedRequestTypes": {"blockedTypes": ["complete"]}},
            {"deny": True, "default.requiredMetadataKeys": {"metadataKeys": ["team"]}},
        ],
    )
    async with portkey(
        base_url=gateway.url + "/v1", api_key="pk-unused", config=config, metadata={"team": "search"}
    ) as client:
        completion = await client.chat.completions.create(**chat("hi"))
        assert completion.choices[0].message.content == "Mock reply to: hi"
        with pytest.raises(Exception) as info:
            await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
        assert getattr(info.value, "status_code", None) == 446
    async with portkey(base_url=gateway.url + "/v1", api_key="pk-unused", config=config) as client:
        with pytest.raises(Exception) as info:
            await client.chat.completions.create(**chat("hi"))
        assert getattr(info.value, "status_code", None) == 446
    assert len(upstream.requests) == 1


async def test_default_guardrail_headers_apply_to_any_route(gateway: Gateway, upstream: Upstream) -> None:
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream.url,
        "x-portkey-default-input-guardrails": json.dumps([NO_CARDS]),
        "x-portkey-default-output-guardrails": json.dumps([SHORT]),
    }
    async with openai_client(gateway, **headers) as client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(**chat("4111 1111 1111 1111"))
        assert info.value.status_code == 446
        assert upstream.requests == []
        raw = await client.chat.completions.with_raw_response.create(**chat("many words in this one"))
    assert raw.status_code == 246
    before, after = hook_results(json.loads(raw.content))
    assert before[0]["verdict"] is True and after[0]["verdict"] is False
    # A config's own guardrails come first, the headers' after them.
    config = guarded(upstream, input_guardrails=[{"id": "own", "default.wordCount": {"minWords": 1}}])
    del headers["x-portkey-provider"], headers["x-portkey-custom-host"]
    async with openai_client(gateway, config, **headers) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat("hi"))
    before, _ = hook_results(json.loads(raw.content))
    assert before[0]["id"] == "own" and len(before) == 2


async def test_a_bad_default_guardrail_header_is_a_400_naming_it(
    gateway: Gateway, upstream: Upstream
) -> None:
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": upstream.url,
        "x-portkey-default-input-guardrails": json.dumps([{"default.noSuchCheck": {}}]),
    }
    async with openai_client(gateway, **headers) as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(**chat("hi"))
    message = info.value.response.json()["error"]["message"]
    assert "x-portkey-default-input-guardrails[0].checks[0].id" in message
    assert upstream.requests == []


async def test_requests_without_hooks_carry_no_hook_results(gateway: Gateway, upstream: Upstream) -> None:
    async with openai_client(gateway, guarded(upstream)) as client:
        raw = await client.chat.completions.with_raw_response.create(**chat("hi"))
    assert raw.status_code == 200 and "hook_results" not in json.loads(raw.content)
