"""Image answers of the mock in Bedrock's and Imagen's wire formats.

Bedrock InvokeModel bodies (Bedrock user guide, "Amazon Titan Image Generator", "Amazon Nova
Canvas", "Stable Image Core / Ultra, Stable Diffusion 3.5" and "Stability AI SDXL" request and
response fields): Titan and Nova Canvas's ``TEXT_IMAGE`` task answering ``{"images", "error"}``
(a blocked prompt is a 400),
Stability's one-image ``{"seeds", "finish_reasons", "images"}`` and SDXL's
``{"result", "artifacts"}``. Imagen ``:predict`` (Vertex AI's Imagen API reference, and the
parameters google-genai refuses on the Gemini API: ``seed``, ``negativePrompt``, ``addWatermark``)
answering ``predictions`` of ``bytesBase64Encoded`` / ``mimeType``, the rewritten ``prompt`` on
Vertex, ``raiFilteredReason`` for a filtered image. Values are checked against each reference's
ranges; a refusal is a ``(400, message)`` in the caller's error format. ``finish=<reason>`` in
the prompt's ``[mock ...]`` filters the images.
"""

from __future__ import annotations

import zlib
from typing import Any

from fastgate.mock.directives import Directives, last_user_text
from fastgate.mock.media import PNG_B64

STABILITY_RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
IMAGEN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
_GEMINI_API_REFUSES = ("seed", "negativePrompt", "addWatermark")


class Refusal(Exception):
    """A request the provider would refuse with a 400 and this message."""


def _seed(text: str) -> int:
    return zlib.crc32(text.encode()) % 4294967294 + 1


def titan(request: dict[str, Any], d: Directives, nova: bool) -> dict[str, Any]:
    if request.get("taskType") != "TEXT_IMAGE":
        raise Refusal("Malformed input request: taskType must be TEXT_IMAGE for this mock")
    params = request.get("textToImageParams") or {}
    text = params.get("text")
    limit = 1024 if nova else 512
    if not isinstance(text, str) or not 1 <= len(text) <= limit:
        raise Refusal(f"Malformed input request: #/textToImageParams/text: expected 1 to {limit} characters")
    config = request.get("imageGenerationConfig") or {}
    count = config.get("numberOfImages", 1)
    if not isinstance(count, int) or not 1 <= count <= 5:
        raise Refusal(
            f"Malformed input request: #/imageGenerationConfig/numberOfImages: {count} is not in 1..5"
        )
    if config.get("quality", "standard") not in ("standard", "premium"):
        raise Refusal("Malformed input request: #/imageGenerationConfig/quality: standard or premium")
    for side in ("width", "height"):
        value = config.get(side, 1024)
        if not isinstance(value, int) or not 320 <= value <= 4096 or value % 16:
            raise Refusal(
                f"Malformed input request: #/imageGenerationConfig/{side}: {value} is not supported"
            )
    if d.finish:
        # Bedrock refuses a blocked Titan / Nova Canvas prompt with a 400 ValidationException.
        raise Refusal("This request has been blocked by our content filters.")
    return {"images": [PNG_B64] * count, "error": None}


def bedrock_stability(request: dict[str, Any], d: Directives) -> dict[str, Any]:
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise Refusal("Malformed input request: #: required key [prompt] not found")
    ratio = request.get("aspect_ratio", "1:1")
    if ratio not in STABILITY_RATIOS:
        raise Refusal(f"Malformed input request: #/aspect_ratio: {ratio} is not a valid enum value")
    if request.get("output_format", "png") not in ("png", "jpeg"):
        raise Refusal("Malformed input request: #/output_format: must be png or jpeg")
    seed = request.get("seed") or _seed(prompt)
    if d.finish:
        return {"seeds": [seed], "finish_reasons": [f"Filter reason: {d.finish}"], "images": []}
    return {"seeds": [seed], "finish_reasons": [None], "images": [PNG_B64]}


def bedrock_sdxl(request: dict[str, Any], d: Directives) -> dict[str, Any]:
    prompts = request.get("text_prompts")
    if not isinstance(prompts, list) or not prompts:
        raise Refusal("Malformed input request: #: required key [text_prompts] not found")
    for side in ("width", "height"):
        value = request.get(side, 1024)
        if not isinstance(value, int) or value < 128 or value % 64:
            raise Refusal(f"Malformed input request: #/{side}: must be a multiple of 64 of at least 128")
    if request.get("samples", 1) != 1:
        raise Refusal("Malformed input request: #/samples: Bedrock generates one image per request")
    seed = request.get("seed") or _seed(str(prompts[0]))
    finish = "CONTENT_FILTERED" if d.finish else "SUCCESS"
    return {"result": "success", "artifacts": [{"seed": seed, "base64": PNG_B64, "finishReason": finish}]}


def imagen(request: dict[str, Any], d: Directives, vertex: bool) -> dict[str, Any]:
    instances = request.get("instances")
    if not isinstance(instances, list) or not instances or not isinstance(instances[0], dict):
        raise Refusal("Invalid JSON payload received. instances: a list with one prompt is required.")
    prompt = instances[0].get("prompt")
    if not isinstance(prompt, str) or not prompt:
        raise Refusal("instances[0].prompt is required.")
    params = request.get("parameters") or {}
    if not vertex:
        for name in _GEMINI_API_REFUSES:
            if name in params:
                raise Refusal(f"{name} parameter is not supported in Gemini API.")
    elif params.get("seed") is not None and params.get("addWatermark", True):
        raise Refusal("Seed is not supported when addWatermark is true: set addWatermark to false.")
    count = params.get("sampleCount", 4)  # Imagen's default
    if not isinstance(count, int) or not 1 <= count <= 4:
        raise Refusal(f"sampleCount must be between 1 and 4, got {count}.")
    if params.get("aspectRatio", "1:1") not in IMAGEN_RATIOS:
        raise Refusal(f"aspectRatio must be one of {', '.join(IMAGEN_RATIOS)}.")
    mime = (params.get("outputOptions") or {}).get("mimeType", "image/png")
    if mime not in ("image/png", "image/jpeg"):
        raise Refusal(f"Unsupported outputOptions.mimeType: {mime}.")
    if d.finish:
        reason = f"Your current safety filter threshold filtered out {count} generated images ({d.finish})."
        return {"predictions": [{"raiFilteredReason": reason}] if params.get("includeRaiReason") else []}
    prediction: dict[str, Any] = {"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}
    if vertex and params.get("enhancePrompt", True):
        prediction["prompt"] = f"A detailed, high-quality image of {last_user_text({'prompt': prompt})}"
    return {"predictions": [prediction] * count}
