"""Keys, limits and budgets on every route that reports usage (issue 21 item 6).

``/v1/messages`` is charged the tokens its answers report, native (Anthropic's ``usage`` in a
Message, or ``message_start`` then ``message_delta``) or translated (the chat answer's usage), JSON
or streamed; so is the ``/v1/*`` passthrough, in whichever API's shape the upstream reports
(OpenAI Responses, its ``response.completed`` event, audio transcriptions). A route that
reports none is counted as a request and charged nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import msgspec
import openai
import pytest
from aiohttp.test_utils import TestServer
from openai.types.audio import Transcription
from openai.types.responses import Response

from tests.conftest import Gateway, Upstream
from tests.limits.test_limits_gateway import ADMIN, add, settle
from tests.support.messages import anthropic_client
from tests.support.payloads import recorded, recorded_json
from tests.support.replay import Replay, start_replay
from tests.support.sse import named_events

REQUEST: dict[str, Any] = {
    "model": "claude-mock-1",
    "max_tokens": 100,
    "system": [
        {"type": "text", "text": "You answer briefly and politely.", "cache_control": {"type": "ephemeral"}}
    ],
    "messages": [{"role": "user", "content": "how many tokens is this"}],
}
#: A native target, a translated one, and the built-in mock.
TARGETS = {
    "anthropic": lambda up: {"x-portkey-provider": "anthropic", "x-portkey-custom-host": up.url},
    "openai": lambda up: {"x-portkey-provider": "openai", "x-portkey-custom-host": up.url},
    "mock": lambda up: {"x-portkey-provider": "mock"},
}


@pytest.fixture
async def gateway(make_gateway: Any, tmp_path: Path) -> Gateway:
    return await make_gateway(data_dir=str(tmp_path), admin_token="admin-secret")


@pytest.fixture
async def replay(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Replay:
    return await start_replay(aiohttp_server)


async def spent(gateway: Gateway, key: dict[str, Any]) -> int:
    await settle(gateway)
    usage = await (await gateway.get(f"/admin/keys/{key['id']}/usage", ADMIN)).json()
    return int(usage["tokens"])


def total(usage: anthropic.types.Usage) -> int:
    """Every token a Message's usage reports: input apart from the cache's, the cache's, output."""
    cached = (usage.cache_creation_input_tokens or 0) + (usage.cache_read_input_tokens or 0)
    return usage.input_tokens + cached + usage.output_tokens


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("target", list(TARGETS))
async def test_messages_traffic_is_charged_and_reaches_a_tpm_limit(
    gateway: Gateway, upstream: Upstream, target: str, stream: bool
) -> None:
    key = await add(gateway, "/admin/keys", limits={"tpm": 60})
    headers = {**TARGETS[target](upstream), "x-portkey-api-key": key["key"]}
    charged = 0
    async with anthropic_client(gateway.url, headers, "sk-ant-test") as client:
        for _ in range(10):  # bounded: each answer is charged well over 6 tokens
            try:
                if stream:
                    async with client.messages.stream(**REQUEST) as events:
                        message = await events.get_final_message()
                else:
                    message = await client.messages.create(**REQUEST)
            except anthropic.RateLimitError as exc:
                assert isinstance(exc.body, dict) and exc.body["type"] == "error"
                assert exc.body["error"]["type"] == "rate_limit_error"
                assert "tokens per minute" in exc.body["error"]["message"]
                break
            assert total(message.usage) > 6
            charged += total(message.usage)
            # Charged what the answer reported, no more and no less.
            assert await spent(gateway, key) == charged
        else:
            pytest.fail("the tpm limit was never reached")
    assert charged >= 60


async def test_a_virtual_keys_token_budget_holds_on_native_messages(
    gateway: Gateway, upstream: Upstream
) -> None:
    limits = {"budget_tokens": 5}
    vk = await add(
        gateway,
        "/admin/virtual-keys",
        provider="anthropic",
        secret="sk-ant-s",
        custom_host=upstream.url,
        limits=limits,
    )
    headers = {"x-portkey-virtual-key": vk["slug"]}
    async with anthropic_client(gateway.url, headers, "sk-ant-dummy") as client:
        async with client.messages.stream(**REQUEST) as events:
            message = await events.get_final_message()
        await settle(gateway)
        usage = await (await gateway.get(f"/admin/virtual-keys/{vk['slug']}/usage", ADMIN)).json()
        assert usage["tokens"] == total(message.usage)
        with pytest.raises(anthropic.RateLimitError) as caught:
            await client.messages.create(**REQUEST)
    assert isinstance(caught.value.body, dict) and "budget" in caught.value.body["error"]["message"]
    assert len(upstream.requests) == 1


