"""What OpenAI answers a malformed request, so the mock answers the same (a 400 and its body).

Messages, ``param`` and ``code`` are OpenAI's own, as its API returns them (Chat Completions,
Completions and Embeddings; ``invalid_request_error`` throughout): a missing model is "you must
provide a model parameter" with no param; a missing or mistyped field is
``missing_required_parameter`` / ``invalid_type`` naming its path (``messages[0].role``); a value
outside an enumeration is ``invalid_value``; a number out of range is
``decimal_above_max_value`` and its kin. Parameters the mock does not know are let through,
unlike OpenAI: a gateway passes new parameters on, and the mock's own ``mock`` field rides along.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

ROLES = ("system", "assistant", "user", "function", "tool", "developer")
PART_TYPES = ("text", "image_url", "input_audio", "refusal", "audio", "file")
TOOL_CHOICES = ("none", "auto", "required")
#: ``any``: Mistral's spelling of ``required`` (the mock answers for every OpenAI-compatible API).
_OTHER_TOOL_CHOICES = ("any",)
RESPONSE_FORMATS = ("json_object", "json_schema", "text")
ENCODINGS = ("float", "base64")
#: The API reference's bounds for the sampling parameters.
_BOUNDS: dict[str, tuple[float, float | None]] = {
    "temperature": (0, 2),
    "top_p": (0, 1),
    "presence_penalty": (-2, 2),
    "frequency_penalty": (-2, 2),
    "n": (1, 128),
    "max_tokens": (1, None),
    "max_completion_tokens": (1, None),
    "top_logprobs": (0, 20),
    "dimensions": (1, None),
    "best_of": (0, 20),
}


_DECIMALS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})


class Invalid(NamedTuple):
    message: str
    param: str | None
    code: str | None


def _kind(value: Any) -> str:
    """A JSON value's type as OpenAI's messages name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is(value: Any, expected: str) -> bool:
    if expected == "a decimal":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if expected == "an integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "a boolean":
        return isinstance(value, bool)
    if expected == "a string":
        return isinstance(value, str)
    if expected == "an object":
        return isinstance(value, dict)
    if expected == "an array of objects":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    return True


def _type_error(param: str, expected: str, value: Any) -> Invalid:
    return Invalid(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param,
        "invalid_type",
    )


def _missing(param: str) -> Invalid:
    return Invalid(f"Missing required parameter: '{param}'.", param, "missing_required_parameter")


def _not_one_of(param: str, value: Any, allowed: tuple[str, ...]) -> Invalid:
    listed = (
        ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'"
        if len(allowed) > 2
        else " and ".join(f"'{a}'" for a in allowed)
    )
    return Invalid(f"Invalid value: '{value}'. Supported values are: {listed}.", param, "invalid_value")


def _bounds(param: str, value: float) -> Invalid | None:
    low, high = _BOUNDS[param]
    noun = "decimal" if param in _DECIMALS else "integer"
    if value < low:
        side, sign, bound, code = "below minimum", ">=", low, "below_min"
    elif high is not None and value > high:
        side, sign, bound, code = "above maximum", "<=", high, "above_max"
    else:
        return None
    message = (
        f"Invalid '{param}': {noun} {side} value. Expected a value {sign} {bound}, but got {value} instead."
    )
    return Invalid(message, param, f"{noun}_{code}_value")


def _typed(request: dict[str, Any], types: dict[str, str]) -> Invalid | None:
    """Each present, non-null parameter of the right type, and numbers within their bounds."""
    for param, expected in types.items():
        value = request.get(param)
        if value is None:
            continue
        if not _is(value, expected):
            return _type_error(param, expected, value)
        if param in _BOUNDS:
            problem = _bounds(param, value)
            if problem:
                return problem
    return None


def _model(request: dict[str, Any]) -> Invalid | None:
    model = request.get("model")
    if model is None or model == "":
        return Invalid("you must provide a model parameter", None, None)
    if not isinstance(model, str):
        return _type_error("model", "a string", model)
    return None


CHAT_TYPES = {
    "temperature": "a decimal",
    "top_p": "a decimal",
    "presence_penalty": "a decimal",
    "frequency_penalty": "a decimal",
    "n": "an integer",
    "max_tokens": "an integer",
    "max_completion_tokens": "an integer",
    "seed": "an integer",
    "logprobs": "a boolean",
    "top_logprobs": "an integer",
    "stream": "a boolean",
    "store": "a boolean",
    "parallel_tool_calls": "a boolean",
    "user": "a string",
    "tools": "an array of objects",
    "response_format": "an object",
    "stream_options": "an object",
    "metadata": "an object",
    "logit_bias": "an object",
}
COMPLETION_TYPES = {
    "temperature": "a decimal",
    "top_p": "a decimal",
    "presence_penalty": "a decimal",
    "frequency_penalty": "a decimal",
    "n": "an integer",
    "best_of": "an integer",
    "max_tokens": "an integer",
    "seed": "an integer",
    "logprobs": "an integer",
    "echo": "a boolean",
    "stream": "a boolean",
    "suffix": "a string",
    "user": "a string",
    "stream_options": "an object",
}


