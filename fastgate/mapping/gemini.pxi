# Google Gemini (Gemini API v1beta and Vertex AI v1, publisher google) <-> OpenAI.
#
# One JSON shape serves both hosts: GenerateContentRequest / GenerateContentResponse
# (https://ai.google.dev/api/generate-content, https://cloud.google.com/vertex-ai/generative-ai/docs/
# reference/rest/v1/projects.locations.endpoints/generateContent). Every name in this include is
# prefixed ``_gm``/``gemini`` because all mapping includes share one module namespace.
#
# Where we deliberately differ from Portkey (reference §5.3): every system/developer message
# reaches ``systemInstruction``; a candidate that calls a function finishes ``tool_calls``; legacy
# ``role: function`` messages are mapped; a tool result is named after the call it answers; every
# stream ends with ``[DONE]``.

import base64 as _gm_base64
import os as _gm_os
from urllib.parse import unquote_to_bytes as _gm_unquote_to_bytes

from fastgate.errors import (
    ErrorBody as _gm_ErrorBody,
    ErrorDetail as _gm_ErrorDetail,
    GatewayError as _gm_GatewayError,
    type_for_status as _gm_type_for_status,
)
from fastgate.schema import gemini as _gm
from fastgate.schema.openai import (
    AssistantMessage as _gm_AssistantMessage,
    AudioPart as _gm_AudioPart,
    ChatCompletion as _gm_ChatCompletion,
    ChatRequest as _gm_ChatRequest,
    Choice as _gm_Choice,
    CompletionRequest as _gm_CompletionRequest,
    CompletionTokensDetails as _gm_CompletionTokensDetails,
    Embedding as _gm_Embedding,
    EmbeddingList as _gm_EmbeddingList,
    EmbeddingRequest as _gm_EmbeddingRequest,
    EmbeddingUsage as _gm_EmbeddingUsage,
    FilePart as _gm_FilePart,
    FunctionCall as _gm_OAFunctionCall,
    ImagePart as _gm_ImagePart,
    PromptTokensDetails as _gm_PromptTokensDetails,
    TextChoice as _gm_TextChoice,
    TextCompletion as _gm_TextCompletion,
    TextPart as _gm_TextPart,
    ToolCall as _gm_OAToolCall,
    chat_decoder as _gm_chat_decoder,
    completion_decoder as _gm_completion_decoder,
    embedding_decoder as _gm_embedding_decoder,
    object_decoder as _gm_object_decoder,
)

cdef object _gm_response_decoder = _msgspec.json.Decoder(_gm.GenerateContentResponse)
cdef object _gm_error_decoder = _msgspec.json.Decoder(_gm.ErrorEnvelope)
cdef object _gm_embed_decoder = _msgspec.json.Decoder(_gm.BatchEmbedContentsResponse)
cdef object _gm_predict_decoder = _msgspec.json.Decoder(_gm.PredictResponse)
cdef object _gm_convert = _msgspec.convert
cdef object _gm_DecodeError = _msgspec.DecodeError
cdef object _gm_Part = _gm.Part
cdef object _gm_Content = _gm.Content

# Ids without a syscall per answer: a random per-process prefix and a counter.
cdef str _gm_id_prefix = _gm_os.urandom(6).hex()
cdef unsigned long long _gm_id_count = 0


cdef inline str _gm_next_id(str kind):
    global _gm_id_count
    _gm_id_count += 1
    return f"{kind}-{_gm_id_prefix}{_gm_id_count:x}"


# Candidate.FinishReason (https://ai.google.dev/api/generate-content#FinishReason) -> OpenAI.
# Everything that withholds content for policy reasons is ``content_filter``; reasons that mean
# "the model stopped" without a better OpenAI word are ``stop``; unknown future values are ``stop``.
cdef dict _GM_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "LANGUAGE": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "OTHER": "stop",
    "FINISH_REASON_UNSPECIFIED": "stop",
    "MALFORMED_FUNCTION_CALL": "stop",
}

# google.rpc.Code names (https://cloud.google.com/apis/design/errors#handling_errors) -> OpenAI type.
cdef dict _GM_ERROR_TYPES = {
    "INVALID_ARGUMENT": "invalid_request_error",
    "FAILED_PRECONDITION": "invalid_request_error",
    "OUT_OF_RANGE": "invalid_request_error",
    "UNAUTHENTICATED": "authentication_error",
    "PERMISSION_DENIED": "permission_error",
    "NOT_FOUND": "not_found_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
    "DEADLINE_EXCEEDED": "timeout_error",
}

