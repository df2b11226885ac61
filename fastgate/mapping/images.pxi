# Image generation: OpenAI's /v1/images/generations → Stability AI (v2beta Stable Image, v1
# text-to-image), Bedrock InvokeModel (Amazon Titan Image Generator / Nova Canvas, Stability
# models) and Imagen :predict (Vertex AI and the Gemini API), and their answers → OpenAI's
# ImagesResponse. Names carry an ``_im`` prefix: every include shares one module namespace.
#
# References: Stability https://platform.stability.ai/docs/api-reference (v2beta generate core,
# ultra, sd3; v1 text-to-image); Bedrock user guide, "Amazon Titan Image Generator", "Amazon Nova
# Canvas", "Stability AI models" (request and response fields); Imagen
# https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/imagen-api and the
# google-genai SDK's _GenerateImagesConfig_to_mldev (what the Gemini API refuses: seed,
# negativePrompt, addWatermark).
#
# OpenAI's parameters are mapped where the provider has them and refused with a 400 naming the
# parameter where a value cannot be honoured (``quality: hd`` where there is no such knob, ``style``
# outside Stability's presets, ``background: transparent``, an ``output_format`` the model does
# not write, ``stream``). ``size`` picks the aspect ratio on the APIs that take one (within 2%,
# so DALL-E 3's 1792x1024 is 16:9) and the pixels on those that take them (Titan, SDXL).
# ``response_format: url`` gets a ``data:`` URL (RFC 2397): these APIs return bytes, not hosted
# files. ``n`` goes to the provider's own count, or becomes n calls where the model makes one image
# per call (Stability v2beta, Stability models on Bedrock), a given seed counting up per image.
# Filtered images are left out; when none is left the answer is OpenAI's 400
# ``content_policy_violation``.

import os as _im_os
import re as _im_re
import time as _im_time

from fastgate.errors import GatewayError as _im_GatewayError
from fastgate.schema import images as _im

cdef object _im_request_decoder = _msgspec.json.Decoder(_im.ImageRequest)
cdef object _im_format_decoder = _msgspec.json.Decoder(_im.AnswerFormat)
cdef object _im_params_decoder = _msgspec.json.Decoder(dict)
cdef object _im_stability_decoder = _msgspec.json.Decoder(_im.StabilityImage)
cdef object _im_stability_list_decoder = _msgspec.json.Decoder(list[_im.StabilityImage])
cdef object _im_v1_decoder = _msgspec.json.Decoder(_im.StabilityV1Answer)
cdef object _im_v1_list_decoder = _msgspec.json.Decoder(list[_im.StabilityV1Answer])
cdef object _im_bedrock_stability_decoder = _msgspec.json.Decoder(_im.BedrockStabilityAnswer)
cdef object _im_bedrock_stability_list_decoder = _msgspec.json.Decoder(list[_im.BedrockStabilityAnswer])
cdef object _im_titan_decoder = _msgspec.json.Decoder(_im.TitanImageAnswer)
cdef object _im_imagen_decoder = _msgspec.json.Decoder(_im.ImagenAnswer)
cdef object _ImObject = _im.ImageObject

#: OpenAI's ceiling for ``n``, and so for the calls one request fans out to.
IMAGES_MAX_N = 10
cdef double _IM_RATIO_TOLERANCE = 0.02
# Stability v2beta and its models on Bedrock (generate reference, ``aspect_ratio`` enum).
cdef tuple _IM_STABILITY_RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
# Imagen ``aspectRatio`` values.
cdef tuple _IM_IMAGEN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
# Stability's ``style_preset`` enum (v1 and v2beta alike).
cdef frozenset _IM_STYLE_PRESETS = frozenset({
    "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance",
    "fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk", "origami",
    "photographic", "pixel-art", "tile-texture",
})
# OpenAI ``quality`` values that ask for nothing beyond a provider's default.
cdef frozenset _IM_DEFAULT_QUALITY = frozenset({"auto", "standard"})
cdef dict _IM_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
cdef tuple _IM_PNG = ("png",)
cdef tuple _IM_PNG_JPEG = ("png", "jpeg")
cdef tuple _IM_ALL_FORMATS = ("png", "jpeg", "webp")
# Stability v1 engines (Portkey's STABILITY_V1_MODELS, and the family they belong to).
cdef tuple _IM_STABILITY_V1 = ("stable-diffusion-xl-1024-v1-0", "stable-diffusion-v1-6")
cdef str _IM_V2_PATH = "/v2beta/stable-image/generate/"
# A model name that stays one URL path segment (Stability puts it in the path).
cdef object _IM_MODEL = _im_re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A multipart boundary per process; one a value happens to contain is replaced (``_im_form``).
cdef str _im_boundary = "fastgate-" + _im_os.urandom(12).hex()


