"""Image generation wire formats as msgspec Structs: OpenAI's, and the image APIs it is mapped to.

OpenAI's side follows the ``openai`` SDK's ``ImageGenerateParams`` and ``ImagesResponse``; the
provider sides follow their references: Stability AI's v2beta Stable Image and v1 text-to-image
(https://platform.stability.ai/docs/api-reference), Bedrock's InvokeModel bodies for Amazon Titan
Image Generator / Nova Canvas and Stability models (Bedrock user guide, "Inference request
parameters and response fields for foundation models"), and Imagen's ``:predict``
(https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/imagen-api; the
``google-genai`` SDK's ``_GenerateImagesConfig_to_vertex`` / ``_to_mldev`` name the parameters
each host takes). Outbound Structs omit what is unset; inbound ones are views of what a mapping reads.
"""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

# ---- OpenAI ------------------------------------------------------------------------------------


class ImageRequest(msgspec.Struct, kw_only=True):
    """``POST /v1/images/generations``: OpenAI's parameters, and the provider ones Portkey
    forwards under their own names (Stability's ``style_preset``, Imagen's ``aspectRatio`` ...)."""

    prompt: str
    model: str | None = None
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    style: str | None = None
    response_format: str | None = None
    output_format: str | None = None
    background: str | None = None
    stream: bool | None = None
    #: Not OpenAI's: the providers' own seed and negative prompt, as Portkey accepts them.
    seed: int | None = None
    negative_prompt: str | None = None
    # Stability AI (and Stability models on Bedrock).
    aspect_ratio: str | None = None
    style_preset: str | None = None
    cfg_scale: float | None = None
    steps: int | None = None
    sampler: str | None = None
    clip_guidance_preset: str | None = None
    # Imagen, in the camelCase Portkey's vertex-ai mapping takes.
    aspectRatio: str | None = None
    negativePrompt: str | None = None
    personGeneration: str | None = None
    safetySetting: str | None = None
    addWatermark: bool | None = None


class AnswerFormat(msgspec.Struct):
    """What the answer's shape depends on, read again for the answer."""

    response_format: str | None = None
    output_format: str | None = None


class ImageObject(msgspec.Struct, omit_defaults=True):
    """The openai SDK's ``Image``: ``b64_json`` or ``url``, and ``revised_prompt`` where given."""

    b64_json: str | UnsetType = UNSET
    url: str | UnsetType = UNSET
    revised_prompt: str | UnsetType = UNSET


class ImagesAnswer(msgspec.Struct, omit_defaults=True):
    """The openai SDK's ``ImagesResponse`` (``usage`` only where the provider counts tokens)."""

    created: int
    data: list[ImageObject]
    output_format: str | UnsetType = UNSET
    provider: str | UnsetType = UNSET


# ---- Stability AI ------------------------------------------------------------------------------


class StabilityImage(msgspec.Struct):
    """A v2beta Stable Image answer with ``Accept: application/json``."""

    image: str = ""
    finish_reason: str | None = None
    seed: int | None = None


class TextPrompt(msgspec.Struct):
    text: str
    weight: float = 1.0


class StabilityV1Request(msgspec.Struct, omit_defaults=True):
    """``POST /v1/generation/{engine_id}/text-to-image`` (also Bedrock's SDXL body)."""

    text_prompts: list[TextPrompt]
    height: int | UnsetType = UNSET
    width: int | UnsetType = UNSET
    samples: int | UnsetType = UNSET
    cfg_scale: float | UnsetType = UNSET
    clip_guidance_preset: str | UnsetType = UNSET
    sampler: str | UnsetType = UNSET
    seed: int | UnsetType = UNSET
    steps: int | UnsetType = UNSET
    style_preset: str | UnsetType = UNSET


class Artifact(msgspec.Struct):
    base64: str = ""
    finishReason: str | None = None
    seed: int | None = None


class StabilityV1Answer(msgspec.Struct):
    """v1 text-to-image's answer (Bedrock's SDXL adds ``result``)."""

    artifacts: list[Artifact] = []


# ---- Bedrock InvokeModel -----------------------------------------------------------------------


class BedrockStabilityRequest(msgspec.Struct, omit_defaults=True):
    """Stable Diffusion 3.5 / Stable Image Core / Ultra on Bedrock: one image per call."""

    prompt: str
    mode: str = "text-to-image"
    aspect_ratio: str | UnsetType = UNSET
    output_format: str | UnsetType = UNSET
    seed: int | UnsetType = UNSET
    negative_prompt: str | UnsetType = UNSET


class BedrockStabilityAnswer(msgspec.Struct):
    seeds: list[int] = []
    #: ``null`` for an image that passed, else why it was filtered ("Filter reason: prompt").
    finish_reasons: list[str | None] = []
    images: list[str] = []


class TitanTextToImage(msgspec.Struct, omit_defaults=True):
    text: str
    negativeText: str | UnsetType = UNSET


class TitanImageConfig(msgspec.Struct, omit_defaults=True):
    numberOfImages: int | UnsetType = UNSET
    height: int | UnsetType = UNSET
    width: int | UnsetType = UNSET
    cfgScale: float | UnsetType = UNSET
    seed: int | UnsetType = UNSET
    quality: str | UnsetType = UNSET


class TitanImageRequest(msgspec.Struct):
    """Amazon Titan Image Generator v1/v2 and Nova Canvas: ``TEXT_IMAGE``."""

    textToImageParams: TitanTextToImage
    imageGenerationConfig: TitanImageConfig
    taskType: str = "TEXT_IMAGE"


class TitanImageAnswer(msgspec.Struct):
    images: list[str] = []
    error: str | None = None


# ---- Imagen :predict ---------------------------------------------------------------------------


class ImagenInstance(msgspec.Struct):
    prompt: str


class ImagenOutputOptions(msgspec.Struct, omit_defaults=True):
    mimeType: str | UnsetType = UNSET


class ImagenParameters(msgspec.Struct, omit_defaults=True):
    sampleCount: int | UnsetType = UNSET
    aspectRatio: str | UnsetType = UNSET
    negativePrompt: str | UnsetType = UNSET
    seed: int | UnsetType = UNSET
    personGeneration: str | UnsetType = UNSET
    safetySetting: str | UnsetType = UNSET
    addWatermark: bool | UnsetType = UNSET
    outputOptions: ImagenOutputOptions | UnsetType = UNSET
    #: Always asked for: a filtered image comes back as its reason instead of leaving silently.
    includeRaiReason: bool | UnsetType = UNSET


class ImagenRequest(msgspec.Struct):
    instances: list[ImagenInstance]
    parameters: ImagenParameters


class ImagenPrediction(msgspec.Struct):
    bytesBase64Encoded: str | None = None
    mimeType: str | None = None
    raiFilteredReason: str | None = None
    #: The prompt as Imagen rewrote it (``enhancePrompt``): OpenAI's ``revised_prompt``.
    prompt: str | None = None


class ImagenAnswer(msgspec.Struct):
    predictions: list[ImagenPrediction] = []