# Keys of Gemini's ``Schema`` (an OpenAPI 3.0 subset: https://ai.google.dev/api/caching#Schema) we
# copy as they are. Everything else a JSON schema may hold is dropped because Gemini rejects
# unknown keys: ``$schema``, ``$id``, ``$defs``/``definitions`` (their ``$ref``s are inlined),
# ``additionalProperties``, ``patternProperties``, ``allOf``, ``not``, ``if``/``then``/``else``,
# ``examples``, ``strict``, ``exclusiveMinimum``/``exclusiveMaximum``, ``multipleOf``,
# ``uniqueItems``, ``contentEncoding``. ``type`` is upper-cased to the ``Type`` enum, a
# ``["x", "null"]`` type or a ``{"type": "null"}`` branch becomes ``nullable``, ``oneOf`` is sent
# as ``anyOf`` (Gemini has no exclusive union) and ``const`` as a one-value ``enum``.
cdef frozenset _GM_SCHEMA_KEYS = frozenset({
    "format", "title", "description", "nullable", "maxItems", "minItems", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example",
    "propertyOrdering", "default", "minimum", "maximum",
})
cdef int _GM_MAX_REF_DEPTH = 32

# File extension -> MIME type for ``fileData`` URIs without ``image_url.mime_type`` (Gemini needs
# the type: https://ai.google.dev/gemini-api/docs/image-understanding#supported-formats).
cdef dict _GM_MIME = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp",
    "gif": "image/gif", "heic": "image/heic", "heif": "image/heif", "pdf": "application/pdf",
    "txt": "text/plain", "mp3": "audio/mp3", "wav": "audio/wav", "flac": "audio/flac",
    "ogg": "audio/ogg", "aac": "audio/aac", "mp4": "video/mp4", "mov": "video/mov",
    "webm": "video/webm", "mpeg": "video/mpeg",
}

# OpenAI ``input_audio.format`` -> the MIME type Gemini reads it as (audio understanding guide,
# https://ai.google.dev/gemini-api/docs/audio#supported-formats: WAV, MP3, AIFF, AAC, OGG Vorbis,
# FLAC). OpenAI itself takes wav and mp3; the other four reach Gemini through this gateway too.
cdef dict _GM_AUDIO_MIME = {
    "wav": "audio/wav", "mp3": "audio/mp3", "aiff": "audio/aiff", "aac": "audio/aac",
    "ogg": "audio/ogg", "flac": "audio/flac",
}

# reasoning_effort -> thinkingBudget, the table of Google's own OpenAI-compatibility layer
# (https://ai.google.dev/gemini-api/docs/openai#thinking).
cdef dict _GM_EFFORT_BUDGET = {"none": 0, "low": 1024, "medium": 8192, "high": 24576}


cdef inline object _gm_bad(str message, object param=None):
    return _gm_GatewayError(400, message, param=param)


# ---- JSON schema -> Gemini Schema --------------------------------------------------------------

cdef object _gm_schema(object node, dict defs, int depth):
    if not isinstance(node, dict):
        return node
    cdef dict src = <dict>node
    cdef dict out = {}
    ref = src.get("$ref")
    if isinstance(ref, str):
        if depth >= _GM_MAX_REF_DEPTH:
            raise _gm_bad("response/tool schema: $ref nesting is too deep (recursive schemas are "
                          "not supported by Gemini)")
        target = defs.get(ref.rpartition("/")[2]) if ref.startswith(("#/$defs/", "#/definitions/")) else None
        if target is None:
            raise _gm_bad(f"response/tool schema: cannot resolve $ref {ref!r}")
        resolved = _gm_schema(target, defs, depth + 1)
        if "description" in src and isinstance(resolved, dict):
            resolved["description"] = src["description"]
        return resolved
    for key, value in src.items():
        if key == "type":
            if isinstance(value, list):
                kinds = [v for v in value if v != "null"]
                if len(kinds) != len(value):
                    out["nullable"] = True
                if kinds:
                    out["type"] = str(kinds[0]).upper()
            elif value == "null":
                out["nullable"] = True
            else:
                out["type"] = str(value).upper()
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {name: _gm_schema(sub, defs, depth) for name, sub in value.items()}
        elif key == "items":
            out["items"] = _gm_schema(value, defs, depth)
        elif key == "anyOf" or key == "oneOf":
            branches = []
            for branch in value:
                if isinstance(branch, dict) and branch.get("type") == "null" and len(branch) == 1:
                    out["nullable"] = True
                else:
                    branches.append(_gm_schema(branch, defs, depth))
            if len(branches) == 1 and isinstance(branches[0], dict):
                for k, v in branches[0].items():
                    out.setdefault(k, v)
            elif branches:
                out["anyOf"] = branches
        elif key == "enum":
            out["enum"] = [v if isinstance(v, str) else str(v) for v in value if v is not None]
        elif key == "const":
            out["enum"] = [value if isinstance(value, str) else str(value)]
        elif key in _GM_SCHEMA_KEYS:
            out[key] = value
    return out