cdef inline object _im_bad(str message, str param):
    return _im_GatewayError(400, message, param=param, code="invalid_request")


cdef object _im_read(bytes body, object overrides, str provider):
    """The request, with a config's ``override_params`` merged at the dict level (one decode)."""
    try:
        if overrides:
            params = _im_params_decoder.decode(body)
            params.update(overrides)
            req = _msgspec.convert(params, _im.ImageRequest)
        else:
            req = _im_request_decoder.decode(body)
    except (_msgspec.ValidationError, _msgspec.DecodeError) as exc:
        raise _im_bad(f"Invalid request body for {provider}: {exc}", None) from None
    if req.stream:
        raise _im_bad(f"{provider} does not stream images: send stream false", "stream")
    if req.n is not None and req.n < 1:
        raise _im_bad("n must be at least 1", "n")
    if req.response_format is not None and req.response_format not in ("url", "b64_json"):
        raise _im_bad(f"response_format {req.response_format!r}: use b64_json or url", "response_format")
    if req.background is not None and req.background not in ("auto", "opaque"):
        raise _im_bad(f"background {req.background!r}: {provider} images are opaque", "background")
    return req


cdef str _im_model(object req, str provider):
    if not req.model:
        raise _im_bad(f"model is required for {provider} image generation", "model")
    return req.model


cdef void _im_default_quality(object req, str provider) except *:
    if req.quality is not None and req.quality not in _IM_DEFAULT_QUALITY:
        raise _im_bad(f"quality {req.quality!r}: {provider} has no quality setting "
                      "(send auto, or leave it out)", "quality")


cdef void _im_no_style(object req, str provider) except *:
    if req.style is not None:
        raise _im_bad(f"style {req.style!r}: {provider} takes no style for this model", "style")


cdef str _im_output_format(object req, tuple formats, str provider):
    """The requested format, if the model writes it (png when none is asked for)."""
    fmt = req.output_format
    if fmt is None:
        return "png"
    if fmt not in formats:
        raise _im_bad(f"output_format {fmt!r}: {provider} writes {', '.join(formats)} for this model",
                      "output_format")
    return fmt


cdef tuple _im_pixels(object size):
    """``"WxH"`` → (width, height); None for no size or ``auto``."""
    if size is None or size == "auto":
        return None
    width, sep, height = size.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 1 or int(height) < 1:
        raise _im_bad(f"size {size!r}: expected WIDTHxHEIGHT (e.g. 1024x1024) or auto", "size")
    return int(width), int(height)


cdef dict _im_ratio_cache = {}


cdef object _im_aspect_ratio(object size, tuple ratios, str provider):
    """The provider's aspect ratio nearest ``size``'s, within 2%; None for no size. Clients send
    a handful of sizes: each is worked out once per set of ratios and kept."""
    if size is None or size == "auto":
        return None
    key = (size, ratios)
    best = _im_ratio_cache.get(key)
    if best is not None:
        return best
    pixels = _im_pixels(size)
    cdef double wanted = <double>pixels[0] / <double>pixels[1]
    cdef double best_error = 1.0, value, error
    for ratio in ratios:
        w, _, h = ratio.partition(":")
        value = <double>int(w) / <double>int(h)
        error = abs(wanted - value) / value
        if error < best_error:
            best_error, best = error, ratio
    if best_error > _IM_RATIO_TOLERANCE:
        raise _im_bad(f"size {size!r}: {provider} takes the aspect ratios {', '.join(ratios)}; send a "
                      "size of one of them (1024x1024, 1792x1024 ...) or aspect_ratio", "size")
    if len(_im_ratio_cache) >= 1024:
        _im_ratio_cache.clear()
    _im_ratio_cache[key] = best
    return best