def _message(message: Any, at: str) -> Invalid | None:
    if not isinstance(message, dict):
        return _type_error(at, "an object", message)
    role = message.get("role")
    if role is None:
        return _missing(f"{at}.role")
    if role not in ROLES:
        return _not_one_of(f"{at}.role", role, ROLES)
    content = message.get("content")
    if content is None:
        if role == "assistant" and (message.get("tool_calls") or message.get("function_call")):
            pass
        elif "content" not in message:
            return _missing(f"{at}.content")
        elif role != "assistant":
            return _type_error(f"{at}.content", "one of a string or array of objects", content)
    elif isinstance(content, list):
        for j, part in enumerate(content):
            where = f"{at}.content[{j}]"
            if not isinstance(part, dict):
                return _type_error(where, "an object", part)
            if "type" not in part:
                return _missing(f"{where}.type")
            if part["type"] not in PART_TYPES:
                return _not_one_of(f"{where}.type", part["type"], PART_TYPES)
    elif not isinstance(content, str):
        return _type_error(f"{at}.content", "one of a string or array of objects", content)
    if role == "tool" and not message.get("tool_call_id"):
        return _missing(f"{at}.tool_call_id")
    return None


def _tools(request: dict[str, Any]) -> Invalid | None:
    tools = request.get("tools")
    for i, tool in enumerate(tools or ()):
        if tool.get("type", "function") == "function":
            function = tool.get("function")
            if not isinstance(function, dict):
                return (
                    _missing(f"tools[{i}].function")
                    if function is None
                    else _type_error(f"tools[{i}].function", "an object", function)
                )
            if not function.get("name"):
                return _missing(f"tools[{i}].function.name")
    choice = request.get("tool_choice")
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in TOOL_CHOICES and choice not in _OTHER_TOOL_CHOICES:
            return _not_one_of("tool_choice", choice, TOOL_CHOICES)
    elif isinstance(choice, dict):
        if choice.get("type") == "function" or "function" in choice:
            function = choice.get("function")
            if not isinstance(function, dict):
                return _missing("tool_choice.function")
            if not function.get("name"):
                return _missing("tool_choice.function.name")
    else:
        return _type_error("tool_choice", "one of one of 'none', 'auto', or 'required' or object", choice)
    if not tools and choice != "none":
        return Invalid(
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.",
            "tool_choice",
            None,
        )
    return None


def _response_format(request: dict[str, Any]) -> Invalid | None:
    form = request.get("response_format")
    if form is None:
        return None
    kind = form.get("type")
    if kind is None:
        return _missing("response_format.type")
    if kind not in RESPONSE_FORMATS:
        return _not_one_of("response_format.type", kind, RESPONSE_FORMATS)
    if kind == "json_schema" and not isinstance(form.get("json_schema"), dict):
        return _missing("response_format.json_schema")
    return None


def _stream_options(request: dict[str, Any]) -> Invalid | None:
    if request.get("stream_options") is not None and not request.get("stream"):
        return Invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", None
        )
    return None


#: ``audio.format`` values of chat audio output (openai SDK ``ChatCompletionAudioParam``).
AUDIO_FORMATS = ("wav", "aac", "mp3", "flac", "opus", "pcm16")


def _audio(request: dict[str, Any]) -> Invalid | None:
    """Audio output: ``modalities`` with ``audio`` needs the ``audio`` parameter and its fields."""
    modalities = request.get("modalities")
    if modalities is None:
        return None
    if not isinstance(modalities, list) or not all(m in ("text", "audio") for m in modalities):
        return _type_error("modalities", "an array of 'text' or 'audio'", modalities)
    audio = request.get("audio")
    if "audio" not in modalities:
        return None
    if not isinstance(audio, dict):
        return _missing("audio") if audio is None else _type_error("audio", "an object", audio)
    if "voice" not in audio:
        return _missing("audio.voice")
    if "format" not in audio:
        return _missing("audio.format")
    if audio["format"] not in AUDIO_FORMATS:
        return _not_one_of("audio.format", audio["format"], AUDIO_FORMATS)
    return None


def _chat(request: dict[str, Any]) -> Invalid | None:
    if problem := _model(request):
        return problem
    messages = request.get("messages")
    if messages is None:
        return _missing("messages")
    if not isinstance(messages, list):
        return _type_error("messages", "an array of objects", messages)
    if not messages:
        return Invalid(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty "
            "array instead.",
            "messages",
            "empty_array",
        )
    for i, message in enumerate(messages):
        if problem := _message(message, f"messages[{i}]"):
            return problem
    return (
        _typed(request, CHAT_TYPES)
        or _tools(request)
        or _response_format(request)
        or _stream_options(request)
        or _audio(request)
    )