cdef object _gm_root_schema(object schema):
    if not isinstance(schema, dict):
        return None
    defs = {}
    for key in ("definitions", "$defs"):
        found = schema.get(key)
        if isinstance(found, dict):
            defs.update(found)
    return _gm_schema(schema, defs, 0)


# ---- request: messages -> contents -------------------------------------------------------------

cdef inline str _gm_text_of(object content):
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join([p.text for p in content if type(p) is _gm_TextPart])


cdef inline str _gm_mime_from_uri(str uri):
    # (No negative indexing: the module is compiled with wraparound off.)
    path = uri.partition("?")[0].partition("#")[0]
    last = path.rpartition("/")[2]
    if "." not in last:
        return "image/jpeg"
    return _GM_MIME.get(last.rpartition(".")[2].lower(), "image/jpeg")


cdef object _gm_uri_part(str url, object mime_type, str field):
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        if not sep:
            raise _gm_bad(f"{field}: malformed data: URL", field)
        mime = header.split(";", 1)[0] or "application/octet-stream"
        if not header.endswith(";base64"):
            data = _gm_base64.b64encode(_gm_unquote_to_bytes(data)).decode("ascii")
        return _gm_Part(inline_data=_gm.Blob(mime, data))
    if url.startswith(("https://", "http://", "gs://")):
        return _gm_Part(file_data=_gm.FileData(mime_type or _gm_mime_from_uri(url), url))
    raise _gm_bad(f"{field}: expected a data: URL or an http(s):// or gs:// URI", field)


cdef object _gm_audio_part(object audio):
    """``input_audio`` (base64 ``data`` and a ``format``) as inline data of its MIME type; a
    ``data:`` URL in ``data`` brings its own."""
    if audio.data.startswith("data:"):
        return _gm_uri_part(audio.data, None, "input_audio.data")
    mime = _GM_AUDIO_MIME.get(audio.format.lower())
    if mime is None:
        raise _gm_bad(f"messages: input_audio format {audio.format!r}: Gemini reads "
                      f"{', '.join(_GM_AUDIO_MIME)}", "messages")
    return _gm_Part(inline_data=_gm.Blob(mime, audio.data))


cdef list _gm_user_parts(object content):
    if content is None:
        return []
    if isinstance(content, str):
        return [_gm_Part(text=content)] if content else []
    cdef list parts = []
    for p in content:
        kind = type(p)
        if kind is _gm_TextPart:
            if p.text:
                parts.append(_gm_Part(text=p.text))
        elif kind is _gm_ImagePart:
            parts.append(_gm_uri_part(p.image_url.url, p.image_url.mime_type, "image_url"))
        elif kind is _gm_AudioPart:
            parts.append(_gm_audio_part(p.input_audio))
        elif kind is _gm_FilePart:
            ref = p.file
            if ref.file_data:
                parts.append(_gm_uri_part(ref.file_data, None, "file.file_data"))
            elif ref.file_id:
                mime = _gm_mime_from_uri(ref.filename or ref.file_id)
                parts.append(_gm_Part(file_data=_gm.FileData(mime, ref.file_id)))
    return parts


cdef inline object _gm_args(str arguments, str name):
    if not arguments or arguments.isspace():
        return {}
    try:
        return _gm_object_decoder.decode(arguments)
    except (_gm_DecodeError, _msgspec.ValidationError):
        raise _gm_bad(f"messages: arguments of the call to {name!r} are not a JSON object") from None


cdef inline void _gm_add(list contents, str role, list parts):
    if not parts:
        return
    if contents:
        last = contents[len(contents) - 1]
        if last.role == role:
            last.parts.extend(parts)
            return
    contents.append(_gm_Content(parts, role))


cdef inline object _gm_signature_in(object extra):
    """The thought signature a client echoes on a tool call, where Google's own OpenAI layer puts
    it: ``extra_content.google.thought_signature`` (https://ai.google.dev/gemini-api/docs/
    thought-signatures#openai). Gemini 3 refuses a function-call turn sent back without it."""
    if not isinstance(extra, dict):
        return _UNSET
    google = (<dict>extra).get("google")
    if not isinstance(google, dict):
        return _UNSET
    signature = (<dict>google).get("thought_signature")
    return signature if isinstance(signature, str) else _UNSET


