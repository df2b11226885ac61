"""The mock's images, sounds, and image / moderation / rerank APIs, asked directly over HTTP: real
files, and each provider's shapes and refusals as its API reference gives them."""

from __future__ import annotations

import io
import struct
import wave
import zlib
from typing import Any

import aiohttp
import msgspec
import pytest

from fastgate.mock.bedrock_format import MOCK_BEDROCK_API_KEY
from fastgate.mock.media import PNG, PNG_SIZE, WAV, WAV_RATE
from tests.conftest import Upstream

BEARER = {"Authorization": "Bearer k"}


def test_the_png_is_a_valid_png() -> None:
    assert PNG[:8] == b"\x89PNG\r\n\x1a\n"
    at, chunks = 8, []
    while at < len(PNG):
        (length,) = struct.unpack(">I", PNG[at : at + 4])
        kind, data = PNG[at + 4 : at + 8], PNG[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", PNG[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + data) == crc
        chunks.append((kind, data))
        at += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    width, height, depth, colour = struct.unpack(">IIBB", chunks[0][1][:10])
    assert (width, height, depth, colour) == (PNG_SIZE, PNG_SIZE, 8, 2)
    rows = zlib.decompress(chunks[1][1])
    assert len(rows) == PNG_SIZE * (1 + 3 * PNG_SIZE) and rows[0] == 0  # filter byte, RGB pixels


def test_the_wav_is_a_valid_wav() -> None:
    with wave.open(io.BytesIO(WAV)) as sound:
        assert (sound.getnchannels(), sound.getsampwidth(), sound.getframerate()) == (1, 2, WAV_RATE)
        assert sound.getnframes() > 0


async def call(upstream: Upstream, path: str, **kwargs: Any) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(str(upstream.server.make_url(path)), **kwargs) as resp,
    ):
        raw = await resp.read()
        is_json = resp.content_type == "application/json"
        return resp.status, msgspec.json.decode(raw) if is_json else raw, resp


def form(**fields: str) -> aiohttp.FormData:
    data = aiohttp.FormData(default_to_multipart=True)  # Stability takes multipart forms only
    for name, value in fields.items():
        data.add_field(name, value)
    return data


async def test_stability_v2beta(upstream: Upstream) -> None:
    # Accept: image/* (the default) answers the image's bytes, with its seed and finish reason.
    status, raw, resp = await call(
        upstream, "/v2beta/stable-image/generate/core", data=form(prompt="a cat"), headers=BEARER
    )
    assert (
        status == 200 and raw == PNG and resp.headers["finish-reason"] == "SUCCESS" and resp.headers["seed"]
    )
    status, answer, _ = await call(
        upstream,
        "/v2beta/stable-image/generate/core",
        data=form(prompt="a cat", seed="5"),
        headers={**BEARER, "Accept": "application/json"},
    )
    assert status == 200 and answer["seed"] == 5 and answer["finish_reason"] == "SUCCESS"
    for fields, words in (
        ({"prompt": ""}, "prompt: cannot be empty"),
        ({"prompt": "x", "aspect_ratio": "7:3"}, "aspect_ratio: must be one of"),
        ({"prompt": "x", "style_preset": "vivid"}, "style_preset: must be one of"),
        ({"prompt": "x", "seed": "-1"}, "seed: must be an integer"),
    ):
        status, error, _ = await call(
            upstream, "/v2beta/stable-image/generate/ultra", data=form(**fields), headers=BEARER
        )
        assert status == 400 and error["name"] == "bad_request" and words in error["errors"][0]
    status, error, _ = await call(
        upstream,
        "/v2beta/stable-image/generate/sd3",
        data=form(prompt="x", output_format="webp"),
        headers=BEARER,
    )
    assert status == 400 and error["errors"] == ["output_format: must be one of png, jpeg"]
    status, error, _ = await call(upstream, "/v2beta/stable-image/generate/core", data=form(prompt="x"))
    assert status == 401 and error["name"] == "unauthorized"
    status, error, _ = await call(
        upstream, "/v2beta/stable-image/generate/core", json={"prompt": "x"}, headers=BEARER
    )
    assert status == 400 and "multipart/form-data" in error["errors"][0]


async def test_stability_v1(upstream: Upstream) -> None:
    path = "/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image"
    body = {"text_prompts": [{"text": "a cat"}], "samples": 2, "height": 896, "width": 1152}
    status, answer, _ = await call(upstream, path, json=body, headers=BEARER)
    assert status == 200 and [a["finishReason"] for a in answer["artifacts"]] == ["SUCCESS", "SUCCESS"]
    status, error, _ = await call(upstream, path, json={**body, "height": 1000}, headers=BEARER)
    assert status == 400 and set(error) == {"id", "name", "message"}
    status, raw, _ = await call(upstream, path, json=body, headers={**BEARER, "Accept": "image/png"})
    assert status == 200 and raw == PNG
    status, error, _ = await call(
        upstream, "/v1/generation/no-such-engine/text-to-image", json=body, headers=BEARER
    )
    assert status == 404


