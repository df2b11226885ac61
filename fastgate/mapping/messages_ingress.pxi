# Anthropic's Messages API as an ingress format, over the OpenAI chat pivot.
#
# A Messages request (https://docs.anthropic.com/en/api/messages) becomes the OpenAI chat
# request every provider mapping takes; the chat answer becomes a Message, the chat chunk stream
# Anthropic's event stream (https://docs.anthropic.com/en/docs/build-with-claude/streaming), read
# by read; an OpenAI error becomes Anthropic's error shape (https://docs.anthropic.com/en/api/errors).
# Anthropic's own provider section (anthropic.pxi) goes the other way; the two invert each other
# on what both APIs can say.
#
# The chat body is OpenAI's own vocabulary, nothing more, since it may go byte for byte to an
# OpenAI-compatible upstream, and strict ones (OpenAI, Groq) refuse a field they do not know with
# a 400: thinking is sent as ``reasoning_effort``; ``top_k`` and ``cache_control`` are left out;
# a user id past OpenAI's 64 characters is hashed. The decoded request handed beside it carries
# those too, in the fields fastgate's own mappings read (Portkey's extensions of ChatRequest:
# ``thinking``, ``top_k``, a part's ``cache_control``, an assistant turn's ``content_blocks``
# with its signed thinking, the whole user id).
#
# Module-level names are prefixed ``_mi`` / ``_Mi``: every section shares one module.

import base64 as _mi_base64
import binascii as _mi_binascii
import hashlib as _mi_hashlib
import re as _mi_re
import uuid as _mi_uuid

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer

from fastgate.errors import GatewayError as _MiGatewayError
from fastgate.schema.chat_answer import (
    AnswerView as _MiAnswerView,
    ChunkView as _MiChunkView,
    ErrorBodyView as _MiErrorBodyView,
)
from fastgate.schema.messages import (
    ERROR_TYPES as _MI_ERROR_TYPES,
    ErrorDetailOut as _MiErrorDetail,
    ErrorOut as _MiError,
    MessageOut as _MiMessage,
    MessagesRequestIn as _MiRequest,
    RedactedThinkingBlock as _MiRedactedThinking,
    ThinkingBlock as _MiThinking,
    TokenCount as _MiTokenCount,
    UsageOut as _MiUsage,
    error_type as _mi_error_type,
)
from fastgate.schema.anthropic import TextBlock as _MiTextBlock, ToolUseBlock as _MiToolUse
from fastgate.schema.openai import (
    FileRef as _MiFileRef,
    FilePart as _MiFilePart,
    FunctionCall as _MiFunctionCall,
    FunctionDef as _MiFunctionDef,
    FunctionTool as _MiTool,
    ImagePart as _MiImagePart,
    ImageURL as _MiImageURL,
    JSONSchemaFormat as _MiJSONSchema,
    NamedFunction as _MiNamedFunction,
    NamedToolChoice as _MiNamedToolChoice,
    RawContentChatRequest as _MiChatRequest,
    RawContentMessage as _MiChatMessage,
    ResponseFormat as _MiResponseFormat,
    StreamOptions as _MiStreamOptions,
    TextPart as _MiTextPart,
    ToolCall as _MiToolCall,
)

cdef object _mi_request_decode = _msgspec.json.Decoder(_MiRequest).decode
cdef object _mi_answer_decode = _msgspec.json.Decoder(_MiAnswerView).decode
cdef object _mi_chunk_decode = _msgspec.json.Decoder(_MiChunkView).decode
cdef object _mi_error_decode = _msgspec.json.Decoder(_MiErrorBodyView).decode
cdef object _MiRaw = _msgspec.Raw
cdef object _mi_replace = _msgspec.structs.replace
cdef object _MI_INCLUDE_USAGE = _MiStreamOptions(include_usage=True)

# tool_choice (ToolChoiceParam) → OpenAI's: "any" is "required"; "tool" names a function.
cdef dict _MI_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
# output_config.effort → reasoning_effort: OpenAI's scale stops at "high".
cdef dict _MI_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
# thinking.budget_tokens → reasoning_effort, at the budgets Google's OpenAI layer gives each effort
# (1,024 / 8,192 / 24,576: https://ai.google.dev/gemini-api/docs/openai#thinking), split between
# them: Claude Code's "think" (4,000) is low, "think hard" (10,000) medium, "ultrathink" high.
cdef long _MI_MEDIUM_BUDGET = 4096
cdef long _MI_HIGH_BUDGET = 16384
# OpenAI refuses a ``user`` longer than 64 characters; Claude Code's metadata.user_id is a JSON
# object of ids (~150): a longer one is sent as its SHA-256 (64 hex digits), as stable an id.
cdef Py_ssize_t _MI_USER_MAX = 64
# Blocks of earlier turns that record a server tool's run (server_tool_use,
# web_search_tool_result, ...): Anthropic ran the tool; another provider has no use for the record.
cdef tuple _MI_SERVER_BLOCK_PREFIXES = ("server_tool_use", "mcp_tool_", "container_upload")
cdef str _MI_TOOL_RESULT_SUFFIX = "_tool_result"


cdef inline object _mi_bad(str message, object param=None):
    return _MiGatewayError(400, message, param=param)


cdef inline object _mi_raw(object value):
    return _MiRaw(_encode_json(value))


cdef inline str _mi_new_id(str prefix):
    return prefix + _mi_uuid.uuid4().hex[:24]


# ---- request -----------------------------------------------------------------------------------

cdef inline bint _mi_is_server_block(str kind):
    return kind.startswith(_MI_SERVER_BLOCK_PREFIXES) or kind.endswith(_MI_TOOL_RESULT_SUFFIX)