cdef inline object _gm_signature_out(object part):
    return {"google": {"thought_signature": part.thought_signature}} if part.thought_signature else _UNSET


cdef tuple _gm_contents(list messages):
    """(contents, systemInstruction): roles mapped, same-role turns merged, tool results named."""
    cdef list contents = []
    cdef list system = []
    cdef dict call_names = {}
    for m in messages:
        role = m.role
        if role == "user":
            _gm_add(contents, "user", _gm_user_parts(m.content))
        elif role == "assistant":
            parts = []
            text = _gm_text_of(m.content)
            if text:
                parts.append(_gm_Part(text=text))
            if m.tool_calls:
                for call in m.tool_calls:
                    fn = call.function
                    call_names[call.id] = fn.name
                    parts.append(_gm_Part(function_call=_gm.FunctionCall(fn.name, _gm_args(fn.arguments, fn.name)),
                                          thought_signature=_gm_signature_in(call.extra_content)))
            elif m.function_call is not None:
                fn = m.function_call
                parts.append(_gm_Part(function_call=_gm.FunctionCall(fn.name, _gm_args(fn.arguments, fn.name))))
            _gm_add(contents, "model", parts)
        elif role == "system" or role == "developer":
            # Every system message is kept, in order (Portkey keeps only the first one).
            if isinstance(m.content, str):
                if m.content:
                    system.append(_gm_Part(text=m.content))
            elif m.content:
                system.extend([_gm_Part(text=p.text) for p in m.content if type(p) is _gm_TextPart and p.text])
        else:
            # role tool (answers tool_call_id) or legacy role function (answers by name). Function
            # responses go in a user turn (https://ai.google.dev/gemini-api/docs/function-calling).
            name = call_names.get(m.tool_call_id) if m.tool_call_id else None
            if name is None:
                name = m.name
            if not name:
                raise _gm_bad(
                    f"messages: {role} message {m.tool_call_id or ''!s} answers no earlier assistant "
                    "tool call; Gemini needs the function name", "messages")
            response = _gm.FunctionResponse(name, {"output": _gm_text_of(m.content)})
            _gm_add(contents, "user", [_gm_Part(function_response=response)])
    instruction = _gm_Content(system) if system else _UNSET
    return contents, instruction


# ---- request: parameters -----------------------------------------------------------------------

cdef object _gm_thinking(object thinking, object effort):
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return _gm.ThinkingConfig(thinking_budget=0)
        budget = thinking.get("budget_tokens")
        return _gm.ThinkingConfig(
            include_thoughts=True, thinking_budget=budget if isinstance(budget, int) else _UNSET)
    if effort is not None:
        budget = _GM_EFFORT_BUDGET.get(effort)
        if budget is not None:
            return _gm.ThinkingConfig(thinking_budget=budget)
    return _UNSET


cdef object _gm_generation_config(object r, object max_tokens):
    """Only parameters Gemini's GenerationConfig takes; the rest (logit_bias, user, logprobs,
    parallel_tool_calls, metadata) are dropped."""
    config = _gm.GenerationConfig()
    cdef bint any_set = False
    if r.temperature is not None:
        config.temperature = r.temperature
        any_set = True
    if r.top_p is not None:
        config.top_p = r.top_p
        any_set = True
    if getattr(r, "top_k", None) is not None:
        config.top_k = r.top_k
        any_set = True
    if max_tokens is not None:
        config.max_output_tokens = max_tokens
        any_set = True
    if r.stop:
        config.stop_sequences = [r.stop] if isinstance(r.stop, str) else list(r.stop)
        any_set = True
    if r.n is not None:
        config.candidate_count = r.n
        any_set = True
    if r.seed is not None:
        config.seed = r.seed
        any_set = True
    if r.presence_penalty is not None:
        config.presence_penalty = r.presence_penalty
        any_set = True
    if r.frequency_penalty is not None:
        config.frequency_penalty = r.frequency_penalty
        any_set = True
    fmt = getattr(r, "response_format", None)
    if fmt is not None and fmt.type != "text":
        config.response_mime_type = "application/json"
        if fmt.type == "json_schema" and fmt.json_schema is not None and fmt.json_schema.schema:
            config.response_schema = _gm_root_schema(fmt.json_schema.schema)
        any_set = True
    thinking = _gm_thinking(getattr(r, "thinking", None), getattr(r, "reasoning_effort", None))
    if thinking is not _UNSET:
        config.thinking_config = thinking
        any_set = True
    return config if any_set else _UNSET


