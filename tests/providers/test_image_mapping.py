"""The compiled image mappings (``mapping/images.pxi``) on their own: sizes to aspect ratios, the
parameters each API takes, and answers to OpenAI's shape."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from fastgate._transforms import (
    bedrock_image_request,
    bedrock_image_response,
    image_answer_format,
    imagen_request,
    imagen_response,
    stability_image_request,
    stability_image_response,
)
from fastgate.errors import GatewayError


def body(**params: Any) -> bytes:
    return msgspec.json.encode({"prompt": "a cat", **params})


def stability_form(**params: Any) -> str:
    _, _, [form] = stability_image_request(body(model="core", **params))
    return form.decode()


@pytest.mark.parametrize(
    ("size", "ratio"),
    [
        ("1024x1024", "1:1"),
        ("256x256", "1:1"),
        ("1792x1024", "16:9"),
        ("1024x1792", "9:16"),
        ("1536x1024", "3:2"),
        ("1024x1536", "2:3"),
        ("2560x1097", "21:9"),
        ("1280x1024", "5:4"),
    ],
)
def test_size_to_stability_aspect_ratio(size: str, ratio: str) -> None:
    assert f'name="aspect_ratio"\r\n\r\n{ratio}\r\n' in stability_form(size=size)


@pytest.mark.parametrize("size", ["auto", None])
def test_no_size_sends_no_aspect_ratio(size: str | None) -> None:
    assert "aspect_ratio" not in stability_form(size=size)


@pytest.mark.parametrize(
    ("size", "ok"), [("1024x1024", "1:1"), ("1152x864", "4:3"), ("1536x1024", None), ("banana", None)]
)
def test_size_to_imagen_aspect_ratio(size: str, ok: str | None) -> None:
    if ok is None:
        with pytest.raises(GatewayError) as caught:
            imagen_request(body(model="imagen-4.0-generate-001", size=size), None, "vertex-ai", True)
        assert caught.value.param == "size"
        return
    _, payload = imagen_request(body(model="imagen-4.0-generate-001", size=size), None, "vertex-ai", True)
    assert msgspec.json.decode(payload)["parameters"]["aspectRatio"] == ok


def test_override_params_win_and_reach_the_form() -> None:
    _, _, [form] = stability_image_request(
        body(model="core", size="1024x1024"), {"model": "ultra", "seed": 9}
    )
    assert 'name="seed"\r\n\r\n9\r\n' in form.decode()
    path, _, _ = stability_image_request(body(model="core"), {"model": "ultra"})
    assert path == "/v2beta/stable-image/generate/ultra"


def test_a_boundary_found_in_a_value_is_replaced() -> None:
    _, content_type, [form] = stability_image_request(body(model="core"))
    boundary = content_type.partition("boundary=")[2]
    _, content_type, [form] = stability_image_request(body(model="core", prompt=f"say {boundary}"))
    assert content_type.partition("boundary=")[2] != boundary
    assert form.decode().count(content_type.partition("boundary=")[2]) == 3  # prompt, format, end


def test_model_names_stay_one_path_segment() -> None:
    with pytest.raises(GatewayError) as caught:
        stability_image_request(body(model="../v1/user/balance"))
    assert caught.value.param == "model"


def test_titan_quality_and_imagen_parameters_by_host() -> None:
    for quality, titan in (("hd", "premium"), ("high", "premium"), ("medium", "standard"), ("auto", None)):
        _, [payload] = bedrock_image_request(body(model="amazon.titan-image-generator-v1", quality=quality))
        assert msgspec.json.decode(payload)["imageGenerationConfig"].get("quality") == titan
    given = body(model="imagen-3.0-generate-002", negative_prompt="x", personGeneration="dont_allow")
    _, payload = imagen_request(given, None, "vertex-ai", True)
    assert msgspec.json.decode(payload)["parameters"]["personGeneration"] == "dont_allow"
    with pytest.raises(GatewayError) as caught:
        imagen_request(given, None, "google", False)
    assert caught.value.param == "negative_prompt"


def test_answers() -> None:
    v2 = b'{"image":"QUJD","finish_reason":"SUCCESS","seed":1}'
    assert msgspec.json.decode(stability_image_response(v2))["data"] == [{"b64_json": "QUJD"}]
    jpeg = msgspec.json.decode(stability_image_response(v2, True, "jpeg"))
    assert jpeg["data"] == [{"url": "data:image/jpeg;base64,QUJD"}] and jpeg["output_format"] == "jpeg"
    v1 = (
        b'{"artifacts":[{"base64":"QQ==","finishReason":"SUCCESS","seed":1},'
        b'{"base64":"Qg==","finishReason":"CONTENT_FILTERED","seed":2}]}'
    )
    assert msgspec.json.decode(stability_image_response(v1))["data"] == [{"b64_json": "QQ=="}]
    sd = b'{"seeds":[1],"finish_reasons":[null],"images":["QQ=="]}'
    answer = msgspec.json.decode(
        bedrock_image_response(b"[" + sd + b"," + sd + b"]", "stability.sd3-5-large-v1:0")
    )
    assert len(answer["data"]) == 2 and answer["provider"] == "bedrock"
    imagen = b'{"predictions":[{"bytesBase64Encoded":"QQ==","mimeType":"image/jpeg","prompt":"better"}]}'
    assert msgspec.json.decode(imagen_response(imagen, "google", True))["data"] == [
        {"url": "data:image/jpeg;base64,QQ==", "revised_prompt": "better"}
    ]
    assert image_answer_format(body(response_format="url", output_format="webp")) == (True, "webp")
    assert image_answer_format(body(), {"response_format": "url"}) == (True, "png")


@pytest.mark.parametrize(
    "answer",
    [
        b'{"image":"","finish_reason":"CONTENT_FILTERED","seed":1}',
        b'{"predictions":[]}',
        b'{"seeds":[1],"finish_reasons":["Filter reason: output image"],"images":[]}',
    ],
)
def test_nothing_left_after_filtering_is_a_content_policy_refusal(answer: bytes) -> None:
    with pytest.raises(GatewayError) as caught:
        if b"predictions" in answer:
            imagen_response(answer, "vertex-ai")
        elif b"seeds" in answer:
            bedrock_image_response(answer, "stability.stable-image-core-v1:1")
        else:
            stability_image_response(answer)
    assert caught.value.status == 400 and caught.value.code == "content_policy_violation"


def test_an_answer_that_is_not_the_providers_shape_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        stability_image_response(b'{"image": 5}')
    with pytest.raises(ValueError):
        imagen_response(b"<html>", "google")