cdef object _mi_image_part(object block, str where):
    # Base64ImageSourceParam → a data URL; URLImageSourceParam → the URL, which the provider fetches.
    src = block.source
    if src is None:
        raise _mi_bad(f"{where}.source: Field required", where)
    if src.type == "base64" and src.data is not None and src.media_type:
        url = f"data:{src.media_type};base64,{src.data}"
    elif src.type == "url" and src.url:
        url = src.url
    else:
        raise _mi_bad(f"{where}.source: an image of source type {src.type!r} cannot be sent to this "
                      "provider (send base64 or url)", where)
    return _MiImagePart(_MiImageURL(url), block.cache_control)


cdef int _mi_document_parts(list parts, object block, str where) except -1:
    """A ``document`` (DocumentBlockParam): a PDF (base64 or URL) as OpenAI's ``file`` part, in the
    pivot's convention for a URL (``file_data`` holds it, as fastgate's mappings read it); a file
    id as ``file_id``; a text or ``content`` source as the text and images it holds."""
    src = block.source
    if src is None:
        raise _mi_bad(f"{where}.source: Field required", where)
    kind = src.type
    if kind == "base64" and src.data is not None:
        media = src.media_type or "application/pdf"
        parts.append(_MiFilePart(_MiFileRef(file_data=f"data:{media};base64,{src.data}",
                                            filename=block.title or "document.pdf")))
    elif kind == "url" and src.url:
        parts.append(_MiFilePart(_MiFileRef(file_data=src.url, filename=block.title)))
    elif kind == "file" and src.file_id:
        parts.append(_MiFilePart(_MiFileRef(file_id=src.file_id, filename=block.title)))
    elif kind == "text" and src.data is not None:
        if src.data:
            parts.append(_MiTextPart(src.data, block.cache_control))
    elif kind == "content" and src.content is not None:
        if type(src.content) is str:
            if src.content:
                parts.append(_MiTextPart(src.content, block.cache_control))
        else:
            _mi_user_parts(parts, None, src.content, where + ".source.content")
    else:
        raise _mi_bad(f"{where}.source: a document of source type {kind!r} cannot be sent to this "
                      "provider", where)
    return 0


cdef int _mi_user_parts(list parts, list results, object blocks, str where) except -1:
    """User content blocks as chat parts, into ``parts``; ``tool_result`` blocks into ``results``
    (None: not allowed here)."""
    cdef Py_ssize_t j = 0
    cdef str kind
    for block in blocks:
        kind = block.type
        at = f"{where}[{j}]"
        if kind == "text":
            if block.text:
                parts.append(_MiTextPart(block.text, block.cache_control))
        elif kind == "image":
            parts.append(_mi_image_part(block, at))
        elif kind == "document":
            _mi_document_parts(parts, block, at)
        elif kind == "search_result":
            # SearchResultBlockParam: its text blocks are what the model reads.
            if block.content is not None and type(block.content) is not str:
                _mi_user_parts(parts, None, block.content, at + ".content")
        elif kind == "tool_result" and results is not None:
            results.append(block)
        elif kind == "thinking" or kind == "redacted_thinking" or _mi_is_server_block(kind):
            pass
        else:
            raise _mi_bad(f"{at}: content of type {kind!r} cannot be sent to this provider", at)
        j += 1
    return 0


cdef inline bint _mi_marked(list parts):
    """Whether a part carries ``cache_control`` (file parts have none)."""
    for part in parts:
        if type(part) is not _MiFilePart and part.cache_control is not None:
            return True
    return False


cdef inline bint _mi_text_only(list parts):
    for part in parts:
        if type(part) is not _MiTextPart:
            return False
    return True


cdef object _mi_body_content(list parts):
    """The chat body's content for ``parts``: text alone is one string (text parts joined by a
    newline), which every OpenAI-compatible server takes (some refuse arrays); parts with images
    or files stay an array, without ``cache_control``."""
    if _mi_text_only(parts):
        if len(parts) == 1:
            return _mi_raw(parts[0].text)
        return _mi_raw("\n".join([part.text for part in parts]))
    if _mi_marked(parts):
        return _mi_raw([part if type(part) is _MiFilePart or part.cache_control is None
                        else _mi_replace(part, cache_control=None) for part in parts])
    return _mi_raw(parts)


cdef class _MiTurns:
    """The chat messages being written, twice over: ``body`` for the chat body, ``view`` for the
    decoded request, which differs only where a turn carries an extension (``differs``)."""

    cdef list body
    cdef list view
    cdef bint differs

    def __cinit__(self):
        self.body = []
        self.view = []
        self.differs = False

    cdef int text(self, str role, str text) except -1:
        msg = _MiChatMessage(role, _mi_raw(text))
        self.body.append(msg)
        self.view.append(msg)
        return 0

    cdef int add(self, str role, list parts, object tool_calls=None, object tool_call_id=None,
                 object blocks=None) except -1:
        """A turn of ``parts``; ``blocks``: an assistant's content_blocks (its signed thinking)."""
        if not parts and tool_calls is None and tool_call_id is None:
            return 0
        if parts:
            content = _mi_body_content(parts)
        else:  # a tool message's content is required; an assistant's with tool calls may be null
            content = _mi_raw("") if tool_call_id is not None else _MiRaw(b"null")
        msg = _MiChatMessage(role, content, tool_calls=tool_calls, tool_call_id=tool_call_id)
        self.body.append(msg)
        marked = _mi_marked(parts)
        if not marked and blocks is None:
            self.view.append(msg)
            return 0
        self.differs = True
        self.view.append(_mi_replace(msg, content=_mi_raw(parts) if marked else content,
                                     content_blocks=blocks))
        return 0