# Function names that ask for one of Google's built-in tools instead (Portkey's convention, both
# spellings): a client can only name tools through OpenAI's ``function`` shape.
cdef dict _GM_NATIVE_TOOLS = {
    "googleSearch": "google_search", "google_search": "google_search",
    "googleSearchRetrieval": "google_search_retrieval",
    "google_search_retrieval": "google_search_retrieval",
    "codeExecution": "code_execution", "code_execution": "code_execution",
    "urlContext": "url_context", "url_context": "url_context",
    "googleMaps": "google_maps", "google_maps": "google_maps",
}


cdef tuple _gm_tools(list tools):
    """(tools, has function declarations)."""
    cdef list declarations = []
    cdef list out = []
    for tool in tools:
        fn = tool.function
        if tool.type != "function" or fn is None:
            continue
        native = _GM_NATIVE_TOOLS.get(fn.name)
        if native is not None:
            out.append(_gm.Tool(**{native: {}}))
            continue
        decl = _gm.FunctionDeclaration(fn.name)
        if fn.description:
            decl.description = fn.description
        params = _gm_root_schema(fn.parameters)
        # An OBJECT with no properties is refused by Gemini; a function without arguments simply
        # has no ``parameters`` (https://ai.google.dev/api/caching#FunctionDeclaration).
        if params and params.get("properties"):
            decl.parameters = params
        declarations.append(decl)
    if declarations:
        out.insert(0, _gm.Tool(function_declarations=declarations))
    return (out if out else _UNSET), bool(declarations)


cdef object _gm_tool_config(object choice):
    # FunctionCallingConfig.Mode: https://ai.google.dev/api/caching#Mode
    if choice is None:
        return _UNSET
    if isinstance(choice, str):
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        return _gm.ToolConfig(_gm.FunctionCallingConfig(mode))
    return _gm.ToolConfig(_gm.FunctionCallingConfig("ANY", [choice.function.name]))


cdef inline object _gm_decode_request(bytes body, object overrides, object decoder, object kind):
    try:
        if overrides:
            params = _gm_object_decoder.decode(body)
            params.update(overrides)
            return _gm_convert(params, kind)
        return decoder.decode(body)
    except _msgspec.ValidationError as exc:
        raise _gm_bad(f"Invalid request body: {exc}") from None
    except _gm_DecodeError as exc:
        raise _gm_bad(f"Request body is not valid JSON: {exc}") from None


def gemini_chat_request(bytes body, object overrides=None):
    """An OpenAI chat body (plus a config's ``override_params``) -> (model, Gemini request JSON)."""
    r = _gm_decode_request(body, overrides, _gm_chat_decoder, _gm_ChatRequest)
    contents, instruction = _gm_contents(r.messages)
    if not contents:
        raise _gm_bad("messages: Gemini needs at least one user, assistant or tool message", "messages")
    req = _gm.GenerateContentRequest(contents, system_instruction=instruction)
    if r.tools:
        req.tools, functions = _gm_tools(r.tools)
        if functions:  # functionCallingConfig governs declared functions only
            req.tool_config = _gm_tool_config(r.tool_choice)
    max_tokens = r.max_completion_tokens if r.max_completion_tokens is not None else r.max_tokens
    req.generation_config = _gm_generation_config(r, max_tokens)
    return r.model, _encode_json(req)


def gemini_completion_request(bytes body, object overrides=None):
    """A legacy ``/v1/completions`` body -> (model, Gemini request JSON): the prompt is one user turn."""
    r = _gm_decode_request(body, overrides, _gm_completion_decoder, _gm_CompletionRequest)
    prompt = r.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise _gm_bad("prompt: Gemini takes exactly one prompt string per request", "prompt")
        prompt = prompt[0]
    if not prompt:
        raise _gm_bad("prompt is required", "prompt")
    req = _gm.GenerateContentRequest([_gm_Content([_gm_Part(text=prompt)], "user")])
    req.generation_config = _gm_generation_config(r, r.max_tokens)
    return r.model, _encode_json(req)


