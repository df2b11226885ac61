"""Audio under a gateway key's limits: priced per character of speech and per second of
transcribed audio from the server config's price table; files and batches under a key limited
to some models (they name none)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from fastgate.mock import audio
from tests.conftest import Gateway, Upstream
from tests.multimodal.conftest import headers_for, sdk_client

ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
async def priced(make_gateway: Any, tmp_path: Path) -> Gateway:
    config = tmp_path / "server.toml"
    config.write_text("[prices.tts-1]\nper_character = 0.01\n\n[prices.whisper-1]\nper_second = 0.5\n")
    return await make_gateway(data_dir=str(tmp_path), admin_token="admin-secret", config_path=str(config))


async def _key(gateway: Gateway, **spec: Any) -> str:
    resp = await gateway.post("/admin/keys", spec, headers=ADMIN)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["key"])


def _client(gateway: Gateway, upstream: Upstream, key: str) -> AsyncOpenAI:
    return sdk_client(gateway, {**headers_for("openai", upstream.url), "x-portkey-api-key": key})


async def test_speech_is_priced_per_character_and_transcription_per_second(
    priced: Gateway, upstream: Upstream
) -> None:
    key = await _key(priced, name="audio", limits={"budget_cost": 100})
    async with _client(priced, upstream, key) as client:
        speech = await client.audio.speech.create(model="tts-1", voice="alloy", input="twelve chars")
        assert speech.read()
        await priced.app.shared.guard.drain()
        clip = audio.wav(2.0, rate=16000)
        result = await client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", clip))
        assert result.usage is not None and result.usage.seconds == 2.0  # type: ignore[union-attr]
    await priced.app.shared.guard.drain()
    resp = await priced.get("/admin/keys", ADMIN)
    keys = await resp.json()
    [record] = [k for k in (keys if isinstance(keys, list) else keys["data"]) if k["name"] == "audio"]
    usage = await (await priced.get(f"/admin/keys/{record['id']}/usage", ADMIN)).json()
    assert usage["cost"] == pytest.approx(12 * 0.01 + 2.0 * 0.5)


async def test_a_spent_budget_refuses_the_next_speech(priced: Gateway, upstream: Upstream) -> None:
    key = await _key(priced, limits={"budget_cost": 0.05})
    async with _client(priced, upstream, key) as client:
        (await client.audio.speech.create(model="tts-1", voice="alloy", input="more than five")).read()
        await priced.app.shared.guard.drain()
        with pytest.raises(openai.RateLimitError, match="cost budget"):
            await client.audio.speech.create(model="tts-1", voice="alloy", input="again")


async def test_a_key_limited_to_models_may_use_files_but_not_other_models(
    priced: Gateway, upstream: Upstream
) -> None:
    key = await _key(priced, allowed_models=["whisper-1"])
    async with _client(priced, upstream, key) as client:
        created = await client.files.create(file=("a.txt", io.BytesIO(b"hello")), purpose="user_data")
        assert created.bytes == 5
        result = await client.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio.wav(0.5)))
        assert result.text
        with pytest.raises(openai.PermissionDeniedError):
            await client.audio.transcriptions.create(
                model="gpt-4o-transcribe", file=("a.wav", audio.wav(0.5))
            )
