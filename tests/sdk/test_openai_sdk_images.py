"""The openai SDK's images and moderations through fastgate: OpenAI and OpenAI-shaped upstreams
(the mock over HTTP), Azure's deployment URLs, and the in-process mock."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from openai import BadRequestError

from fastgate.mock.forms import read_form
from fastgate.mock.media import PNG
from tests.conftest import Gateway, Upstream
from tests.support.sdk import openai_clients

PROMPT = "a watercolor lighthouse"


@pytest.fixture
async def sdk(gateway: Gateway) -> AsyncIterator[Any]:
    async with openai_clients(gateway.url + "/v1", "sk-images-key") as make:
        yield make


def to(upstream: Upstream, provider: str = "openai") -> dict[str, str]:
    return {"x-portkey-provider": provider, "x-portkey-custom-host": upstream.url}


async def test_generate_b64_json_passes_through(sdk: Any, upstream: Upstream) -> None:
    answer = await sdk(to(upstream)).images.generate(
        model="gpt-image-1.5",
        prompt=PROMPT,
        n=2,
        size="1536x1024",
        quality="high",
        extra_body={"brand_new_param": 1},
    )
    assert [base64.b64decode(d.b64_json) for d in answer.data] == [PNG, PNG]
    assert answer.usage is not None and answer.usage.output_tokens > 0
    assert answer.size == "1536x1024" and answer.quality == "high"
    [received] = upstream.requests
    assert received["path"] == "/v1/images/generations"
    assert received["headers"]["Authorization"] == "Bearer sk-images-key"
    # The body goes through byte for byte: parameters fastgate does not know survive.
    assert msgspec.json.decode(received["body"])["brand_new_param"] == 1


async def test_generate_url_with_revised_prompt(sdk: Any, upstream: Upstream) -> None:
    answer = await sdk(to(upstream)).images.generate(
        model="dall-e-3", prompt=PROMPT, response_format="url", size="1792x1024"
    )
    [image] = answer.data
    assert image.url is not None and image.url.startswith("data:image/png;base64,")
    assert base64.b64decode(image.url.partition(",")[2]) == PNG
    assert image.revised_prompt == f"A detailed, high-quality image of {PROMPT}"


async def test_openais_own_refusal_is_relayed(sdk: Any, upstream: Upstream) -> None:
    with pytest.raises(BadRequestError) as caught:
        await sdk(to(upstream)).images.generate(model="gpt-image-1.5", prompt=PROMPT, response_format="url")
    assert caught.value.code == "unknown_parameter" and caught.value.param == "response_format"


async def test_generate_stream(sdk: Any, upstream: Upstream) -> None:
    stream = await sdk(to(upstream)).images.generate(
        model="gpt-image-1.5", prompt=PROMPT, stream=True, partial_images=2
    )
    kinds = [event.type async for event in stream]
    assert kinds == [
        "image_generation.partial_image",
        "image_generation.partial_image",
        "image_generation.completed",
    ]


@pytest.mark.parametrize("through_mock_provider", [False, True])
async def test_edit(sdk: Any, upstream: Upstream, through_mock_provider: bool) -> None:
    headers = {"x-portkey-provider": "mock"} if through_mock_provider else to(upstream)
    answer = await sdk(headers).images.edit(
        model="gpt-image-1.5",
        image=[("a.png", io.BytesIO(PNG), "image/png"), ("b.png", io.BytesIO(PNG), "image/png")],
        prompt="add a hat",
        n=1,
    )
    assert base64.b64decode(answer.data[0].b64_json) == PNG
    assert answer.usage is not None and answer.usage.input_tokens_details.image_tokens > 0
    if not through_mock_provider:
        [received] = upstream.requests
        assert received["path"] == "/v1/images/edits"
        form = read_form(
            received["body"].encode("utf-8", "surrogateescape"), received["headers"]["Content-Type"]
        )
        assert form["prompt"] == "add a hat" and len(form["image"]) == 2


async def test_edit_without_an_image_is_openais_400(sdk: Any) -> None:
    with pytest.raises(BadRequestError) as caught:
        await sdk({"x-portkey-provider": "mock"}).images.edit(
            model="gpt-image-1.5", image=[], prompt="add a hat"
        )
    assert caught.value.param == "image"


async def test_in_process_mock_and_compatible_provider(sdk: Any, upstream: Upstream) -> None:
    mocked = await sdk({"x-portkey-provider": "mock"}).images.generate(model="dall-e-2", prompt=PROMPT)
    assert mocked.data[0].url is not None
    together = await sdk(to(upstream, "together-ai")).images.generate(
        model="black-forest-labs/FLUX.1-schnell", prompt=PROMPT
    )
    assert together.model_extra is not None and together.model_extra["provider"] == "together-ai"
    assert upstream.requests[-1]["path"] == "/v1/images/generations"


async def test_azure_deployment_url(sdk: Any, upstream: Upstream) -> None:
    headers = {
        "x-portkey-provider": "azure-openai",
        "x-portkey-custom-host": str(upstream.server.make_url("/openai")),
        "x-portkey-azure-deployment-id": "img-deploy",
        "x-portkey-azure-api-version": "2025-04-01-preview",
    }
    answer = await sdk(headers, key="azure-key").images.generate(prompt=PROMPT, size="1024x1024")
    assert base64.b64decode(answer.data[0].b64_json) == PNG
    [received] = upstream.requests
    assert received["path"] == "/openai/deployments/img-deploy/images/generations"
    assert received["query"] == "api-version=2025-04-01-preview"
    assert received["headers"]["api-key"] == "azure-key"


async def test_moderations(sdk: Any, upstream: Upstream) -> None:
    result = await sdk(to(upstream)).moderations.create(
        model="omni-moderation-latest", input=["I will kill the process", "have a nice day"]
    )
    flagged, calm = result.results
    assert flagged.flagged and flagged.categories.violence and flagged.category_scores.violence > 0.9
    assert not calm.flagged
    assert upstream.requests[0]["path"] == "/v1/moderations"


async def test_moderations_only_where_served(gateway: Gateway, upstream: Upstream) -> None:
    resp = await gateway.post(
        "/v1/moderations", {"input": "hi"}, {**to(upstream, "groq"), "Authorization": "Bearer k"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "unsupported_endpoint"
    assert upstream.requests == []