cdef list _mi_result_parts(object block, list carried, str where):
    """A tool result's content as text parts; its images and documents go to ``carried``, for the
    user turn after the tool messages: OpenAI's tool messages hold text only."""
    cdef list parts = []
    cdef list others = []
    content = block.content
    if type(content) is str:
        if content:
            parts.append(_MiTextPart(content))
    elif content is not None:
        _mi_user_parts(others, None, content, where + ".content")
        for part in others:
            (parts if type(part) is _MiTextPart else carried).append(part)
    if block.is_error:
        # OpenAI has no error flag on a tool message: the model reads it in the text.
        parts.insert(0, _MiTextPart("Error:" if parts else "Error"))
    if block.cache_control is not None:
        if parts:
            last = len(parts) - 1
            parts[last] = _mi_replace(parts[last], cache_control=block.cache_control)
        else:
            parts.append(_MiTextPart("", block.cache_control))
    return parts


cdef int _mi_user_turn(_MiTurns turns, object blocks, str where) except -1:
    """A user turn: its tool results first, as tool messages (OpenAI wants them right after the
    assistant's calls), then its other content as one user message."""
    cdef list parts = []
    cdef list results = []
    cdef list carried = []
    _mi_user_parts(parts, results, blocks, where)
    for block in results:
        result = _mi_result_parts(block, carried, where)
        turns.add("tool", result, None, block.tool_use_id or "", None)
    if carried:
        parts[0:0] = carried
    return turns.add("user", parts)


cdef int _mi_assistant_turn(_MiTurns turns, object blocks, str where) except -1:
    """An assistant turn: text as content, ``tool_use`` blocks as tool calls (the input's JSON
    text as the arguments), thinking kept for fastgate's mappings in ``content_blocks``."""
    cdef list parts = []
    cdef list calls = []
    cdef list thinking = []
    cdef Py_ssize_t j = 0
    cdef str kind
    for block in blocks:
        kind = block.type
        at = f"{where}[{j}]"
        if kind == "text":
            if block.text:
                parts.append(_MiTextPart(block.text, block.cache_control))
        elif kind == "tool_use":
            args = bytes(block.input).decode()
            calls.append(_MiToolCall(block.id or _mi_new_id("toolu_"),
                                     _MiFunctionCall(block.name or "", args)))
        elif kind == "thinking":
            thinking.append({"type": "thinking", "thinking": block.thinking or "",
                             "signature": block.signature or ""})
        elif kind == "redacted_thinking":
            thinking.append({"type": "redacted_thinking", "data": block.data or ""})
        elif not _mi_is_server_block(kind):
            raise _mi_bad(f"{at}: assistant content of type {kind!r} cannot be sent to this provider", at)
        j += 1
    content_blocks = None
    if thinking:
        # Anthropic's mapping sends content_blocks in place of the content: the text goes too.
        content_blocks = thinking + [_mi_text_block_dict(part) for part in parts]
    return turns.add("assistant", parts, calls or None, None, content_blocks)


cdef inline dict _mi_text_block_dict(object part):
    if part.cache_control is not None:
        return {"type": "text", "text": part.text, "cache_control": part.cache_control}
    return {"type": "text", "text": part.text}


cdef list _mi_system_parts(object system):
    cdef list parts = []
    if type(system) is str:
        if system:
            parts.append(_MiTextPart(system))
        return parts
    _mi_user_parts(parts, None, system, "system")
    return parts


cdef object _mi_tools(object tools):
    """Client tools as functions. Server tools (a versioned ``type``: web search, bash, text
    editor, ...) are run by Anthropic itself; no other provider runs them, so they are left out."""
    cdef list out = []
    for tool in tools:
        if tool.type is not None and tool.type != "custom":
            continue
        out.append(_MiTool(function=_MiFunctionDef(tool.name, tool.description,
                                                   tool.input_schema or {"type": "object", "properties": {}},
                                                   tool.strict)))
    return out or None


cdef object _mi_effort(object thinking, object config):
    """reasoning_effort for ``output_config.effort``, or else for an enabled thinking budget."""
    if config is not None and config.effort is not None:
        return _MI_EFFORTS.get(config.effort)
    if thinking is None or thinking.get("type") != "enabled":
        return None  # adaptive: the model decides; disabled: nothing to ask for
    budget = thinking.get("budget_tokens")
    if type(budget) is not int:
        return None
    if budget < _MI_MEDIUM_BUDGET:
        return "low"
    return "medium" if budget < _MI_HIGH_BUDGET else "high"