cdef inline object _im_given(object value):
    return _CHUNK_UNSET if value is None else value


cdef list _im_seeds(object req):
    """The seed of each of ``n`` one-image calls: the given one counted up, so the set is
    reproducible and its images differ (0 and none: random, as the APIs read them)."""
    n = req.n or 1
    seed = req.seed
    if n == 1:
        return [_im_given(seed)]
    if not seed:
        return [_im_given(seed)] * n
    return list(range(seed, seed + n))


cdef void _im_fan_out_limit(object req, str provider) except *:
    if req.n is not None and req.n > IMAGES_MAX_N:
        raise _im_bad(f"n: at most {IMAGES_MAX_N} images per request", "n")


# ---- Stability AI --------------------------------------------------------------------------------

cdef inline bint _im_is_stability_v1(str model):
    return model in _IM_STABILITY_V1 or model.startswith("stable-diffusion-")


# Stability's model names → (v2beta endpoint, the form's ``model``).
cdef dict _IM_V2_ROUTES = {
    "core": ("core", None), "stable-image-core": ("core", None),
    "ultra": ("ultra", None), "stable-image-ultra": ("ultra", None), "sd3": ("sd3", None),
}


cdef tuple _im_stability_v2_route(str model):
    """(endpoint, form ``model``): ``core`` / ``ultra`` / ``sd3`` by the model's name, SD3 models
    named in the form (Portkey sends the model as the endpoint as it is)."""
    route = _IM_V2_ROUTES.get(model)
    if route is not None:
        return route
    if not _IM_MODEL.fullmatch(model):
        raise _im_bad(f"Invalid model name {model[:100]!r} for stability-ai", "model")
    return ("sd3", model) if model.startswith("sd3") else (model, None)


cdef bytes _im_boundary_end = f"--{_im_boundary}--\r\n".encode()
cdef dict _im_heads = {}


cdef void _im_new_boundary():
    global _im_boundary, _im_boundary_end
    _im_boundary = "fastgate-" + _im_os.urandom(12).hex()
    _im_boundary_end = f"--{_im_boundary}--\r\n".encode()
    _im_heads.clear()


cdef bytes _im_head(str name):
    """A field's part head under the current boundary, made once per name."""
    head = _im_heads.get(name)
    if head is None:
        head = f'--{_im_boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        _im_heads[name] = head
    return head


cdef bytes _im_form(list fields):
    """``multipart/form-data`` (RFC 7578) of text fields, each ``(name, value)``, written in one
    buffer."""
    cdef char stack[2048]
    cdef _Out out
    out.data, out.size, out.cap, out.heap = stack, 0, 2048, False
    try:
        for name, value in fields:
            text = value if type(value) is str else str(value)
            if _im_boundary in text:
                _im_new_boundary()  # a value holds the boundary: another one, and start again
                return _im_form(fields)
            _out_put_bytes(&out, _im_head(name))
            _out_put_text(&out, text)
            _out_put(&out, "\r\n", 2)
        _out_put_bytes(&out, _im_boundary_end)
        return PyBytes_FromStringAndSize(out.data, out.size)
    finally:
        if out.heap:
            PyMem_Free(out.data)


