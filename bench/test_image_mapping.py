"""Image generation and rerank mappings against the msgspec floor: decoding the same payload into
its Structs and encoding them back, which any mapping must at least do. Budget: 3x the floor, the
two timed alternately (bench/conftest's ``interleaved_ratio``). Answers carry images of ~1 MB of
base64 each, so an image answer's cost is the copy of its image; the request sides are small
bodies where the mapping's own work shows. Run:
``pytest bench/test_image_mapping.py --benchmark-group-by=group``."""

from __future__ import annotations

import base64
import random
from typing import Any

import msgspec
import pytest

from bench.conftest import interleaved_ratio, require_measured
from fastgate._transforms import (
    bedrock_image_request,
    cohere_rerank_request,
    cohere_rerank_response,
    imagen_request,
    imagen_response,
    stability_image_request,
    stability_image_response,
    voyage_rerank_response,
)
from fastgate.schema import images, rerank

BUDGET = 3.0
_encode = msgspec.json.encode
#: ~1 MB of base64, not compressible (an image's bytes are not), the same in every run.
IMAGE = base64.b64encode(random.Random(7).randbytes(768 * 1024)).decode()

IMAGE_REQUEST = _encode(
    {
        "model": "core",
        "prompt": "a lighthouse on a cliff at dusk, oil painting, dramatic light, seagulls",
        "n": 1,
        "size": "1792x1024",
        "response_format": "b64_json",
        "style": "cinematic",
        "seed": 42,
    }
)
BEDROCK_REQUEST = _encode(
    {
        "model": "stability.sd3-5-large-v1:0",
        "prompt": "a castle in the clouds",
        "size": "1024x1536",
        "seed": 5,
    }
)
IMAGEN_REQUEST = _encode(
    {"model": "imagen-4.0-generate-001", "prompt": "a koi pond", "n": 2, "size": "1024x1792", "seed": 3}
)
STABILITY_ANSWER = _encode({"image": IMAGE, "finish_reason": "SUCCESS", "seed": 42})
IMAGEN_ANSWER = _encode(
    {
        "predictions": [
            {"bytesBase64Encoded": IMAGE, "mimeType": "image/png", "prompt": "a koi pond, detailed"}
        ]
        * 2
    }
)
DOCUMENTS = [f"Document {i} about topic {i % 7}: " + "words of the passage " * 12 for i in range(200)]
RERANK_REQUEST = _encode(
    {"model": "rerank-v3.5", "query": "what about topic 3", "documents": DOCUMENTS, "top_n": 10}
)
RERANK_ANSWER = _encode(
    {
        "id": "7a1c",
        "results": [{"index": i, "relevance_score": 1 / (i + 1)} for i in range(200)],
        "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
    }
)
VOYAGE_ANSWER = _encode(
    {
        "object": "list",
        "data": [{"index": i, "relevance_score": 1 / (i + 1)} for i in range(200)],
        "model": "rerank-2.5",
        "usage": {"total_tokens": 4800},
    }
)


def floor(kind: type, payload: bytes) -> Any:
    decoder = msgspec.json.Decoder(kind)
    return lambda: _encode(decoder.decode(payload))


CASES = {
    "stability-request": (
        floor(images.ImageRequest, IMAGE_REQUEST),
        lambda: stability_image_request(IMAGE_REQUEST),
    ),
    "bedrock-request": (
        floor(images.ImageRequest, BEDROCK_REQUEST),
        lambda: bedrock_image_request(BEDROCK_REQUEST),
    ),
    "imagen-request": (
        floor(images.ImageRequest, IMAGEN_REQUEST),
        lambda: imagen_request(IMAGEN_REQUEST, None, "vertex-ai", True),
    ),
    "stability-answer": (
        floor(images.StabilityImage, STABILITY_ANSWER),
        lambda: stability_image_response(STABILITY_ANSWER),
    ),
    "imagen-answer": (
        floor(images.ImagenAnswer, IMAGEN_ANSWER),
        lambda: imagen_response(IMAGEN_ANSWER, "vertex-ai"),
    ),
    "rerank-request": (
        floor(rerank.RerankRequest, RERANK_REQUEST),
        lambda: cohere_rerank_request(RERANK_REQUEST),
    ),
    "rerank-answer": (
        floor(rerank.RerankAnswer, RERANK_ANSWER),
        lambda: cohere_rerank_response(RERANK_ANSWER, RERANK_REQUEST),
    ),
    "voyage-answer": (
        floor(rerank.VoyageRerankAnswer, VOYAGE_ANSWER),
        lambda: voyage_rerank_response(VOYAGE_ANSWER, RERANK_REQUEST),
    ),
}
#: The image answers: each copy is ~1 ms, so fewer rounds measure them as well.
_HEAVY = {"stability-answer", "imagen-answer"}


@pytest.mark.parametrize("side", ["floor", "mapping"])
@pytest.mark.parametrize("group", list(CASES))
def test_images_and_rerank(benchmark: Any, measure: Any, group: str, side: str) -> None:
    benchmark.group = f"images-{group}"
    base, mapping = CASES[group]
    measure(base if side == "floor" else mapping)


def test_budget_image_and_rerank_mappings_within_3x_of_msgspec_floor() -> None:
    require_measured(
        "test_images_and_rerank[stability-request-mapping]", "test_images_and_rerank[stability-request-floor]"
    )
    ratios = {
        g: interleaved_ratio(
            mapping, base, rounds=15 if g in _HEAVY else 60, number=5 if g in _HEAVY else 100
        )
        for g, (base, mapping) in CASES.items()
    }
    print("\nimage / rerank mapping / msgspec floor:", {g: round(r, 2) for g, r in ratios.items()})
    assert all(r <= BUDGET for r in ratios.values()), ratios