cdef object _mi_decode_request(bytes body):
    try:
        return _mi_request_decode(body)
    except _msgspec.ValidationError as exc:
        raise _mi_bad(f"Invalid request body: {exc}") from None
    except _msgspec.DecodeError as exc:
        raise _mi_bad(f"Request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise _mi_bad("Request body is nested too deeply") from None


def messages_to_chat_request(bytes body):
    """A Messages request as ``(chat body, decoded chat request)``: the body for any provider,
    the request (a ``RawContentChatRequest``, as the handler hands mappings) with fastgate's
    extensions (see the section's head). The Messages body is decoded once, here.

    system (a string, blocks, or ``system`` turns in ``messages``) → system messages; text,
    images (base64 or URL) and documents (PDF → ``file`` parts) → content parts; ``tool_use`` →
    tool calls; ``tool_result`` → tool messages; ``tools`` (``input_schema``) → functions;
    ``tool_choice`` auto / any / tool / none → auto / required / named / none
    (``disable_parallel_tool_use`` → ``parallel_tool_calls: false``); ``stop_sequences`` →
    ``stop``; ``metadata.user_id`` → ``user`` (hashed past 64 characters); ``max_tokens`` →
    ``max_completion_tokens``; ``output_config.format`` → ``response_format``; a stream asks
    for usage (``stream_options.include_usage``), which ``message_delta`` reports.
    """
    req = _mi_decode_request(body)
    if req.max_tokens is None:
        raise _mi_bad("max_tokens: Field required", "max_tokens")
    if not req.messages:
        raise _mi_bad("messages: at least one message is required", "messages")
    cdef _MiTurns turns = _MiTurns()
    cdef Py_ssize_t i
    cdef str role, where
    if req.system is not None:
        turns.add("system", _mi_system_parts(req.system))
    for i, message in enumerate(req.messages):
        role = message.role
        content = message.content
        if type(content) is str:
            if role != "user" and role != "assistant" and role != "system":
                raise _mi_bad(f"messages[{i}].role: Input should be 'user', 'assistant' or 'system'",
                              "messages")
            turns.text(role, content)
            continue
        where = f"messages[{i}].content"
        if role == "user":
            _mi_user_turn(turns, content, where)
        elif role == "assistant":
            _mi_assistant_turn(turns, content, where)
        elif role == "system":
            turns.add("system", _mi_system_parts(content))
        else:
            raise _mi_bad(f"messages[{i}].role: Input should be 'user', 'assistant' or 'system'",
                          "messages")
    out = _MiChatRequest(turns.body, model=req.model, stream=req.stream,
                         max_completion_tokens=req.max_tokens, temperature=req.temperature,
                         top_p=req.top_p)
    if req.stream:
        out.stream_options = _MI_INCLUDE_USAGE
    if req.stop_sequences:
        out.stop = req.stop_sequences
    user_id = req.metadata.user_id if req.metadata is not None else None
    if user_id:
        out.user = user_id if len(user_id) <= _MI_USER_MAX else _mi_hashlib.sha256(user_id.encode()).hexdigest()
    if req.tools:
        out.tools = _mi_tools(req.tools)
    choice = req.tool_choice
    if out.tools is not None and choice is not None:
        # tool_choice is only valid beside tools (OpenAI refuses it alone, Anthropic too).
        if choice.type == "tool":
            if not choice.name:
                raise _mi_bad("tool_choice.name: Field required", "tool_choice")
            out.tool_choice = _MiNamedToolChoice(_MiNamedFunction(choice.name))
        else:
            named = _MI_TOOL_CHOICES.get(choice.type)
            if named is None:
                raise _mi_bad(f"tool_choice.type: {choice.type!r} is not auto, any, tool or none",
                              "tool_choice")
            out.tool_choice = named
        if choice.disable_parallel_tool_use and choice.type != "none":
            out.parallel_tool_calls = False
    config = req.output_config
    if config is not None and config.format is not None and config.format.schema is not None:
        # Structured outputs (JSONOutputFormatParam) as OpenAI's json_schema response format,
        # which must be named (JSONSchemaFormat's default name is not written: omit_defaults).
        out.response_format = _MiResponseFormat(
            "json_schema", _MiJSONSchema("output_format", schema=config.format.schema))
    out.reasoning_effort = _mi_effort(req.thinking, config)
    encoded = _encode_json(out)
    if turns.differs or req.thinking is not None or req.top_k is not None or out.user != user_id:
        out = _mi_replace(out, messages=turns.view, thinking=req.thinking, top_k=req.top_k,
                          user=user_id or None)
    return encoded, out


# ---- count_tokens: an estimate for providers that cannot count ---------------------------------

# Anthropic's vision docs: an image costs width * height / 750 tokens, after resizing to at most
# ~1.15 megapixels, so ~1,600 at most; the estimate takes that ceiling (the size is not read).
cdef long _MI_IMAGE_TOKENS = 1600
# A PDF page is its text (Anthropic's PDF docs: 1,500-3,000 tokens a page) plus its image: the
# upper end of the text range stands for both. Pages are counted from the page objects.
cdef long _MI_PDF_PAGE_TOKENS = 3000
cdef object _MI_PDF_PAGE = _mi_re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


cdef long _mi_pdf_tokens(object src):
    if src.type != "base64" or not src.data:
        return _MI_PDF_PAGE_TOKENS
    try:
        pdf = _mi_base64.b64decode(src.data)
    except (ValueError, _mi_binascii.Error):
        return _MI_PDF_PAGE_TOKENS
    return max(1, len(_MI_PDF_PAGE.findall(pdf))) * _MI_PDF_PAGE_TOKENS


cdef long _mi_block_chars(object blocks, long* fixed):
    """Characters of the text in ``blocks`` (a string or blocks); images and PDFs add to ``fixed``."""
    cdef long chars = 0
    if blocks is None:
        return 0
    if type(blocks) is str:
        return len(blocks)
    for block in blocks:
        kind = block.type
        if block.text:
            chars += len(block.text)
        if kind == "image":
            fixed[0] += _MI_IMAGE_TOKENS
        elif kind == "document" and block.source is not None:
            src = block.source
            if src.type == "text" and src.data:
                chars += len(src.data)
            elif src.type == "content":
                chars += _mi_block_chars(src.content, fixed)
            else:
                fixed[0] += _mi_pdf_tokens(src)
        elif kind == "tool_use":
            chars += len(block.name or "") + len(block.input)
        elif kind == "thinking" and block.thinking:
            chars += len(block.thinking)
        chars += _mi_block_chars(block.content, fixed)
    return chars


def estimate_messages_tokens(bytes body):
    """``{"input_tokens": N}`` for a ``count_tokens`` body, for providers with no way to count
    (Anthropic, and Claude on Vertex AI, count it themselves).

    An estimate, not a tokenizer's count: a quarter of the characters of the text in the system
    prompt, the messages (text, tool calls' names and inputs, tool results, thinking) and the
    tools (name, description and input schema as JSON): about 4 characters a token for English
    and code in OpenAI's and Anthropic's tokenizers, as both their docs say. An image counts the
    most Anthropic charges for one (1,600), a PDF 3,000 a page. A tokenizer library would need
    each model's vocabulary, which no provider but OpenAI publishes, and it fetches them from
    the network on first use.
    """
    req = _mi_decode_request(body)
    cdef long fixed = 0
    cdef long chars = _mi_block_chars(req.system, &fixed)
    for message in req.messages:
        chars += _mi_block_chars(message.content, &fixed)
    for tool in req.tools or ():
        chars += len(tool.name) + len(tool.description or "")
        if tool.input_schema is not None:
            chars += len(_encode_json(tool.input_schema))
    return _encode_json(_MiTokenCount(max(1, (chars + 3) // 4 + fixed)))


# ---- answer ------------------------------------------------------------------------------------

# finish_reason → stop_reason (anthropic/types/stop_reason.py): OpenAI's, then the providers' own,
# which fastgate's non-strict mode keeps (the Messages stage asks for it, so that a stop sequence
# and thinking survive the pivot); anything else is end_turn.
cdef dict _MI_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    # Anthropic's, and Bedrock Converse's StopReason (the same words, and two of its own).
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "pause_turn": "pause_turn",
    "refusal": "refusal",
    "model_context_window_exceeded": "model_context_window_exceeded",
    "guardrail_intervened": "refusal",
    "content_filtered": "refusal",
    # Gemini's FinishReason (https://ai.google.dev/api/generate-content#FinishReason).
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "refusal",
    "RECITATION": "refusal",
    "LANGUAGE": "refusal",
    "BLOCKLIST": "refusal",
    "PROHIBITED_CONTENT": "refusal",
    "SPII": "refusal",
    "IMAGE_SAFETY": "refusal",
    # Cohere v2's finish_reason (https://docs.cohere.com/reference/chat).
    "STOP_SEQUENCE": "stop_sequence",
    "TOOL_CALL": "tool_use",
    # Mistral's: the model's context was full.
    "model_length": "max_tokens",
}


cdef str _mi_stop_reason(object finish, object matched, bint called, bint refused):
    """Anthropic's stop reason. ``matched``: vLLM's ``stop_reason``, the stop string that ended
    the answer (OpenAI's ``stop`` does not say whether one did); ``called``: tool calls were made
    (some providers finish those with ``stop``); ``refused``: the answer is a refusal."""
    reason = _MI_STOP_REASONS.get(finish, "end_turn") if finish is not None else "end_turn"
    if reason == "end_turn":
        if called:
            return "tool_use"
        if refused:
            return "refusal"
        if type(matched) is str:
            return "stop_sequence"
    return reason


cdef inline object _mi_stop_sequence(str reason, object matched, object only):
    """The stop sequence that ended the answer: the one the provider names, else the request's
    ``only`` one (providers that say a stop sequence ended it but not which: Bedrock, Cohere)."""
    if reason != "stop_sequence":
        return None
    return matched if type(matched) is str else only


cdef inline str _mi_message_id(object chat_id):
    """A Message id (``msg_...``) from the chat answer's."""
    if not chat_id:
        return _mi_new_id("msg_")
    return chat_id if chat_id.startswith("msg_") else "msg_" + chat_id


cdef object _mi_usage(object u):
    """OpenAI usage → Anthropic's: ``prompt_tokens`` counts cached input, ``input_tokens`` does
    not (Usage: total input is input + cache creation + cache read)."""
    if u is None:
        return _MiUsage(0, 0)
    details = u.prompt_tokens_details
    read = (details.cached_tokens if details is not None else None) or u.cache_read_input_tokens or 0
    created = u.cache_creation_input_tokens or 0
    prompt = u.prompt_tokens or 0
    return _MiUsage(max(0, prompt - read - created), u.completion_tokens or 0, created, read)


cdef int _mi_thinking_blocks(list out, object blocks) except -1:
    """Signed thinking from Portkey's ``content_blocks`` (fastgate's non-strict answers)."""
    for block in blocks:
        if type(block) is not dict:
            continue
        kind = block.get("type")
        if kind == "thinking":
            out.append(_MiThinking(str(block.get("thinking") or ""), str(block.get("signature") or "")))
        elif kind == "redacted_thinking":
            out.append(_MiRedactedThinking(str(block.get("data") or "")))
    return 0


cdef str _mi_answer_text(object content):
    if type(content) is str:
        return content
    if content is None:
        return ""
    return "".join([p.get("text") or "" for p in content if type(p) is dict and p.get("type") == "text"])


def chat_to_messages_answer(bytes body, str model="", str stop=None):
    """A ``chat.completion`` as a Message: thinking (``content_blocks``, ``reasoning_content`` or
    ``reasoning``), then the text (a refusal is text, with stop reason ``refusal``), then the
    tool calls as ``tool_use`` blocks (arguments that are not a JSON object become ``{}``).
    ``model``: the requested model, for an answer that names none; ``stop``: the request's one
    stop sequence, if it had exactly one."""
    try:
        answer = _mi_answer_decode(body)
    except (_msgspec.DecodeError, _msgspec.ValidationError, RecursionError):
        raise _MiGatewayError(502, "Invalid response received from the provider: "
                              f"{body[:500].decode('utf-8', 'replace')}", type="api_error") from None
    cdef list blocks = []
    finish = matched = None
    cdef bint refused = False
    choices = answer.choices
    if choices:
        choice = choices[0]
        finish, matched = choice.finish_reason, choice.stop_reason
        msg = choice.message
        if msg is not None:
            if msg.content_blocks:
                _mi_thinking_blocks(blocks, msg.content_blocks)
            if not blocks:
                reasoning = msg.reasoning_content or msg.reasoning
                if reasoning:
                    blocks.append(_MiThinking(reasoning))
            text = _mi_answer_text(msg.content)
            if msg.refusal:
                refused = True
                text = text + msg.refusal if text else msg.refusal
            if text:
                blocks.append(_MiTextBlock(text))
            for call in msg.tool_calls or ():
                fn = call.function
                name = (fn.name if fn is not None else None) or ""
                args = (fn.arguments if fn is not None else None) or ""
                blocks.append(_MiToolUse(call.id or _mi_new_id("toolu_"), name, _an_tool_input(args)))
    cdef str reason = _mi_stop_reason(finish, matched, any([type(b) is _MiToolUse for b in blocks]),
                                      refused)
    return _encode_json(_MiMessage(_mi_message_id(answer.id), answer.model or model, blocks, reason,
                                   _mi_stop_sequence(reason, matched, stop), _mi_usage(answer.usage)))


# ---- errors ------------------------------------------------------------------------------------

cdef object _MI_ERROR_NAMES = frozenset(_MI_ERROR_TYPES.values())


cdef inline bytes _mi_error_json(str kind, str message):
    return _encode_json(_MiError(_MiErrorDetail(kind, message)))


def chat_error_to_messages(int status, bytes body):
    """An OpenAI error body (an upstream's, or fastgate's own) in Anthropic's shape, its type
    the one Anthropic gives the status; the status itself is the caller's to keep."""
    message = None
    try:
        err = _mi_error_decode(body).error
        message = err if type(err) is str else (err.message if err is not None else None)
    except (_msgspec.DecodeError, _msgspec.ValidationError, RecursionError):
        pass
    if not message:
        text = body.decode("utf-8", "replace").strip()
        message = text[:500] if text else f"upstream returned HTTP {status}"
    return _mi_error_json(_mi_error_type(status), message)


# ---- stream ------------------------------------------------------------------------------------
# Each event is written as Anthropic writes it (its ``event:`` line, its data, a blank line).

cdef bytes _MI_MESSAGE_START = (b'event: message_start\ndata: {"type":"message_start","message":'
                                b'{"id":')
cdef bytes _MI_MESSAGE_MODEL = b',"type":"message","role":"assistant","model":'
cdef bytes _MI_MESSAGE_OPEN = (b',"content":[],"stop_reason":null,"stop_sequence":null,'
                               b'"usage":{"input_tokens":')
cdef bytes _MI_PING = b'event: ping\ndata: {"type":"ping"}\n\n'
cdef bytes _MI_BLOCK_START = b'event: content_block_start\ndata: {"type":"content_block_start","index":'
cdef bytes _MI_TEXT_START = b',"content_block":{"type":"text","text":""}}\n\n'
cdef bytes _MI_THINKING_START = b',"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'
cdef bytes _MI_TOOL_START = b',"content_block":{"type":"tool_use","id":'
cdef bytes _MI_TOOL_NAME = b',"name":'
cdef bytes _MI_TOOL_INPUT = b',"input":{}}}\n\n'
cdef bytes _MI_REDACTED_START = b',"content_block":{"type":"redacted_thinking","data":'
cdef bytes _MI_BLOCK_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
cdef bytes _MI_TEXT_DELTA = b',"delta":{"type":"text_delta","text":'
cdef bytes _MI_THINKING_DELTA = b',"delta":{"type":"thinking_delta","thinking":'
cdef bytes _MI_SIGNATURE_DELTA = b',"delta":{"type":"signature_delta","signature":'
cdef bytes _MI_JSON_DELTA = b',"delta":{"type":"input_json_delta","partial_json":'
cdef bytes _MI_EVENT_END = b"}}\n\n"
cdef bytes _MI_BLOCK_STOP = b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
cdef bytes _MI_MESSAGE_DELTA = b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":'
cdef bytes _MI_STOP_SEQUENCE = b',"stop_sequence":'
cdef bytes _MI_DELTA_USAGE = b'},"usage":{"input_tokens":'
cdef bytes _MI_OUTPUT_TOKENS = b',"output_tokens":'
cdef bytes _MI_CACHE_CREATION = b',"cache_creation_input_tokens":'
cdef bytes _MI_CACHE_READ = b',"cache_read_input_tokens":'
cdef bytes _MI_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
cdef bytes _MI_ERROR_EVENT = b"event: error\ndata: "

cdef enum _MiBlock:
    _MI_NO_BLOCK
    _MI_TEXT_BLOCK
    _MI_THINKING_BLOCK
    _MI_TOOL_BLOCK


cdef inline int _mi_put_raw(_Out* out, object raw) except -1:
    cdef Py_buffer view
    PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE)
    try:
        _put(out, <const char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return 0


cdef inline bint _mi_has_text(object raw):
    """Whether a delta's field (its JSON text) is a non-empty string."""
    cdef Py_buffer view
    cdef bint text
    PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE)
    text = view.len > 2 and (<const char*>view.buf)[0] == b'"'
    PyBuffer_Release(&view)
    return text


cdef class ChatToMessagesStream(EventSink):
    """OpenAI ``chat.completion.chunk`` SSE (any provider's, as the chat path streams it) as
    Anthropic's event stream, event by event.

    The first chunk opens the message (``message_start``, then a ``ping``); text, thinking
    (``reasoning_content`` / ``reasoning``, or non-strict ``content_blocks`` with their
    signatures) and each tool call become content blocks in the order they come, each opened
    with ``content_block_start``, fed ``text_delta`` / ``thinking_delta`` / ``signature_delta``
    / ``input_json_delta`` (a delta's text copied as the JSON it came in) and closed with
    ``content_block_stop`` when the next begins. ``[DONE]`` closes the message:
    ``message_delta`` with the stop reason and the usage (the chat request asked for it;
    ``message_start`` cannot know the input tokens, so they come here, where the SDKs' stream
    accumulators take them), then ``message_stop``. An error event ends the stream with
    Anthropic's ``error`` event; so does an upstream that ends before the answer finished.

    Tool calls are written as OpenAI streams them, one after the other; a fragment for a call
    whose block was closed is still written to that block's index (the SDKs accumulate by index).
    """

    cdef SSEDecoder _sse
    cdef _Out _buf  # the events the chunks of one read made
    cdef readonly bint done
    cdef str _model
    cdef bint _started
    cdef _MiBlock _open
    cdef Py_ssize_t _index  # the open block's index
    cdef Py_ssize_t _blocks  # blocks opened so far
    cdef dict _tools  # OpenAI tool-call index → block index
    cdef object _finish
    cdef object _matched
    cdef object _stop
    cdef bint _refused
    cdef object _usage

    def __cinit__(self):
        self._buf.data = <char*>PyMem_Malloc(4096)
        if self._buf.data == NULL:
            raise MemoryError()
        self._buf.size, self._buf.cap, self._buf.heap = 0, 4096, True

    def __dealloc__(self):
        PyMem_Free(self._buf.data)

    def __init__(self, str model="", str stop=None):
        self._sse = SSEDecoder()
        self.done = False
        self._model = model
        self._stop = stop
        self._started = False
        self._open = _MI_NO_BLOCK
        self._index = -1
        self._blocks = 0
        self._tools = {}
        self._finish = None
        self._matched = None
        self._refused = False
        self._usage = None

    # -- writing

    cdef int _put_usage(self, bint output) except -1:
        usage = _mi_usage(self._usage)
        _put_decimal(&self._buf, usage.input_tokens)
        _put_bytes(&self._buf, _MI_OUTPUT_TOKENS)
        _put_decimal(&self._buf, usage.output_tokens if output else 0)
        _put_bytes(&self._buf, _MI_CACHE_CREATION)
        _put_decimal(&self._buf, usage.cache_creation_input_tokens)
        _put_bytes(&self._buf, _MI_CACHE_READ)
        return _put_decimal(&self._buf, usage.cache_read_input_tokens)

    cdef int _start(self, object chat_id, object model) except -1:
        self._started = True
        _put_bytes(&self._buf, _MI_MESSAGE_START)
        _put_json_string(&self._buf, _mi_message_id(chat_id))
        _put_bytes(&self._buf, _MI_MESSAGE_MODEL)
        _put_json_string(&self._buf, model or self._model)
        _put_bytes(&self._buf, _MI_MESSAGE_OPEN)
        self._put_usage(False)
        _put(&self._buf, "}}}\n\n", 5)
        return _put_bytes(&self._buf, _MI_PING)

    cdef int _close(self) except -1:
        if self._open == _MI_NO_BLOCK:
            return 0
        self._open = _MI_NO_BLOCK
        _put_bytes(&self._buf, _MI_BLOCK_STOP)
        _put_decimal(&self._buf, self._index)
        return _put(&self._buf, "}\n\n", 3)

    cdef Py_ssize_t _begin(self, _MiBlock kind, bytes opening) except -1:
        """Closes the open block and writes the head of the next one's content_block_start
        (then ``opening``, unless None); its index."""
        self._close()
        self._open = kind
        self._index = self._blocks
        self._blocks += 1
        _put_bytes(&self._buf, _MI_BLOCK_START)
        _put_decimal(&self._buf, self._index)
        if opening is not None:
            _put_bytes(&self._buf, opening)
        return self._index

    cdef int _delta_head(self, Py_ssize_t index, bytes kind) except -1:
        _put_bytes(&self._buf, _MI_BLOCK_DELTA)
        _put_decimal(&self._buf, index)
        return _put_bytes(&self._buf, kind)

    cdef int _raw_delta(self, _MiBlock block, bytes opening, bytes kind, object raw) except -1:
        """A text or thinking fragment (JSON text) into the open block of its kind."""
        if self._open != block:
            self._begin(block, opening)
        self._delta_head(self._index, kind)
        _mi_put_raw(&self._buf, raw)
        return _put_bytes(&self._buf, _MI_EVENT_END)

    cdef int _string_delta(self, _MiBlock block, bytes opening, bytes kind, str text) except -1:
        if self._open != block:
            self._begin(block, opening)
        self._delta_head(self._index, kind)
        _put_json_string(&self._buf, text)
        return _put_bytes(&self._buf, _MI_EVENT_END)

    cdef int _tool_calls(self, list calls) except -1:
        cdef Py_ssize_t index
        for call in calls:
            fn = call.function
            block = self._tools.get(call.index)
            if block is None:
                index = self._begin(_MI_TOOL_BLOCK, None)
                self._tools[call.index] = index
                _put_bytes(&self._buf, _MI_TOOL_START)
                _put_json_string(&self._buf, call.id or _mi_new_id("toolu_"))
                _put_bytes(&self._buf, _MI_TOOL_NAME)
                _put_json_string(&self._buf, (fn.name if fn is not None else None) or "")
                _put_bytes(&self._buf, _MI_TOOL_INPUT)
            else:
                index = block
            if fn is not None and _mi_has_text(fn.arguments):
                self._delta_head(index, _MI_JSON_DELTA)
                _mi_put_raw(&self._buf, fn.arguments)
                _put_bytes(&self._buf, _MI_EVENT_END)
        return 0

    cdef int _content_blocks(self, list blocks) except -1:
        """Non-strict thinking (Portkey's ``content_blocks`` deltas); their text also comes as
        ``content``, so it is taken from there."""
        for block in blocks:
            delta = block.get("delta") if type(block) is dict else None
            if type(delta) is not dict:
                continue
            thinking = delta.get("thinking")
            if type(thinking) is str and thinking:
                self._string_delta(_MI_THINKING_BLOCK, _MI_THINKING_START, _MI_THINKING_DELTA, thinking)
            signature = delta.get("signature")
            if type(signature) is str and signature:
                self._string_delta(_MI_THINKING_BLOCK, _MI_THINKING_START, _MI_SIGNATURE_DELTA,
                                   signature)
            if delta.get("type") == "redacted_thinking":
                self._begin(_MI_THINKING_BLOCK, _MI_REDACTED_START)
                _put_json_string(&self._buf, str(delta.get("data") or ""))
                _put_bytes(&self._buf, _MI_EVENT_END)
                self._close()
        return 0

    cdef int _delta(self, object delta) except -1:
        if delta.content_blocks:
            self._content_blocks(delta.content_blocks)
        else:
            reasoning = delta.reasoning_content
            if not _mi_has_text(reasoning):
                reasoning = delta.reasoning
            if _mi_has_text(reasoning):
                self._raw_delta(_MI_THINKING_BLOCK, _MI_THINKING_START, _MI_THINKING_DELTA, reasoning)
        if _mi_has_text(delta.content):
            self._raw_delta(_MI_TEXT_BLOCK, _MI_TEXT_START, _MI_TEXT_DELTA, delta.content)
        if _mi_has_text(delta.refusal):
            self._refused = True
            self._raw_delta(_MI_TEXT_BLOCK, _MI_TEXT_START, _MI_TEXT_DELTA, delta.refusal)
        if delta.tool_calls:
            self._tool_calls(delta.tool_calls)
        return 0

    cdef int _end(self) except -1:
        """``message_delta`` and ``message_stop``: the answer is complete."""
        if not self._started:
            self._start(None, None)
        self._close()
        self.done = True
        reason = _mi_stop_reason(self._finish, self._matched, bool(self._tools), self._refused)
        _put_bytes(&self._buf, _MI_MESSAGE_DELTA)
        _put_json_string(&self._buf, reason)
        _put_bytes(&self._buf, _MI_STOP_SEQUENCE)
        _put_json_string(&self._buf, _mi_stop_sequence(reason, self._matched, self._stop))
        _put_bytes(&self._buf, _MI_DELTA_USAGE)
        self._put_usage(True)
        _put(&self._buf, "}}\n\n", 4)
        return _put_bytes(&self._buf, _MI_MESSAGE_STOP)

    cdef int _fail(self, str kind, str message) except -1:
        self.done = True
        _put_bytes(&self._buf, _MI_ERROR_EVENT)
        _put_bytes(&self._buf, _mi_error_json(kind, message))
        return _put(&self._buf, "\n\n", 2)

    # -- reading

    cdef int take(self, const char* event, Py_ssize_t event_n, const char* data,
                  Py_ssize_t n) except -1:
        if self.done:
            return 0
        if n == 6 and memcmp(data, b"[DONE]", 6) == 0:
            return self._end()
        try:
            chunk = _mi_chunk_decode(PyBytes_FromStringAndSize(data, n))
        except (_msgspec.DecodeError, _msgspec.ValidationError, RecursionError) as exc:
            return self._fail("api_error", f"malformed stream event: {exc}")
        if chunk.error is not None:
            err = chunk.error
            kind = err.type if err.type in _MI_ERROR_NAMES else "api_error"
            return self._fail(kind, err.message or "the provider failed mid-stream")
        if not self._started:
            self._start(chunk.id, chunk.model)
        if chunk.usage is not None:
            self._usage = chunk.usage
        choices = chunk.choices
        if choices:
            choice = choices[0]
            if choice.delta is not None:
                self._delta(choice.delta)
            if choice.finish_reason is not None:
                self._finish = choice.finish_reason
                self._matched = choice.stop_reason
        return 0

    cdef bytes _taken(self):
        cdef Py_ssize_t n = self._buf.size
        if n == 0:
            return _EMPTY
        self._buf.size = 0
        return PyBytes_FromStringAndSize(self._buf.data, n)

    def feed(self, bytes chunk):
        if self.done:
            return _EMPTY
        self._buf.size = 0  # what a feed that raised left
        self._sse.scan(chunk, self)
        return self._taken()

    def finish(self):
        """The end of the chat stream. One that finished its answer but left out ``[DONE]``
        ends as if it had sent it; one cut before ``finish_reason`` ends with an error event."""
        if self.done:
            return _EMPTY
        self._buf.size = 0
        self._sse.close_into(self)
        if not self.done:
            if self._finish is not None:
                self._end()
            else:
                self._fail("api_error", "the provider's stream ended before the answer finished")
        return self._taken()