cdef tuple _im_stability_v2(object req, str model):
    endpoint, form_model = _im_stability_v2_route(model)
    _im_default_quality(req, "stability-ai")
    _im_fan_out_limit(req, "stability-ai")
    fmt = _im_output_format(req, _IM_PNG_JPEG if endpoint == "sd3" else _IM_ALL_FORMATS, "stability-ai")
    cdef list fields = [("prompt", req.prompt)]
    ratio = req.aspect_ratio or _im_aspect_ratio(req.size, _IM_STABILITY_RATIOS, "stability-ai")
    if ratio is not None:
        fields.append(("aspect_ratio", ratio))
    if req.negative_prompt is not None:
        fields.append(("negative_prompt", req.negative_prompt))
    preset = req.style_preset or _im_style_preset(req.style)
    if preset is not None:
        fields.append(("style_preset", preset))
    if form_model is not None:
        fields.append(("model", form_model))
    if req.cfg_scale is not None:
        fields.append(("cfg_scale", req.cfg_scale))
    fields.append(("output_format", fmt))
    cdef list bodies = []
    fields.append(None)
    for seed in _im_seeds(req):
        # The bodies differ in their seed alone (a number): a boundary replaced for a text value
        # is replaced while the first is built, so one content type fits them all.
        fields[len(fields) - 1] = ("seed", seed)
        bodies.append(_im_form(fields if seed is not _CHUNK_UNSET else fields[:len(fields) - 1]))
    return _IM_V2_PATH + endpoint, "multipart/form-data; boundary=" + _im_boundary, bodies


cdef object _im_style_preset(object style):
    """OpenAI's ``style`` read as a Stability preset (Portkey passes it on as ``style_preset``)."""
    if style is None:
        return None
    if style not in _IM_STYLE_PRESETS:
        raise _im_bad(f"style {style!r}: stability-ai takes the style presets "
                      f"{', '.join(sorted(_IM_STYLE_PRESETS))}", "style")
    return style


cdef object _im_v1_body(object req, bint one_sample):
    """Stability's v1 text-to-image body (also SDXL's on Bedrock, which makes one image a call)."""
    prompts = [_im.TextPrompt(req.prompt)]
    if req.negative_prompt:
        prompts.append(_im.TextPrompt(req.negative_prompt, -1.0))  # a negative weight: avoid this
    body = _im.StabilityV1Request(prompts)
    pixels = _im_pixels(req.size)
    if pixels is not None:
        body.width, body.height = pixels
    if not one_sample and req.n is not None:
        body.samples = req.n
    preset = req.style_preset or _im_style_preset(req.style)
    body.style_preset = _im_given(preset)
    body.cfg_scale = _im_given(req.cfg_scale)
    body.steps = _im_given(req.steps)
    body.sampler = _im_given(req.sampler)
    body.clip_guidance_preset = _im_given(req.clip_guidance_preset)
    return body


def stability_image_request(bytes body, object overrides=None):
    """OpenAI images body → ``(path, content type, [body, ...])``: one body, or n for a model that
    makes one image a call. v1 engines (SDXL) get JSON; v2beta models a multipart form."""
    req = _im_read(body, overrides, "stability-ai")
    model = _im_model(req, "stability-ai")
    if not _im_is_stability_v1(model):
        return _im_stability_v2(req, model)
    _im_default_quality(req, "stability-ai")
    _im_output_format(req, _IM_PNG, "stability-ai")
    v1 = _im_v1_body(req, False)
    v1.seed = _im_given(req.seed)
    if not _IM_MODEL.fullmatch(model):
        raise _im_bad(f"Invalid model name {model[:100]!r} for stability-ai", "model")
    return f"/v1/generation/{model}/text-to-image", "application/json", [_chunk_encode_json(v1)]


def stability_image_response(bytes body, bint as_url=False, str fmt="png"):
    """A v2beta answer (or the JSON array of a fanned-out request's), or a v1 answer → OpenAI's."""
    cdef list images = []
    cdef list filtered = []
    if body[:1] == b"[":
        answers = _im_stability_list_decoder.decode(body)
    elif body.find(b'"artifacts"') >= 0:
        return _im_artifacts(_im_v1_decoder.decode(body).artifacts, as_url, "stability-ai")
    else:
        answers = [_im_stability_decoder.decode(body)]
    for answer in answers:
        # CONTENT_FILTERED: Stability answers with a blurred image (v2beta generate reference).
        if answer.finish_reason == "CONTENT_FILTERED" or not answer.image:
            filtered.append(answer.finish_reason or "no image")
        else:
            images.append(answer.image)
    return _im_answer(images, None, filtered, as_url, fmt, "stability-ai")