@pytest.mark.parametrize(
    ("model", "request_body", "words"),
    [
        (
            "amazon.titan-image-generator-v2:0",
            {
                "taskType": "TEXT_IMAGE",
                "textToImageParams": {"text": "x"},
                "imageGenerationConfig": {"numberOfImages": 6},
            },
            "numberOfImages",
        ),
        ("amazon.nova-canvas-v1:0", {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": ""}}, "text"),
        ("stability.sd3-5-large-v1:0", {"prompt": "x", "aspect_ratio": "2:1"}, "aspect_ratio"),
        ("stability.stable-diffusion-xl-v1", {"text_prompts": [{"text": "x"}], "samples": 2}, "one image"),
    ],
)
async def test_bedrock_image_models_refuse_like_bedrock(
    upstream: Upstream, model: str, request_body: dict[str, Any], words: str
) -> None:
    headers = {"Authorization": f"Bearer {MOCK_BEDROCK_API_KEY}"}
    status, error, resp = await call(upstream, f"/model/{model}/invoke", json=request_body, headers=headers)
    assert status == 400 and words in error["message"]
    assert resp.headers["x-amzn-ErrorType"].startswith("ValidationException")


async def test_imagen_on_each_host(upstream: Upstream) -> None:
    request = {"instances": [{"prompt": "a cat"}], "parameters": {"seed": 1}}
    gemini = "/v1beta/models/imagen-4.0-generate-001:predict"
    status, error, _ = await call(upstream, gemini, json=request, headers={"x-goog-api-key": "k"})
    assert status == 400 and error["error"]["message"] == "seed parameter is not supported in Gemini API."
    vertex = "/v1/projects/p/locations/us-central1/publishers/google/models/imagen-4.0-generate-001:predict"
    status, error, _ = await call(upstream, vertex, json=request, headers=BEARER)
    assert status == 400 and "addWatermark" in error["error"]["message"]
    request["parameters"]["addWatermark"] = False
    status, answer, _ = await call(upstream, vertex, json=request, headers=BEARER)
    assert status == 200 and len(answer["predictions"]) == 4  # Imagen's default sampleCount


async def test_openai_images_are_as_strict_as_openai(upstream: Upstream) -> None:
    for request, param, code in (
        ({"model": "dall-e-3"}, "prompt", "missing_required_parameter"),
        ({"model": "dall-e-3", "prompt": "x", "n": 2}, "n", "integer_out_of_range"),
        ({"model": "dall-e-2", "prompt": "x", "size": "1792x1024"}, "size", "invalid_value"),
        ({"model": "gpt-image-1.5", "prompt": "x", "size": "1000x1000"}, "size", "invalid_value"),
        ({"model": "gpt-image-1.5", "prompt": "x", "quality": "hd"}, "quality", "invalid_value"),
        ({"model": "dall-e-3", "prompt": "x", "style": "noir"}, "style", "invalid_value"),
        ({"model": "dall-e-3", "prompt": "x", "stream": True}, "stream", "unsupported_value"),
    ):
        status, error, _ = await call(upstream, "/v1/images/generations", json=request, headers=BEARER)
        assert status == 400 and (error["error"]["param"], error["error"]["code"]) == (param, code), request


async def test_moderations_of_text_and_image_parts(upstream: Upstream) -> None:
    parts = [
        {"type": "text", "text": "gore everywhere"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    status, answer, _ = await call(upstream, "/v1/moderations", json={"input": parts}, headers=BEARER)
    [result] = answer["results"]
    assert status == 200 and answer["model"] == "omni-moderation-latest"
    assert result["flagged"] and result["categories"]["violence/graphic"]
    assert result["category_applied_input_types"]["violence"] == ["text", "image"]
    assert result["category_applied_input_types"]["hate"] == ["text"]
    status, error, _ = await call(
        upstream, "/v1/moderations", json={"model": "omni-moderation-latest"}, headers=BEARER
    )
    assert status == 400 and error["error"]["param"] == "input"


async def test_cohere_v2_rerank_takes_strings_only(upstream: Upstream) -> None:
    body = {"model": "rerank-v3.5", "query": "q", "documents": [{"text": "a"}]}
    status, error, _ = await call(upstream, "/v2/rerank", json=body, headers=BEARER)
    assert status == 400 and error["message"] == "invalid request: documents must be a list of strings"
