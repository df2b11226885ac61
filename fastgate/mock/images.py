"""OpenAI-format image answers of the mock (the Images API reference, the openai SDK's
``ImagesResponse`` and stream events). Every image is the mock's PNG (``media.py``).

The retired DALL-E models answer ``url`` (a ``data:`` URL, RFC 2397: nothing to host, valid as
long as the answer is kept) or ``b64_json``, DALL-E 3 with a ``revised_prompt``; GPT image models
(and any other name) answer ``b64_json`` with ``usage`` and the settings they used, and stream
``partial_image`` events then a ``completed`` one. A model left out is ``dall-e-2``. Edits and
variations read their multipart form (``forms.py``) and answer alike.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from fastgate.mock.directives import Directives, last_user_text
from fastgate.mock.engine import MockPlan
from fastgate.mock.media import PNG_B64
from fastgate.mock.openai_validation import is_dalle

_encode = msgspec.json.Encoder().encode
DEFAULT_IMAGE_MODEL = "dall-e-2"
#: Output tokens a GPT image model reports per image (its size in tokens, for a mock).
IMAGE_TOKENS = 272


def _image_usage(request: dict[str, Any], count: int, inputs: int = 0) -> dict[str, Any]:
    text = max(1, len(last_user_text(request).split()))
    image_in = inputs * IMAGE_TOKENS
    output = count * IMAGE_TOKENS
    return {
        "input_tokens": text + image_in,
        "input_tokens_details": {"image_tokens": image_in, "text_tokens": text},
        "output_tokens": output,
        "total_tokens": text + image_in + output,
        "output_tokens_details": {"image_tokens": output, "text_tokens": 0},
    }


def _settings(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "background": request.get("background") or "opaque",
        "output_format": "png",  # the mock draws PNGs only, whatever was asked
        "quality": request.get("quality") or "auto",
        "size": request.get("size") or "1024x1024",
    }


def images_answer(
    request: dict[str, Any], d: Directives, *, inputs: int = 0, kind: str = "generation"
) -> MockPlan:
    """A generation, edit or variation: ``inputs`` images came with the request."""
    model = str(request.get("model") or DEFAULT_IMAGE_MODEL)
    count = int(request.get("n") or 1)
    created = int(time.time())
    if not is_dalle(model):
        if request.get("stream"):
            return MockPlan(
                status=200,
                frames=_image_stream(request, kind, inputs),
                content_type="text/event-stream",
                directives=d,
            )
        body = {
            "created": created,
            "data": [{"b64_json": PNG_B64} for _ in range(count)],
            **_settings(request),
            "usage": _image_usage(request, count, inputs),
        }
        return MockPlan(status=200, body=_encode(body), directives=d)
    as_url = request.get("response_format", "url") != "b64_json"
    data = []
    for _ in range(count):
        item = {"url": "data:image/png;base64," + PNG_B64} if as_url else {"b64_json": PNG_B64}
        if model == "dall-e-3":
            item["revised_prompt"] = f"A detailed, high-quality image of {last_user_text(request)}"
        data.append(item)
    return MockPlan(status=200, body=_encode({"created": created, "data": data}), directives=d)


def _image_stream(request: dict[str, Any], kind: str, inputs: int) -> list[bytes]:
    """``image_generation.partial_image`` events (``partial_images`` of them), then ``completed``;
    edits name theirs ``image_edit.*``."""
    prefix = "image_generation" if kind == "generation" else "image_edit"
    base = {"b64_json": PNG_B64, "created_at": int(time.time()), **_settings(request)}
    frames = []
    for index in range(int(request.get("partial_images") or 0)):
        event = {"type": f"{prefix}.partial_image", **base, "partial_image_index": index}
        frames.append(_event(event["type"], event))
    completed = {"type": f"{prefix}.completed", **base, "usage": _image_usage(request, 1, inputs)}
    frames.append(_event(completed["type"], completed))
    return frames


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _encode(data) + b"\n\n"