cdef tuple _gm_embed_inputs(bytes body, object overrides):
    r = _gm_decode_request(body, overrides, _gm_embedding_decoder, _gm_EmbeddingRequest)
    inputs = [r.input] if isinstance(r.input, str) else r.input
    if not inputs or not all(isinstance(x, str) for x in inputs):
        raise _gm_bad("input: Gemini embeds strings (or a list of strings), not token arrays", "input")
    task = r.input_type.upper() if r.input_type else _UNSET
    dims = r.dimensions if r.dimensions is not None else _UNSET
    return r, inputs, task, dims


def gemini_embed_request(bytes body, object overrides=None):
    """An OpenAI embeddings body -> (model, encoding_format, batchEmbedContents JSON)."""
    r, inputs, task, dims = _gm_embed_inputs(body, overrides)
    model = r.model or ""
    name = model if model.startswith("models/") else "models/" + model
    requests = [
        _gm.EmbedContentRequest(name, _gm_Content([_gm_Part(text=text)]), task_type=task,
                                output_dimensionality=dims)
        for text in inputs
    ]
    return r.model, r.encoding_format, _encode_json(_gm.BatchEmbedContentsRequest(requests))


def vertex_embed_request(bytes body, object overrides=None):
    """An OpenAI embeddings body -> (model, encoding_format, Vertex ``:predict`` JSON)."""
    r, inputs, task, dims = _gm_embed_inputs(body, overrides)
    instances = [_gm.PredictInstance(text, task_type=task) for text in inputs]
    params = _gm.PredictParameters(output_dimensionality=dims) if dims is not _UNSET else _UNSET
    return r.model, r.encoding_format, _encode_json(_gm.PredictRequest(instances, params))


# ---- response ----------------------------------------------------------------------------------

cdef object _gm_usage(object u):
    """UsageMetadata -> Usage. ``candidatesTokenCount`` excludes thinking, OpenAI's
    ``completion_tokens`` includes reasoning, so thoughts are added to it (and reported again as
    ``reasoning_tokens``); ``total_tokens`` is Gemini's own total."""
    completion = u.candidates_token_count + u.thoughts_token_count
    total = u.total_token_count or (u.prompt_token_count + completion)
    return _Usage(
        u.prompt_token_count, completion, total,
        prompt_tokens_details=_gm_PromptTokensDetails(u.cached_content_token_count),
        completion_tokens_details=_gm_CompletionTokensDetails(reasoning_tokens=u.thoughts_token_count),
    )


cdef inline str _gm_finish(object raw, bint called, bint strict):
    if not strict and raw is not None:
        return raw  # Portkey's non-strict mode: the provider's own word.
    mapped = _GM_FINISH.get(raw, "stop") if raw is not None else "stop"
    # Gemini says STOP after a function call; OpenAI clients look for tool_calls.
    if called and mapped == "stop":
        return "tool_calls"
    return mapped


cdef inline str _gm_blocked_finish(object feedback, bint strict):
    """A prompt refused before generation (``promptFeedback.blockReason``, no candidates)."""
    reason = feedback.block_reason if feedback is not None else None
    if reason is None:
        return "stop"
    return reason if not strict else "content_filter"


cdef inline str _gm_call_id(object fc):
    return fc.id if fc.id else _gm_next_id("call")


cdef inline str _gm_call_args(object fc):
    return bytes(fc.args).decode()


cdef object _gm_decode_response(bytes body, str provider):
    try:
        return _gm_response_decoder.decode(body)
    except _gm_DecodeError:
        text = body[:300].decode("utf-8", "replace")
        raise _gm_GatewayError(502, f"{provider} error: invalid response received: {text}",
                               type="api_error", provider=provider) from None


def gemini_chat_response(bytes body, str model, str provider, bint strict=True):
    """A GenerateContentResponse -> an OpenAI ``chat.completion``, one choice per candidate."""
    r = _gm_decode_response(body, provider)
    cdef list choices = []
    cdef list texts, calls, blocks
    if not r.candidates:
        # Blocked prompt: answered as OpenAI answers a filtered prompt, 200 with no content.
        message = _gm_AssistantMessage(content="")
        choices.append(_gm_Choice(0, message, _gm_blocked_finish(r.prompt_feedback, strict)))
    for position, cand in enumerate(r.candidates):
        texts = []
        calls = []
        blocks = []
        if cand.content is not None:
            for part in cand.content.parts:
                fc = part.function_call
                if fc is not None:
                    calls.append(_gm_OAToolCall(_gm_call_id(fc), _gm_OAFunctionCall(fc.name, _gm_call_args(fc)),
                                                extra_content=_gm_signature_out(part)))
                elif part.text is not None:
                    if part.thought:
                        if not strict:
                            block = {"type": "thinking", "thinking": part.text}
                            if part.thought_signature:
                                block["signature"] = part.thought_signature
                            blocks.append(block)
                    else:
                        texts.append(part.text)
                        if not strict:
                            blocks.append({"type": "text", "text": part.text})
        message = _gm_AssistantMessage(content="".join(texts) if texts else None)
        if calls:
            message.tool_calls = calls
        if blocks:
            message.content_blocks = blocks
        index = cand.index if cand.index is not None else position
        choices.append(_gm_Choice(index, message, _gm_finish(cand.finish_reason, bool(calls), strict)))
    out = _gm_ChatCompletion(r.response_id or _gm_next_id("chatcmpl"), _now(),
                             r.model_version or model, choices, provider=provider)
    if r.usage_metadata is not None:
        out.usage = _gm_usage(r.usage_metadata)
    return _encode_json(out)


