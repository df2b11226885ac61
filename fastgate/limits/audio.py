"""What an audio request used, for its limits and cost: speech by the characters of its input,
transcriptions and translations by what their answer's ``usage`` says (OpenAI API reference,
"Create transcription": ``{"type": "duration", "seconds": ...}`` for whisper-1, ``{"type":
"tokens", "input_tokens": ..., "output_tokens": ...}`` for the gpt-4o transcribe models; a
``verbose_json`` answer's ``duration`` too). Answers with no usage (``text``, ``srt``, ``vtt``)
are counted as requests only.
"""

from __future__ import annotations

import msgspec

from fastgate.schema.openai import Usage


class _SpeechInput(msgspec.Struct):
    input: str = ""


class _AudioUsage(msgspec.Struct):
    type: str = ""
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0


class _Transcript(msgspec.Struct):
    usage: _AudioUsage | None = None
    duration: float = 0.0


_speech = msgspec.json.Decoder(_SpeechInput).decode
_transcript = msgspec.json.Decoder(_Transcript).decode


def speech_characters(body: bytes) -> int:
    try:
        return len(_speech(body).input)
    except msgspec.DecodeError:
        return 0


def transcript_usage(answer: bytes) -> tuple[float, Usage | None]:
    """Seconds of audio and tokens an answer reports (0 and None where it says nothing)."""
    try:
        found = _transcript(answer)
    except msgspec.DecodeError:
        return 0.0, None
    usage = found.usage
    if usage is None:
        return found.duration, None
    if usage.type == "tokens":
        tokens = usage.input_tokens + usage.output_tokens
        return 0.0, Usage(
            prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens, total_tokens=tokens
        )
    return usage.seconds, None