# ---- the /v1/* passthrough ----------------------------------------------------------------------


def test_the_recorded_answers_are_what_the_openai_sdk_reads() -> None:
    Response.model_validate(recorded_json("openai", "responses_text.json"))
    Transcription.model_validate(recorded_json("openai", "audio_transcription.json"))
    events = named_events(recorded("openai", "responses_stream.sse"))
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert events[-1][0] == "response.completed"
    Response.model_validate(events[-1][1]["response"])


@pytest.mark.parametrize(
    ("name", "path", "tokens"),
    [
        ("responses_text.json", "/v1/responses", 36 + 87),
        ("responses_stream.sse", "/v1/responses", 37 + 11),
        ("audio_transcription.json", "/v1/audio/transcriptions", 14 + 45),
    ],
)
async def test_passthrough_usage_in_any_apis_shape_is_charged(
    gateway: Gateway, replay: Replay, name: str, path: str, tokens: int
) -> None:
    replay.serve(recorded("openai", name))
    key = await add(gateway, "/admin/keys", limits={"tpm": tokens})
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": replay.url + "/v1",
        "x-portkey-api-key": key["key"],
    }
    resp = await gateway.post(
        path, {"model": "gpt-4.1", "input": "hi"}, {**headers, "Authorization": "Bearer sk-o"}
    )
    assert resp.status == 200
    assert await resp.read() == recorded("openai", name)  # relayed untouched
    assert await spent(gateway, key) == tokens
    # The next request would go past the limit: refused before it reaches the upstream.
    over = await gateway.post(path, {"model": "gpt-4.1", "input": "hi"}, headers)
    assert over.status == 429
    assert len(replay.received) == 1


async def test_the_openai_sdks_responses_and_transcriptions_are_charged(
    gateway: Gateway, replay: Replay
) -> None:
    key = await add(gateway, "/admin/keys", limits={"budget_tokens": 1000})
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": replay.url + "/v1",
        "x-portkey-api-key": key["key"],
    }
    async with openai.AsyncOpenAI(
        base_url=gateway.url + "/v1", api_key="sk-o", default_headers=headers, max_retries=0
    ) as client:
        replay.serve(recorded("openai", "responses_stream.sse"))
        stream = await client.responses.create(model="gpt-4.1", input="hi", stream=True)
        kinds = [event.type async for event in stream]
        assert kinds[-1] == "response.completed"
        replay.serve(recorded("openai", "audio_transcription.json"))
        transcript = await client.audio.transcriptions.create(
            model="gpt-4o-transcribe", file=("a.wav", b"RIFF0000WAVE")
        )
        assert transcript.usage is not None
    assert await spent(gateway, key) == (37 + 11) + (14 + 45)
    assert replay.received[-1]["path"] == "/v1/audio/transcriptions"
    assert replay.received[-1]["headers"]["Content-Type"].startswith("multipart/form-data")


async def test_a_route_that_reports_no_usage_is_counted_as_a_request_only(
    gateway: Gateway, replay: Replay
) -> None:
    """Speech answers with audio, no usage: each call counts against ``rpm``, no token is
    charged (README, "Keys and limits": where tokens are not counted)."""
    replay.serve(b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00", content_type="audio/mpeg")
    key = await add(gateway, "/admin/keys", limits={"rpm": 2, "tpm": 1000})
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": replay.url + "/v1",
        "x-portkey-api-key": key["key"],
    }
    body = msgspec.json.encode({"model": "gpt-4o-mini-tts", "input": "hello", "voice": "alloy"})
    statuses = []
    for _ in range(3):
        resp = await gateway.post("/v1/audio/speech", headers=headers, data=body)
        statuses.append(resp.status)
        await resp.read()
    assert statuses == [200, 200, 429]
    assert await spent(gateway, key) == 0