def gemini_completion_response(bytes body, str model, str provider):
    """A GenerateContentResponse -> an OpenAI ``text_completion``."""
    r = _gm_decode_response(body, provider)
    cdef list choices = []
    if not r.candidates:
        choices.append(_gm_TextChoice(0, "", _gm_blocked_finish(r.prompt_feedback, True)))
    for position, cand in enumerate(r.candidates):
        parts = cand.content.parts if cand.content is not None else []
        text = "".join([p.text for p in parts if p.text is not None and not p.thought])
        index = cand.index if cand.index is not None else position
        choices.append(_gm_TextChoice(index, text, _gm_finish(cand.finish_reason, False, True)))
    out = _gm_TextCompletion(r.response_id or _gm_next_id("cmpl"), _now(),
                             r.model_version or model, choices, provider=provider)
    if r.usage_metadata is not None:
        out.usage = _gm_usage(r.usage_metadata)
    return _encode_json(out)


cdef object _gm_embedding(int index, list values, bint as_base64):
    return _gm_Embedding(index, float32_base64(values) if as_base64 else values)


cdef object _gm_decode_embeddings(bytes body, object decoder, str provider):
    try:
        return decoder.decode(body)
    except _gm_DecodeError:
        raise _gm_GatewayError(502, f"{provider} error: invalid embeddings response",
                               type="api_error", provider=provider) from None


def gemini_embed_response(bytes body, str model, str provider, bint as_base64=False):
    """batchEmbedContents -> OpenAI's embedding list. Gemini reports no token counts here, so
    usage is zero."""
    r = _gm_decode_embeddings(body, _gm_embed_decoder, provider)
    data = [_gm_embedding(i, emb.values, as_base64) for i, emb in enumerate(r.embeddings)]
    return _encode_json(_gm_EmbeddingList(data, model, _gm_EmbeddingUsage(0, 0), provider=provider))


def vertex_embed_response(bytes body, str model, str provider, bint as_base64=False):
    """Vertex ``:predict`` embeddings -> OpenAI's embedding list; usage from each prediction's
    ``statistics.token_count``."""
    r = _gm_decode_embeddings(body, _gm_predict_decoder, provider)
    cdef list data = []
    cdef long tokens = 0
    for i, prediction in enumerate(r.predictions):
        emb = prediction.embeddings
        if emb.statistics is not None:
            tokens += emb.statistics.token_count
        data.append(_gm_embedding(i, emb.values, as_base64))
    return _encode_json(_gm_EmbeddingList(data, model, _gm_EmbeddingUsage(tokens, tokens), provider=provider))


def gemini_error(int status, bytes body, str provider):
    """A Google error body (``{"error": {"code", "message", "status"}}``) -> OpenAI's error shape,
    or None when the body is not one (the caller falls back to its generic handling)."""
    try:
        err = _gm_error_decoder.decode(body).error
    except _gm_DecodeError:
        return None
    kind = _GM_ERROR_TYPES.get(err.status) or _gm_type_for_status(status)
    code = err.status or (str(err.code) if err.code is not None else None)
    detail = _gm_ErrorDetail(f"{provider} error: {err.message}", kind, None, code)
    return _encode_json(_gm_ErrorBody(detail, provider))


# ---- stream ------------------------------------------------------------------------------------

