"""Speech, transcriptions and translations through the ``openai`` SDK: against the mock over HTTP
(``openai``, ``groq`` and ``azure-openai`` at their URLs) and the in-process ``mock``."""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from fastgate.mock import audio
from tests.conftest import Gateway, Upstream
from tests.multimodal.conftest import headers_for, sdk_client

#: A second of 16 kHz mono silence, as a client would record it.
CLIP = audio.wav(1.0, rate=16000)


@pytest.fixture(params=["openai", "groq", "azure-openai", "mock"])
async def client(request: Any, gateway: Gateway, upstream: Upstream) -> AsyncIterator[AsyncOpenAI]:
    headers = headers_for(request.param, upstream.url, "whisper")
    async with sdk_client(gateway, headers) as c:
        yield c


async def test_speech_streams_a_real_wav(client: AsyncOpenAI) -> None:
    async with client.audio.speech.with_streaming_response.create(
        model="gpt-4o-mini-tts", voice="alloy", input="Hello there, gateway.", response_format="wav"
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        pieces = [piece async for piece in response.iter_bytes()]
    data = b"".join(pieces)
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        assert w.getnframes() > 0


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "pcm"])
async def test_speech_in_every_format(client: AsyncOpenAI, fmt: str) -> None:
    response = await client.audio.speech.create(
        model="tts-1",
        voice="alloy",
        input="One two three.",
        response_format=fmt,  # type: ignore[arg-type]
    )
    data = response.read()
    magic = {"mp3": b"\xff\xfb", "opus": b"OggS", "aac": b"\xff\xf1", "flac": b"fLaC"}.get(fmt)
    if magic is None:
        assert len(data) % 2 == 0 and not data.strip(b"\x00")  # 16-bit PCM silence
    else:
        assert data.startswith(magic)


async def test_transcription_json_and_usage(client: AsyncOpenAI) -> None:
    result = await client.audio.transcriptions.create(model="whisper-1", file=("clip.wav", CLIP))
    assert result.text == f"Mock transcript of clip.wav ({len(CLIP)} bytes)."
    assert result.usage is not None and result.usage.type == "duration"
    assert result.usage.seconds == 1.0


@pytest.mark.parametrize("fmt", ["text", "srt", "vtt"])
async def test_transcription_text_formats(client: AsyncOpenAI, fmt: str) -> None:
    result = await client.audio.transcriptions.create(
        model="whisper-1",
        file=("clip.wav", CLIP),
        response_format=fmt,  # type: ignore[call-overload]
    )
    assert isinstance(result, str)
    assert "Mock transcript of clip.wav" in result
    if fmt == "srt":
        assert result.startswith("1\n00:00:00,000 --> 00:00:01,000\n")
    if fmt == "vtt":
        assert result.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.000\n")


async def test_transcription_verbose_json(client: AsyncOpenAI) -> None:
    result = await client.audio.transcriptions.create(
        model="whisper-1", file=("clip.wav", CLIP), response_format="verbose_json"
    )
    assert result.duration == 1.0 and result.segments is not None
    assert result.segments[0].end == 1.0


async def test_transcription_stream_events(client: AsyncOpenAI) -> None:
    stream = await client.audio.transcriptions.create(
        model="gpt-4o-mini-transcribe", file=("clip.wav", CLIP), stream=True
    )
    events = [event async for event in stream]
    assert {e.type for e in events[:-1]} == {"transcript.text.delta"}
    done = events[-1]
    assert done.type == "transcript.text.done"
    assert "".join(e.delta for e in events[:-1]) == done.text  # type: ignore[union-attr]
    assert done.usage is not None and done.usage.input_tokens == 10  # type: ignore[union-attr]


async def test_translation(client: AsyncOpenAI) -> None:
    with pytest.warns(DeprecationWarning):  # the SDK's own word on the translations API
        result = await client.audio.translations.create(model="whisper-1", file=("clip.wav", CLIP))
    assert result.text.startswith("Mock translation of clip.wav")


async def test_bad_speech_request_is_openais_400(client: AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="response_format"):
        await client.audio.speech.create(
            model="tts-1",
            voice="alloy",
            input="x",
            response_format="ogg",  # type: ignore[arg-type]
        )


def test_mock_wav_header_is_read_back() -> None:
    data = audio.wav(0.5, rate=8000)
    assert audio.wav_seconds(data) == 0.5
    assert struct.unpack_from("<I", data, 24)[0] == 8000
