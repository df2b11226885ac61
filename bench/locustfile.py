"""Locust load test for your own fastgate deployment: chat completions, plain and streamed, and
with ``FASTGATE_LOAD_AUDIO=1`` speech, transcriptions and file uploads beside them.

    FASTGATE_LOAD_PROVIDER=openai FASTGATE_LOAD_API_KEY=sk-... \\
        locust -f bench/locustfile.py --host http://127.0.0.1:8787

Environment (all optional):
    FASTGATE_LOAD_PROVIDER     x-portkey-provider (default: openai)
    FASTGATE_LOAD_CUSTOM_HOST  x-portkey-custom-host, e.g. http://127.0.0.1:8788/v1 for `fastgate mock`
    FASTGATE_LOAD_API_KEY      sent as ``Authorization: Bearer ...`` (never printed)
    FASTGATE_LOAD_CONFIG       x-portkey-config (a config id or JSON), instead of the provider headers
    FASTGATE_LOAD_MODEL        model name (default: gpt-4o-mini)
    FASTGATE_LOAD_PROMPT       user message; ``[mock chunks=20]`` in it scripts `fastgate mock`
    FASTGATE_LOAD_AUDIO        1: also run ``AudioUser`` (speech, transcriptions, files; the
                               ``mock`` provider, or ``fastgate mock`` as a custom host, answers all)

Streams report two extra entries: "first chunk" (time to the first SSE event) and "whole stream".
This file is run by locust only; it needs ``pip install locust``.
"""

from __future__ import annotations

import io
import json
import os
import time
import wave

from locust import HttpUser, constant, task

CHAT = "/v1/chat/completions"
PROMPT = os.environ.get(
    "FASTGATE_LOAD_PROMPT",
    "Summarise in one sentence: " + "the quick brown fox jumps over the lazy dog. " * 16,
)


def gateway_headers() -> dict[str, str]:
    env = os.environ.get
    headers = {"Content-Type": "application/json"}
    if env("FASTGATE_LOAD_CONFIG"):
        headers["x-portkey-config"] = env("FASTGATE_LOAD_CONFIG", "")
    else:
        headers["x-portkey-provider"] = env("FASTGATE_LOAD_PROVIDER", "openai")
    if env("FASTGATE_LOAD_CUSTOM_HOST"):
        headers["x-portkey-custom-host"] = env("FASTGATE_LOAD_CUSTOM_HOST", "")
    if env("FASTGATE_LOAD_API_KEY"):
        headers["Authorization"] = "Bearer " + env("FASTGATE_LOAD_API_KEY", "")
    return headers


def chat_body(stream: bool) -> bytes:
    body = {
        "model": os.environ.get("FASTGATE_LOAD_MODEL", "gpt-4o-mini"),
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 64,
        "stream": stream,
    }
    return json.dumps(body).encode()


HEADERS = gateway_headers()
PLAIN, STREAM = chat_body(stream=False), chat_body(stream=True)


class GatewayUser(HttpUser):
    """Sends requests back to back; set the user count for the concurrency you want."""

    wait_time = constant(0)

    @task(3)
    def chat(self) -> None:
        with self.client.post(CHAT, data=PLAIN, headers=HEADERS, name="chat", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
            elif '"choices"' not in resp.text:
                resp.failure("answer has no choices")

    @task(1)
    def chat_stream(self) -> None:
        start = time.perf_counter()
        with self.client.post(
            CHAT, data=STREAM, headers=HEADERS, name="chat stream", stream=True, catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return
            first: float | None = None
            done = False
            size = 0
            for line in resp.iter_lines():
                size += len(line)
                if first is None and line.startswith(b"data: "):
                    first = time.perf_counter()
                    self._report("first chunk", first - start, 0)
                if line == b"data: [DONE]":
                    done = True
            if not done:
                resp.failure("stream ended without data: [DONE]")
                return
            self._report("whole stream", time.perf_counter() - start, size)

    def _report(self, name: str, seconds: float, size: int) -> None:
        self.environment.events.request.fire(
            request_type="SSE",
            name=name,
            response_time=seconds * 1000,
            response_length=size,
            exception=None,
            context={},
        )


def _clip() -> bytes:
    """Half a second of 16 kHz mono silence, as a client would record it."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(16000))
    return out.getvalue()


SPEECH = json.dumps({"model": "tts-1", "voice": "alloy", "input": PROMPT[:200], "response_format": "wav"})
CLIP = _clip()
FORM_HEADERS = {k: v for k, v in HEADERS.items() if k != "Content-Type"}  # the form sets its own


class AudioUser(HttpUser):
    """Speech (read as it streams), transcriptions and file uploads: run with FASTGATE_LOAD_AUDIO=1."""

    abstract = not os.environ.get("FASTGATE_LOAD_AUDIO")
    wait_time = constant(0)

    @task(2)
    def speech(self) -> None:
        with self.client.post(
            "/v1/audio/speech", data=SPEECH, headers=HEADERS, name="speech", stream=True, catch_response=True
        ) as resp:
            data = b"".join(resp.iter_content(65536))
            if resp.status_code != 200 or not data.startswith(b"RIFF"):
                resp.failure(f"HTTP {resp.status_code}: {data[:200]!r}")

    @task(2)
    def transcription(self) -> None:
        files = {"file": ("clip.wav", CLIP, "audio/wav")}
        with self.client.post(
            "/v1/audio/transcriptions",
            data={"model": "whisper-1"},
            files=files,
            headers=FORM_HEADERS,
            name="transcription",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200 or '"text"' not in resp.text:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")

    @task(1)
    def file_upload(self) -> None:
        files = {"file": ("load.jsonl", b'{"n": 1}\n' * 512, "application/jsonl")}
        with self.client.post(
            "/v1/files",
            data={"purpose": "batch"},
            files=files,
            headers=FORM_HEADERS,
            name="file upload",
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return
            file_id = resp.json()["id"]
        self.client.delete(f"/v1/files/{file_id}", headers=FORM_HEADERS, name="file delete")