def _completion(request: dict[str, Any]) -> Invalid | None:
    if problem := _model(request):
        return problem
    prompt = request.get("prompt")
    if prompt is None:
        return _missing("prompt")
    if not isinstance(prompt, str | list):
        return _type_error("prompt", "one of a string or array", prompt)
    return _typed(request, COMPLETION_TYPES) or _stream_options(request)


def _embedding(request: dict[str, Any]) -> Invalid | None:
    if problem := _model(request):
        return problem
    value = request.get("input")
    if value is None:
        return _missing("input")
    if value == "" or value == [] or not isinstance(value, str | list):
        # OpenAI's own words for an input it cannot embed.
        return Invalid(
            "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference.",
            None,
            None,
        )
    encoding = request.get("encoding_format")
    if encoding is not None and encoding not in ENCODINGS:
        return _not_one_of("encoding_format", encoding, ENCODINGS)
    return _typed(request, {"dimensions": "an integer", "user": "a string"})


# ---- images and moderations (Images API reference; the SDK's ImageGenerateParams) -----------------

#: Sizes the retired DALL-E models take; GPT image models take ``auto`` or any WxH in steps of 16.
DALLE_SIZES = {
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
}
IMAGE_QUALITIES = {"dall-e-2": ("standard",), "dall-e-3": ("standard", "hd")}
GPT_IMAGE_QUALITIES = ("low", "medium", "high", "xhigh", "max", "auto")
IMAGE_FORMATS = ("png", "jpeg", "webp")
BACKGROUNDS = ("transparent", "opaque", "auto")
IMAGE_TYPES = {"n": "an integer", "prompt": "a string", "user": "a string", "stream": "a boolean"}


def is_dalle(model: str) -> bool:
    return model.startswith("dall-e")


def _image_size(model: str, size: Any) -> Invalid | None:
    if is_dalle(model):
        allowed = DALLE_SIZES.get(model, DALLE_SIZES["dall-e-2"])
        return None if size in allowed else _not_one_of("size", size, allowed)
    width, sep, height = str(size).partition("x")
    if size == "auto" or (
        sep and width.isdigit() and height.isdigit() and int(width) % 16 == int(height) % 16 == 0
    ):
        return None
    return Invalid(
        f"Invalid value: '{size}'. Supported values are 'auto' and WIDTHxHEIGHT with both divisible by 16.",
        "size",
        "invalid_value",
    )


def images(request: dict[str, Any], *, prompt: bool = True) -> Invalid | None:
    """An images request (generation, edit or variation, the form fields of the last two
    already read into ``request``)."""
    if prompt and request.get("prompt") in (None, ""):
        return _missing("prompt")
    if problem := _typed(request, IMAGE_TYPES):
        return problem
    model = str(request.get("model") or "dall-e-2")
    n = request.get("n")
    if n is not None and not 1 <= n <= (1 if model == "dall-e-3" else 10):
        high = 1 if model == "dall-e-3" else 10
        return Invalid(
            f"Invalid 'n': integer out of range. Expected a value between 1 and {high}, but got {n} instead.",
            "n",
            "integer_out_of_range",
        )
    if request.get("size") is not None and (problem := _image_size(model, request["size"])):
        return problem
    quality = request.get("quality")
    qualities = IMAGE_QUALITIES.get(model, ("standard",)) if is_dalle(model) else GPT_IMAGE_QUALITIES
    if quality is not None and quality not in qualities:
        return _not_one_of("quality", quality, qualities)
    form = request.get("response_format")
    if form is not None and not is_dalle(model):
        return Invalid("Unknown parameter: 'response_format'.", "response_format", "unknown_parameter")
    if form is not None and form not in ("url", "b64_json"):
        return _not_one_of("response_format", form, ("url", "b64_json"))
    style = request.get("style")
    if style is not None and style not in ("vivid", "natural"):
        return _not_one_of("style", style, ("vivid", "natural"))
    for param, allowed in (("output_format", IMAGE_FORMATS), ("background", BACKGROUNDS)):
        value = request.get(param)
        if value is not None and value not in allowed:
            return _not_one_of(param, value, allowed)
    if request.get("stream") and is_dalle(model):
        return Invalid("Streaming is not supported for this model.", "stream", "unsupported_value")
    return None


def _moderation(request: dict[str, Any]) -> Invalid | None:
    value = request.get("input")
    if value is None:
        return _missing("input")
    if not isinstance(value, str | list):
        return _type_error("input", "one of a string, array of strings or array of objects", value)
    return _typed(request, {"model": "a string"})


_CHECKS: dict[str, Callable[[dict[str, Any]], Invalid | None]] = {
    "chat/completions": _chat,
    "completions": _completion,
    "embeddings": _embedding,
    "images/generations": images,
    "moderations": _moderation,
}


def invalid_request(endpoint: str, request: dict[str, Any]) -> Invalid | None:
    """The first thing OpenAI would refuse in a request to ``endpoint``, or None."""
    check = _CHECKS.get(endpoint)
    return check(request) if check is not None else None
