"""Audio in chat: ``input_audio`` parts mapped to Gemini's inline data (Gemini API and Vertex), and
audio output (``modalities: ["text", "audio"]``) passed through to OpenAI-shaped upstreams with
the answer's ``message.audio`` relayed, whole and streamed."""

from __future__ import annotations

import base64
import io
import wave
from typing import Any

import pytest
from openai import AsyncOpenAI, BadRequestError

from fastgate.mock.media import PCM16, WAV
from tests.conftest import Gateway, Upstream
from tests.providers.gemini_support import GOOGLE_KEY, client, google_headers, sent
from tests.providers.test_images_mapped import vertex

AUDIO = base64.b64encode(WAV).decode()


def heard(fmt: str, data: str = AUDIO) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is said here?"},
                {"type": "input_audio", "input_audio": {"data": data, "format": fmt}},
            ],
        }
    ]


@pytest.mark.parametrize(
    ("fmt", "mime"),
    [("wav", "audio/wav"), ("mp3", "audio/mp3"), ("flac", "audio/flac"), ("OGG", "audio/ogg")],
)
async def test_input_audio_to_gemini(gateway: Gateway, upstream: Upstream, fmt: str, mime: str) -> None:
    async with client(gateway, google_headers(upstream)) as c:
        answer = await c.chat.completions.create(model="gemini-2.5-flash", messages=heard(fmt))  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "Mock reply to: What is said here?"
    parts = sent(upstream)["contents"][0]["parts"]
    assert parts == [{"text": "What is said here?"}, {"inlineData": {"mimeType": mime, "data": AUDIO}}]


async def test_input_audio_to_vertex_and_a_data_url(gateway: Gateway, upstream: Upstream) -> None:
    async with client(gateway, vertex(upstream), key="ya29.token") as c:
        await c.chat.completions.create(
            model="gemini-2.5-flash",
            messages=heard("wav", "data:audio/aac;base64," + AUDIO),  # type: ignore[arg-type]
        )
    [received] = upstream.requests
    assert received["path"].endswith("/publishers/google/models/gemini-2.5-flash:generateContent")
    assert sent(upstream)["contents"][0]["parts"][1] == {
        "inlineData": {"mimeType": "audio/aac", "data": AUDIO}
    }


async def test_an_audio_format_gemini_cannot_read_is_a_400(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post(
        "/v1/chat/completions",
        {"model": "gemini-2.5-flash", "messages": heard("m4a")},
        {**google_headers(upstream), "Authorization": f"Bearer {GOOGLE_KEY}"},
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["param"] == "messages" and "input_audio format 'm4a'" in error["message"]
    assert upstream.requests == []


def spoken(gateway: Gateway, upstream: Upstream) -> AsyncOpenAI:
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream.url}
    return client(gateway, headers, key="sk-audio")


async def speak(c: AsyncOpenAI, fmt: str, messages: list[dict[str, Any]], **extra: Any) -> Any:
    """A chat request asking for text and audio in ``fmt``."""
    return await c.chat.completions.create(  # type: ignore[call-overload]
        model="gpt-audio",
        modalities=["text", "audio"],
        audio={"voice": "alloy", "format": fmt},
        messages=messages,
        **extra,
    )


async def test_audio_output_is_relayed(gateway: Gateway, upstream: Upstream) -> None:
    async with spoken(gateway, upstream) as c:
        answer = await speak(c, "wav", heard("wav"))
    message = answer.choices[0].message
    assert message.content is None and message.audio is not None
    assert message.audio.transcript == "Mock reply to: What is said here?"
    with wave.open(io.BytesIO(base64.b64decode(message.audio.data))) as played:
        assert played.getframerate() == 24_000 and played.getnframes() > 0
    assert answer.usage is not None and answer.usage.completion_tokens_details is not None
    assert answer.usage.completion_tokens_details.audio_tokens == 10
    assert (
        answer.usage.prompt_tokens_details is not None
        and answer.usage.prompt_tokens_details.audio_tokens == 10
    )


async def test_audio_output_streamed(gateway: Gateway, upstream: Upstream) -> None:
    async with spoken(gateway, upstream) as c:
        stream = await speak(c, "pcm16", [{"role": "user", "content": "say hi"}], stream=True)
        transcript, data, ids = "", "", set()
        async for chunk in stream:
            audio = chunk.choices[0].delta.audio if chunk.choices else None
            if audio is not None:
                transcript += audio.transcript or ""
                data += audio.data or ""
                ids.add(audio.id)
    assert transcript == "Mock reply to: say hi"
    assert base64.b64decode(data) == PCM16
    assert len(ids - {None}) == 1


async def test_audio_output_needs_the_audio_parameter(gateway: Gateway, upstream: Upstream) -> None:
    async with spoken(gateway, upstream) as c:
        with pytest.raises(BadRequestError) as caught:
            await c.chat.completions.create(
                model="gpt-audio", modalities=["text", "audio"], messages=[{"role": "user", "content": "hi"}]
            )
    assert caught.value.param == "audio"
