"""Locust load test for your own fastgate deployment: chat completions, plain and streamed.

    FASTGATE_LOAD_PROVIDER=openai FASTGATE_LOAD_API_KEY=sk-... \\
        locust -f bench/locustfile.py --host http://127.0.0.1:8787

Environment (all optional):
    FASTGATE_LOAD_PROVIDER     x-portkey-provider (default: openai)
    FASTGATE_LOAD_CUSTOM_HOST  x-portkey-custom-host, e.g. http://127.0.0.1:8788/v1 for `fastgate mock`
    FASTGATE_LOAD_API_KEY      sent as ``Authorization: Bearer ...`` (never printed)
    FASTGATE_LOAD_CONFIG       x-portkey-config (a config id or JSON), instead of the provider headers
    FASTGATE_LOAD_MODEL        model name (default: gpt-4o-mini)
    FASTGATE_LOAD_PROMPT       user message; ``[mock chunks=20]`` in it scripts `fastgate mock`

Streams report two extra entries: "first chunk" (time to the first SSE event) and "whole stream".
This file is run by locust only; it needs ``pip install locust``.
"""

from __future__ import annotations

import json
import os
import time

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
