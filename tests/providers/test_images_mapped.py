"""Image generation mapped to Stability AI, Bedrock (Titan, Nova Canvas, Stability models) and
Imagen (Vertex AI, the Gemini API): the openai SDK against the gateway, the mock answering in each
provider's wire format over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from openai import BadRequestError, RateLimitError

from fastgate.mock.bedrock_format import MOCK_AWS_ACCESS_KEY_ID, MOCK_AWS_SECRET_ACCESS_KEY
from fastgate.mock.forms import read_form
from fastgate.mock.media import PNG
from tests.conftest import Gateway, Upstream
from tests.providers.gemini_support import GOOGLE_KEY, mock_root
from tests.support.sdk import openai_clients

STABILITY_KEY = "sk-stability-test-0123456789"


def stability(upstream: Upstream) -> dict[str, str]:
    return {"x-portkey-provider": "stability-ai", "x-portkey-custom-host": mock_root(upstream)}


def bedrock(upstream: Upstream) -> dict[str, str]:
    return {
        "x-portkey-provider": "bedrock",
        "x-portkey-custom-host": mock_root(upstream),
        "x-portkey-aws-access-key-id": MOCK_AWS_ACCESS_KEY_ID,
        "x-portkey-aws-secret-access-key": MOCK_AWS_SECRET_ACCESS_KEY,
        "x-portkey-aws-region": "us-west-2",
    }


def vertex(upstream: Upstream) -> dict[str, str]:
    return {
        "x-portkey-provider": "vertex-ai",
        "x-portkey-custom-host": mock_root(upstream) + "/v1",
        "x-portkey-vertex-project-id": "proj-1",
        "x-portkey-vertex-region": "us-central1",
    }


def google(upstream: Upstream) -> dict[str, str]:
    return {"x-portkey-provider": "google", "x-portkey-custom-host": mock_root(upstream) + "/v1beta"}


@pytest.fixture
async def sdk(gateway: Gateway) -> AsyncIterator[Any]:
    async with openai_clients(gateway.url + "/v1", STABILITY_KEY) as make:
        yield make


def form_of(received: dict[str, Any]) -> dict[str, Any]:
    return read_form(received["body"].encode(), received["headers"]["Content-Type"])


def decoded(received: dict[str, Any]) -> Any:
    return msgspec.json.decode(received["body"])


# ---- Stability AI ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "endpoint", "form_model"),
    [
        ("core", "core", None),
        ("stable-image-ultra", "ultra", None),
        ("sd3.5-large", "sd3", "sd3.5-large"),
    ],
)
async def test_stability_v2beta_by_model(
    sdk: Any, upstream: Upstream, model: str, endpoint: str, form_model: str | None
) -> None:
    answer = await sdk(stability(upstream)).images.generate(
        model=model,
        prompt="a lighthouse at dusk",
        size="1792x1024",
        response_format="b64_json",
        extra_body={"negative_prompt": "fog", "seed": 42, "style": "cinematic"},
    )
    [image] = answer.data
    assert base64.b64decode(image.b64_json) == PNG
    assert answer.model_extra is not None and answer.model_extra["provider"] == "stability-ai"
    [received] = upstream.requests
    assert received["path"] == f"/v2beta/stable-image/generate/{endpoint}"
    assert received["headers"]["Accept"] == "application/json"
    assert received["headers"]["Authorization"] == f"Bearer {STABILITY_KEY}"
    expected = {
        "prompt": "a lighthouse at dusk",
        "aspect_ratio": "16:9",  # 1792x1024 is within 2% of 16:9
        "negative_prompt": "fog",
        "style_preset": "cinematic",
        "output_format": "png",
        "seed": "42",
    }
    if form_model:
        expected["model"] = form_model
    assert form_of(received) == expected


async def test_stability_n_images_are_n_calls_with_counted_seeds(sdk: Any, upstream: Upstream) -> None:
    answer = await sdk(stability(upstream)).images.generate(
        model="core", prompt="three cats", n=3, response_format="url", extra_body={"seed": 7}
    )
    assert [image.url for image in answer.data] == [
        "data:image/png;base64," + base64.b64encode(PNG).decode()
    ] * 3
    seeds = sorted(form_of(r)["seed"] for r in upstream.requests)
    assert seeds == ["7", "8", "9"]


async def test_stability_v1_engine_gets_json(sdk: Any, upstream: Upstream) -> None:
    answer = await sdk(stability(upstream)).images.generate(
        model="stable-diffusion-xl-1024-v1-0",
        prompt="a red fox",
        n=2,
        size="1152x896",
        extra_body={"negative_prompt": "blur", "steps": 30},
    )
    assert len(answer.data) == 2 and all(base64.b64decode(d.b64_json) == PNG for d in answer.data)
    [received] = upstream.requests
    assert received["path"] == "/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image"
    assert decoded(received) == {
        "text_prompts": [{"text": "a red fox", "weight": 1.0}, {"text": "blur", "weight": -1.0}],
        "height": 896,
        "width": 1152,
        "samples": 2,
        "steps": 30,
    }


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"quality": "hd"}, "quality", "no quality setting"),
        ({"style": "vivid"}, "style", "style presets"),
        ({"size": "1000x300"}, "size", "aspect ratios"),
        ({"output_format": "webp", "model": "sd3.5-medium"}, "output_format", "png, jpeg"),
        ({"background": "transparent"}, "background", "opaque"),
        ({"stream": True}, "stream", "does not stream"),
        ({"response_format": "svg"}, "response_format", "b64_json or url"),
        ({"n": 11}, "n", "at most 10"),
        ({"model": None}, "model", "model is required"),
    ],
)
async def test_stability_refuses_what_it_cannot_honour(
    gateway: Gateway, upstream: Upstream, params: dict[str, Any], param: str, words: str
) -> None:
    body = {"model": "core", "prompt": "a cat", **params}
    resp = await gateway.post("/v1/images/generations", body, stability(upstream))
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["param"] == param and words in error["message"]
    assert upstream.requests == []  # refused before any call


async def test_stability_errors_keep_status_and_message(sdk: Any, upstream: Upstream) -> None:
    client = sdk(stability(upstream))
    with pytest.raises(RateLimitError) as caught:
        await client.images.generate(model="core", prompt="[mock status=429] busy")
    assert "stability-ai error: mock failure 429" in str(caught.value)
    with pytest.raises(BadRequestError) as refused:
        await client.images.generate(model="core", prompt="a cat", extra_body={"aspect_ratio": "7:3"})
    assert "aspect_ratio: must be one of" in str(refused.value)


async def test_a_filtered_image_is_a_content_policy_refusal(sdk: Any, upstream: Upstream) -> None:
    with pytest.raises(BadRequestError) as caught:
        await sdk(stability(upstream)).images.generate(
            model="core", prompt="[mock finish=CONTENT_FILTERED] x"
        )
    assert caught.value.code == "content_policy_violation"
    assert "CONTENT_FILTERED" in caught.value.message


# ---- Bedrock --------------------------------------------------------------------------------------


async def test_titan_image_generator_one_signed_call(sdk: Any, upstream: Upstream) -> None:
    model = "amazon.titan-image-generator-v2:0"
    answer = await sdk(bedrock(upstream)).images.generate(
        model=model, prompt="a snowy cabin", n=2, size="768x1152", quality="hd", extra_body={"seed": 11}
    )
    assert len(answer.data) == 2 and base64.b64decode(answer.data[0].b64_json) == PNG
    [received] = upstream.requests
    assert received["path"] == f"/model/{model}/invoke"
    assert received["headers"]["Authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={MOCK_AWS_ACCESS_KEY_ID}/"
    )
    assert decoded(received) == {
        "taskType": "TEXT_IMAGE",
        "textToImageParams": {"text": "a snowy cabin"},
        "imageGenerationConfig": {
            "numberOfImages": 2,
            "width": 768,
            "height": 1152,
            "quality": "premium",
            "seed": 11,
        },
    }


async def test_nova_canvas_blocked_prompt_keeps_bedrocks_refusal(sdk: Any, upstream: Upstream) -> None:
    with pytest.raises(BadRequestError) as caught:
        await sdk(bedrock(upstream)).images.generate(
            model="amazon.nova-canvas-v1:0", prompt="[mock finish=prompt] something"
        )
    assert "bedrock error: This request has been blocked by our content filters." in caught.value.message


async def test_bedrock_stability_model_fans_out(sdk: Any, upstream: Upstream) -> None:
    model = "us.stability.sd3-5-large-v1:0"
    answer = await sdk(bedrock(upstream)).images.generate(
        model=model, prompt="a castle", n=2, size="1024x1536", response_format="url", extra_body={"seed": 5}
    )
    assert [d.url[:22] for d in answer.data] == ["data:image/png;base64,"] * 2
    bodies = sorted((decoded(r) for r in upstream.requests), key=lambda b: b["seed"])
    assert bodies == [
        {"prompt": "a castle", "aspect_ratio": "2:3", "output_format": "png", "seed": 5},
        {"prompt": "a castle", "aspect_ratio": "2:3", "output_format": "png", "seed": 6},
    ]


async def test_bedrock_sdxl_and_an_unknown_image_model(
    sdk: Any, gateway: Gateway, upstream: Upstream
) -> None:
    answer = await sdk(bedrock(upstream)).images.generate(
        model="stability.stable-diffusion-xl-v1", prompt="a tree", size="1024x1024"
    )
    assert base64.b64decode(answer.data[0].b64_json) == PNG
    assert decoded(upstream.requests[0])["text_prompts"] == [{"text": "a tree", "weight": 1.0}]
    resp = await gateway.post(
        "/v1/images/generations", {"model": "meta.llama3-70b", "prompt": "x"}, bedrock(upstream)
    )
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "model"


# ---- Imagen ---------------------------------------------------------------------------------------


async def test_vertex_imagen_predict(sdk: Any, upstream: Upstream) -> None:
    model = "imagen-4.0-generate-001"
    answer = await sdk(vertex(upstream), key="ya29.token").images.generate(
        model=model,
        prompt="a koi pond",
        n=2,
        size="1024x1792",
        output_format="jpeg",
        extra_body={"seed": 3, "addWatermark": False, "negative_prompt": "people"},
    )
    assert len(answer.data) == 2
    assert answer.data[0].revised_prompt == "A detailed, high-quality image of a koi pond"
    [received] = upstream.requests
    assert (
        received["path"]
        == f"/v1/projects/proj-1/locations/us-central1/publishers/google/models/{model}:predict"
    )
    assert received["headers"]["Authorization"] == "Bearer ya29.token"
    assert decoded(received) == {
        "instances": [{"prompt": "a koi pond"}],
        "parameters": {
            "sampleCount": 2,
            "aspectRatio": "9:16",
            "negativePrompt": "people",
            "seed": 3,
            "addWatermark": False,
            "outputOptions": {"mimeType": "image/jpeg"},
            "includeRaiReason": True,
        },
    }


async def test_google_imagen_one_image_by_default(sdk: Any, gateway: Gateway, upstream: Upstream) -> None:
    answer = await sdk(google(upstream), key=GOOGLE_KEY).images.generate(
        model="imagen-4.0-generate-001", prompt="a moon", response_format="url"
    )
    assert len(answer.data) == 1 and answer.data[0].url.startswith("data:image/png;base64,")
    [received] = upstream.requests
    assert received["path"] == "/v1beta/models/imagen-4.0-generate-001:predict"
    assert received["headers"]["x-goog-api-key"] == GOOGLE_KEY
    assert decoded(received)["parameters"] == {"sampleCount": 1, "includeRaiReason": True}
    # The Gemini API takes no seed (google-genai refuses it there): a 400 before any call.
    resp = await gateway.post(
        "/v1/images/generations",
        {"model": "imagen-4.0-generate-001", "prompt": "x", "seed": 1},
        {**google(upstream), "Authorization": f"Bearer {GOOGLE_KEY}"},
    )
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "seed"
    assert len(upstream.requests) == 1


async def test_imagen_filtered_images(sdk: Any, upstream: Upstream) -> None:
    with pytest.raises(BadRequestError) as caught:
        await sdk(vertex(upstream), key="ya29.token").images.generate(
            model="imagen-4.0-generate-001", prompt="[mock finish=SAFETY] x"
        )
    assert caught.value.code == "content_policy_violation"
    assert "safety filter threshold" in caught.value.message