cdef bytes _im_artifacts(list artifacts, bint as_url, str provider):
    cdef list images = []
    cdef list filtered = []
    for art in artifacts:
        if art.finishReason in (None, "SUCCESS") and art.base64:
            images.append(art.base64)
        else:
            filtered.append(art.finishReason or "no image")
    return _im_answer(images, None, filtered, as_url, "png", provider)


# ---- Bedrock InvokeModel -------------------------------------------------------------------------

cdef inline str _im_bedrock_family(str model):
    base = _br_base_model(model)
    if base.startswith(("amazon.titan-image-generator", "amazon.nova-canvas")):
        return "titan"
    if base.startswith("stability.stable-diffusion-xl"):
        return "sdxl"
    if base.startswith("stability."):
        return "stability"
    raise _im_bad(f"Unsupported Bedrock image model {model!r}: use amazon.titan-image-generator-*, "
                  "amazon.nova-canvas-* or stability.*", "model")


def bedrock_image_request(bytes body, object overrides=None):
    """OpenAI images body → ``(model id, [InvokeModel body, ...])``: Titan and Nova Canvas make
    ``numberOfImages`` in one call; Stability models one image a call, so n calls."""
    req = _im_read(body, overrides, "bedrock")
    model = _im_model(req, "bedrock")
    family = _im_bedrock_family(model)
    if family == "titan":
        return model, [_chunk_encode_json(_im_titan(req))]
    _im_default_quality(req, "bedrock")
    _im_fan_out_limit(req, "bedrock")
    cdef list bodies = []
    if family == "sdxl":
        _im_output_format(req, _IM_PNG, "bedrock")
        template = _im_v1_body(req, True)
        for seed in _im_seeds(req):
            template.seed = seed
            bodies.append(_chunk_encode_json(template))
        return model, bodies
    _im_no_style(req, "bedrock")
    payload = _im.BedrockStabilityRequest(req.prompt)
    payload.output_format = _im_output_format(req, _IM_PNG_JPEG, "bedrock")
    ratio = req.aspect_ratio or _im_aspect_ratio(req.size, _IM_STABILITY_RATIOS, "bedrock")
    payload.aspect_ratio = _im_given(ratio)
    payload.negative_prompt = _im_given(req.negative_prompt)
    for seed in _im_seeds(req):
        payload.seed = seed
        bodies.append(_chunk_encode_json(payload))
    return model, bodies


cdef object _im_titan(object req):
    _im_no_style(req, "bedrock")
    _im_output_format(req, _IM_PNG, "bedrock")
    config = _im.TitanImageConfig()
    quality = req.quality
    if quality in ("hd", "high"):
        config.quality = "premium"
    elif quality is not None and quality != "auto":
        config.quality = "standard"  # standard, medium, low: Titan's other setting
    pixels = _im_pixels(req.size)
    if pixels is not None:
        config.width, config.height = pixels
    config.numberOfImages = _im_given(req.n)
    config.cfgScale = _im_given(req.cfg_scale)
    config.seed = _im_given(req.seed)
    params = _im.TitanTextToImage(req.prompt, _im_given(req.negative_prompt))
    return _im.TitanImageRequest(params, config)


def bedrock_image_response(bytes body, str model, bint as_url=False, str fmt="png"):
    cdef list images = []
    cdef list filtered = []
    family = _im_bedrock_family(model)
    if family == "titan":
        answer = _im_titan_decoder.decode(body)
        if answer.error:
            filtered.append(answer.error)
        return _im_answer(answer.images, None, filtered, as_url, "png", "bedrock")
    if family == "sdxl":
        answers = _im_v1_list_decoder.decode(body) if body[:1] == b"[" else [_im_v1_decoder.decode(body)]
        return _im_artifacts([a for answer in answers for a in answer.artifacts], as_url, "bedrock")
    if body[:1] == b"[":
        answers = _im_bedrock_stability_list_decoder.decode(body)
    else:
        answers = [_im_bedrock_stability_decoder.decode(body)]
    for answer in answers:
        reasons = answer.finish_reasons
        for i, image in enumerate(answer.images):
            reason = reasons[i] if i < len(reasons) else None
            if reason is None and image:
                images.append(image)
            else:
                filtered.append(reason or "no image")
        if not answer.images:
            filtered.extend(r for r in reasons if r)
    return _im_answer(images, None, filtered, as_url, fmt, "bedrock")