cdef class GeminiStream:
    """``streamGenerateContent?alt=sse`` -> OpenAI chunks (or ``text_completion`` chunks).

    Each SSE event is a whole GenerateContentResponse holding the newest slice of the answer
    (https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent). Text becomes
    content deltas; a functionCall arrives complete and becomes one indexed tool-call delta;
    the finish reason and usage (cumulative, the last one wins) are written once the upstream
    ends, followed by ``[DONE]``, which Google never sends. Only candidate 0 is streamed.
    """

    cdef SSEDecoder _sse
    cdef ChunkWriter _writer
    cdef readonly bint done
    cdef bint _strict
    cdef bint _text_mode
    cdef bint _started
    cdef int _tools
    cdef object _finish_raw
    cdef object _usage
    cdef object _feedback
    cdef str _provider

    def __init__(self, str model, str provider, bint include_usage=False, bint strict=True,
                 bint text_completion=False):
        self._sse = SSEDecoder()
        prefix = "cmpl" if text_completion else "chatcmpl"
        self._writer = ChunkWriter(_gm_next_id(prefix), model, provider, include_usage)
        self._provider = provider
        self._strict = strict
        self._text_mode = text_completion
        self._started = False
        self.done = False
        self._tools = 0
        self._finish_raw = None
        self._usage = None
        self._feedback = None

    def feed(self, bytes chunk):
        if self.done:
            return _EMPTY
        return self._events(self._sse.feed(chunk))

    def finish(self):
        """The upstream ended: flush a last unterminated event, then finish and ``[DONE]``."""
        if self.done:
            return _EMPTY
        out = self._events(self._sse.close())
        if self.done:
            return out
        self.done = True
        if self._text_mode:
            return out + self._text_finish()
        if self._started or self._finish_raw is not None:
            reason = _gm_finish(self._finish_raw, self._tools > 0, self._strict)
        else:
            reason = _gm_blocked_finish(self._feedback, self._strict)
        usage = _gm_usage(self._usage) if self._usage is not None else None
        return out + self._writer.finish(reason, usage)

    cdef bytes _events(self, list events):
        cdef list out = []
        for _event, data in events:
            out.append(self._event(data))
            if self.done:
                break
        return b"".join(out)

    cdef bytes _event(self, bytes data):
        try:
            r = _gm_response_decoder.decode(data)
        except _gm_DecodeError:
            self.done = True
            return self._writer.error(f"{self._provider} error: invalid stream event received")
        if r.error is not None:
            self.done = True
            kind = _GM_ERROR_TYPES.get(r.error.status) or "api_error"
            return self._writer.error(f"{self._provider} error: {r.error.message}", kind)
        if r.usage_metadata is not None:
            self._usage = r.usage_metadata
        if r.prompt_feedback is not None:
            self._feedback = r.prompt_feedback
        if not r.candidates:
            return _EMPTY
        cand = r.candidates[0]
        if cand.finish_reason is not None:
            self._finish_raw = cand.finish_reason
        if cand.content is None:
            return _EMPTY
        cdef list out = []
        for part in cand.content.parts:
            fc = part.function_call
            if fc is not None and not self._text_mode:
                self._started = True
                if part.thought_signature:
                    delta = _ToolCallDelta(self._tools, id=_gm_call_id(fc), type="function",
                                           function=_FunctionDelta(name=fc.name, arguments=_gm_call_args(fc)),
                                           extra_content=_gm_signature_out(part))
                    out.append(self._writer.extra(tool_calls=[delta]))
                else:
                    out.append(self._writer.tool_call_start(self._tools, _gm_call_id(fc), fc.name,
                                                            _gm_call_args(fc)))
                self._tools += 1
            elif part.text is not None:
                if part.thought:
                    if not self._strict and not self._text_mode:
                        self._started = True
                        out.append(self._writer.extra(
                            content_blocks=[{"index": 0, "delta": {"thinking": part.text}}]))
                elif part.text:
                    self._started = True
                    out.append(self._text_chunk(part.text, None) if self._text_mode
                               else self._writer.content(part.text))
        return b"".join(out)

    cdef bytes _text_chunk(self, str text, object finish_reason):
        w = self._writer
        chunk = _gm_TextCompletion(w.id, w.created, w.model, [_gm_TextChoice(0, text, finish_reason)],
                                   provider=self._provider)
        return _frame(_encode_json(chunk))

    cdef bytes _text_finish(self):
        w = self._writer
        if self._started or self._finish_raw is not None:
            reason = _gm_finish(self._finish_raw, False, True)
        else:
            reason = _gm_blocked_finish(self._feedback, True)
        out = self._text_chunk("", reason)
        if w.include_usage and self._usage is not None:
            chunk = _gm_TextCompletion(w.id, w.created, w.model, [], usage=_gm_usage(self._usage),
                                       provider=self._provider)
            out += _frame(_encode_json(chunk))
        return out + _SSE_DONE