# ---- Imagen :predict -----------------------------------------------------------------------------

def imagen_request(bytes body, object overrides, str provider, bint vertex):
    """OpenAI images body → ``(model, :predict body)``. The Gemini API takes no seed, negative
    prompt or watermark setting (google-genai refuses them for it); Vertex takes all three."""
    req = _im_read(body, overrides, provider)
    model = _im_model(req, provider)
    _im_default_quality(req, provider)
    _im_no_style(req, provider)
    # Imagen makes 4 images unless told (Imagen API reference): OpenAI's default is one.
    params = _im.ImagenParameters(sampleCount=req.n or 1, includeRaiReason=True)
    ratio = req.aspectRatio or req.aspect_ratio or _im_aspect_ratio(req.size, _IM_IMAGEN_RATIOS, provider)
    params.aspectRatio = _im_given(ratio)
    fmt = _im_output_format(req, _IM_PNG_JPEG, provider)
    if req.output_format is not None:
        params.outputOptions = _im.ImagenOutputOptions(_IM_MIME[fmt])
    negative = req.negativePrompt or req.negative_prompt
    if vertex:
        params.negativePrompt = _im_given(negative)
        params.seed = _im_given(req.seed)
        params.addWatermark = _im_given(req.addWatermark)
    else:
        for value, name in ((negative, "negative_prompt"), (req.seed, "seed"), (req.addWatermark, "addWatermark")):
            if value is not None:
                raise _im_bad(f"{name}: Imagen on the Gemini API does not take it (Vertex AI does)", name)
    params.personGeneration = _im_given(req.personGeneration)
    params.safetySetting = _im_given(req.safetySetting)
    return model, _chunk_encode_json(_im.ImagenRequest([_im.ImagenInstance(req.prompt)], params))


def imagen_response(bytes body, str provider, bint as_url=False):
    cdef list images = []
    cdef list revised = []
    cdef list filtered = []
    mime = None
    for prediction in _im_imagen_decoder.decode(body).predictions:
        if prediction.bytesBase64Encoded:
            images.append(prediction.bytesBase64Encoded)
            revised.append(prediction.prompt)
            mime = mime or prediction.mimeType
        else:
            filtered.append(prediction.raiFilteredReason or "no image")
    if not images and not filtered:
        filtered.append("Imagen returned no image")  # every one filtered, no reason given
    fmt = "jpeg" if mime == "image/jpeg" else "png"
    return _im_answer(images, revised, filtered, as_url, fmt, provider)


# ---- OpenAI's answer -----------------------------------------------------------------------------

def image_answer_format(bytes body, object overrides=None):
    """``(as_url, output format)`` of a request, read again for its answer."""
    fmt = _im_format_decoder.decode(body)
    response_format, output_format = fmt.response_format, fmt.output_format
    if overrides:
        response_format = overrides.get("response_format", response_format)
        output_format = overrides.get("output_format", output_format)
    return response_format == "url", output_format if output_format in _IM_MIME else "png"


cdef bytes _im_answer(list images, object revised, list filtered, bint as_url, str fmt, str provider):
    if not images:
        reason = "; ".join(filtered) if filtered else "no image"
        raise _im_GatewayError(
            400, f"{provider} error: the image was filtered by the provider's safety system ({reason})",
            code="content_policy_violation", provider=provider)
    cdef list data = []
    prefix = f"data:{_IM_MIME[fmt]};base64," if as_url else None
    for i, image in enumerate(images):
        item = _ImObject(url=prefix + image) if as_url else _ImObject(b64_json=image)
        if revised is not None and revised[i]:
            item.revised_prompt = revised[i]
        data.append(item)
    return _chunk_encode_json(_im.ImagesAnswer(int(_im_time.time()), data, fmt, provider))
