# Anthropic Messages API <-> OpenAI chat completions.
#
# Request: an OpenAI ChatRequest (or legacy CompletionRequest) rebuilt as a Messages request
# (https://docs.anthropic.com/en/api/messages). Response: a Message as a chat.completion or
# text_completion. Stream: Anthropic's event-typed SSE
# (https://docs.anthropic.com/en/docs/build-with-claude/streaming) mapped event by event to
# OpenAI chunks through ChunkWriter; nothing is collected.
#
# Vertex AI serves the same API under another URL; its flavour is a parameter of the entry
# points (``body_version`` / ``send_model`` / ``provider``), not another mapping.
#
# Module-level names are prefixed ``_an`` / ``_An``: every provider's section shares one module.

import base64 as _base64
import binascii as _binascii
from datetime import datetime as _datetime

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.float cimport PyFloat_AS_DOUBLE

from fastgate.errors import GatewayError as _GatewayError
from fastgate.schema.anthropic import (
    Base64Source as _AnBase64Source,
    BlockDeltaEvent as _AnBlockDeltaEvent,
    BlockStartEvent as _AnBlockStartEvent,
    DocumentBlock as _AnDocumentBlock,
    ErrorEvent as _AnErrorEvent,
    FileSource as _AnFileSource,
    ImageBlock as _AnImageBlock,
    MessageDeltaBody as _AnMessageDeltaBody,
    MessageDeltaEvent as _AnMessageDeltaEvent,
    MessageParam as _AnMessageParam,
    MessagesRequest as _AnMessagesRequest,
    MessageStartEvent as _AnMessageStartEvent,
    MessageView as _AnMessageView,
    Metadata as _AnMetadata,
    ModelListView as _AnModelListView,
    OutputConfig as _AnOutputConfig,
    OutputFormat as _AnOutputFormat,
    PlainTextSource as _AnPlainTextSource,
    StartedMessage as _AnStartedMessage,
    TextBlock as _AnTextBlock,
    ToolChoice as _AnToolChoice,
    ToolDef as _AnToolDef,
    ToolResultBlock as _AnToolResultBlock,
    ToolUseBlock as _AnToolUseBlock,
    URLSource as _AnURLSource,
    UsageView as _AnUsageView,
)
from fastgate.schema.openai import (
    ChatRequest as _ChatRequest,
    CompletionRequest as _CompletionRequest,
    Message as _Message,
    RawContentChatRequest as _RawContentChatRequest,
    RawContentMessage as _RawContentMessage,
    FunctionCall as _FunctionCall,
    FilePart as _FilePart,
    ImagePart as _ImagePart,
    ModelCard as _ModelCard,
    ModelList as _ModelList,
    TextChoice as _TextChoice,
    TextCompletion as _TextCompletion,
    TextPart as _TextPart,
    ToolCall as _ToolCall,
)

#: Anthropic requires max_tokens; OpenAI clients usually leave it out.
ANTHROPIC_DEFAULT_MAX_TOKENS = 4096

cdef object _an_chat_request_decoder = _msgspec.json.Decoder(_RawContentChatRequest)
cdef object _an_content_decoder = _msgspec.json.Decoder(
    {f.name: f.type for f in _msgspec.structs.fields(_Message)}["content"])
cdef object _AnRaw = _msgspec.Raw
cdef object _an_completion_request_decoder = _msgspec.json.Decoder(_CompletionRequest)
cdef object _an_message_decoder = _msgspec.json.Decoder(_AnMessageView)
cdef object _an_start_decode = _msgspec.json.Decoder(_AnMessageStartEvent).decode
cdef object _an_block_start_decode = _msgspec.json.Decoder(_AnBlockStartEvent).decode
cdef object _an_block_delta_decode = _msgspec.json.Decoder(_AnBlockDeltaEvent).decode
cdef object _an_message_delta_decode = _msgspec.json.Decoder(_AnMessageDeltaEvent).decode
cdef object _an_error_event_decode = _msgspec.json.Decoder(_AnErrorEvent).decode
cdef object _an_models_decoder = _msgspec.json.Decoder(_AnModelListView)
cdef object _an_raw_decode = _msgspec.json.Decoder(_msgspec.Raw).decode
cdef object _AN_EMPTY_INPUT = _msgspec.Raw(b"{}")
cdef object _an_convert = _msgspec.convert
cdef dict _AN_CHAT_FIELDS = {f.name: f.type for f in _msgspec.structs.fields(_ChatRequest)}
cdef dict _AN_COMPLETION_FIELDS = {f.name: f.type for f in _msgspec.structs.fields(_CompletionRequest)}
cdef object _AN_EMPTY_SCHEMA = {"type": "object", "properties": {}}

# Stop reasons (anthropic/types/stop_reason.py) in OpenAI's vocabulary; anything else is "stop".
cdef dict _AN_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}

# SSE event names (the ``event:`` line), told apart by length and bytes (_an_event_kind).
cdef enum _AnEvent:
    _AN_OTHER
    _AN_MESSAGE_START
    _AN_BLOCK_START
    _AN_BLOCK_DELTA
    _AN_MESSAGE_DELTA
    _AN_MESSAGE_STOP
    _AN_ERROR


cdef inline _AnEvent _an_event_kind(const char* name, Py_ssize_t n) noexcept:
    if name == NULL:
        return _AN_OTHER
    if n == 19:
        if memcmp(name, b"content_block_delta", 19) == 0:
            return _AN_BLOCK_DELTA
        if memcmp(name, b"content_block_start", 19) == 0:
            return _AN_BLOCK_START
    elif n == 13:
        if memcmp(name, b"message_start", 13) == 0:
            return _AN_MESSAGE_START
        if memcmp(name, b"message_delta", 13) == 0:
            return _AN_MESSAGE_DELTA
    elif n == 12:
        if memcmp(name, b"message_stop", 12) == 0:
            return _AN_MESSAGE_STOP
    elif n == 5:
        if memcmp(name, b"error", 5) == 0:
            return _AN_ERROR
    return _AN_OTHER


# A text delta as Anthropic writes it, fields in this order
# (https://docs.anthropic.com/en/api/messages-streaming#text-delta):
# {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}
cdef bytes _AN_TEXT_HEAD = b'{"type":"content_block_delta","index":'
cdef bytes _AN_TEXT_MID = b',"delta":{"type":"text_delta","text":'


# The whole event, as Anthropic writes it: its two lines and the blank one.
# event: content_block_delta
# data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}
cdef bytes _AN_TEXT_EVENT_HEAD = b"event: content_block_delta\ndata: " + _AN_TEXT_HEAD
cdef enum:
    _AN_DELTA_HEAD_MAX = 128  # a whole event's bytes before its text, kept while it repeats


# The opening of a text block, as Anthropic writes it: nothing to send.
# {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}
cdef bytes _AN_START_HEAD = b'{"type":"content_block_start","index":'
cdef bytes _AN_START_EMPTY_TEXT = b',"content_block":{"type":"text","text":""}}'


cdef inline Py_ssize_t _an_after_index(const unsigned char* p, Py_ssize_t n, bytes head) noexcept:
    """Where ``p`` goes on after ``head`` and the block index that follows it, or -1."""
    cdef Py_ssize_t i = len(head), start = len(head)
    if n <= start or memcmp(p, <const char*>head, start) != 0:
        return -1
    while i < n and b"0" <= p[i] <= b"9":
        i += 1
    if i == start or i - start > 9:
        return -1
    return i


cdef inline Py_ssize_t _an_text_start(const unsigned char* p, Py_ssize_t n, bytes head) noexcept:
    """Offset of the quoted text of a text delta written as above from ``head`` on, or -1."""
    cdef Py_ssize_t mid = len(_AN_TEXT_MID)
    cdef Py_ssize_t i = _an_after_index(p, n, head)
    if i < 0 or n - i < mid + 4:
        return -1
    if memcmp(p + i, <const char*>_AN_TEXT_MID, mid) != 0 or p[i + mid] != b'"':
        return -1
    return i + mid


cdef inline bint _an_is_empty_text_start(const unsigned char* p, Py_ssize_t n) noexcept:
    """Whether the event is the opening of a text block with no text yet, written as above."""
    cdef Py_ssize_t tail = len(_AN_START_EMPTY_TEXT)
    cdef Py_ssize_t i = _an_after_index(p, n, _AN_START_HEAD)
    return i >= 0 and n - i == tail and memcmp(p + i, <const char*>_AN_START_EMPTY_TEXT, tail) == 0


# ---- request ---------------------------------------------------------------------------------

cdef bint _an_put_raw_text(_Out* out, object raw) except -1:
    """Whether a message's content is a non-empty string kept as its JSON text (Raw), and if so
    its text copied to ``out`` (unless NULL). msgspec checked its escapes and characters while
    skipping it, and the handler checked the whole body is UTF-8 (``check_text``), so the copy
    is valid JSON."""
    cdef Py_buffer view
    cdef bint text
    if type(raw) is not _AnRaw:
        return False  # override_params replaced the messages with decoded ones
    PyObject_GetBuffer(raw, &view, PyBUF_SIMPLE)
    try:
        text = view.len > 2 and (<const char*>view.buf)[0] == b'"'
        if text and out != NULL:
            _out_put(out, <const char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return text


cdef object _an_content(object raw, Py_ssize_t index):
    """A message's content. A non-empty string, nearly every prompt, stays the JSON text it came
    as (Raw) and is copied into Anthropic's body (``_an_put_raw_text``). The rest is decoded: a
    list of parts, None, an empty string."""
    if type(raw) is not _AnRaw:
        return raw
    if _an_put_raw_text(NULL, raw):
        return raw
    try:
        return _an_content_decoder.decode(raw)
    except _msgspec.ValidationError as exc:
        # The path as a whole-body decode would report it (``$.messages[1].content[0].type``).
        where = f"$.messages[{index}].content"
        text = str(exc)
        raise _msgspec.ValidationError(text.replace("`$", f"`{where}", 1) if "`$" in text
                                       else f"{text} - at `{where}`") from None


cdef inline bint _an_is_text(object content):
    """A string content: decoded, or JSON text kept by ``_an_content``."""
    return isinstance(content, str) or type(content) is _AnRaw


cdef inline object _an_apply_overrides(object req, dict overrides, dict fields):
    """A config's ``override_params`` set on the decoded request (the config wins); keys the
    request type does not know cannot reach Anthropic and are ignored."""
    cdef str key
    for key, value in overrides.items():
        kind = fields.get(key)
        if kind is not None:
            setattr(req, key, _an_convert(value, kind))
    return req


cdef inline object _an_data_url_source(str url):
    """``data:<media type>;base64,<data>`` → ``Base64Source``; None when not a base64 data URL."""
    cdef Py_ssize_t comma = url.find(",")
    if comma < 0:
        return None
    head = url[5:comma]
    if not head.endswith(";base64"):
        return None
    return _AnBase64Source(head[:len(head) - 7], url[comma + 1:])  # no negative index: wraparound is off


cdef inline object _an_image_block(object part):
    url = part.image_url.url
    if url.startswith("data:"):
        source = _an_data_url_source(url)
        if source is None:
            raise _GatewayError(400, "image_url data URLs must be base64-encoded", param="messages")
        # A PDF sent as an image URL is a document to Anthropic (DocumentBlockParam).
        if source.media_type == "application/pdf":
            return _AnDocumentBlock(source, part.cache_control)
        return _AnImageBlock(source, part.cache_control)
    # http(s) URLs: Anthropic fetches them itself (URLImageSourceParam).
    return _AnImageBlock(_AnURLSource(url), part.cache_control)


cdef inline object _an_file_block(object part):
    """OpenAI ``file`` parts (PDFs, text) as Anthropic ``document`` blocks (DocumentBlockParam)."""
    ref = part.file
    title = ref.filename
    if ref.file_data:
        data = ref.file_data
        if data.startswith("http://") or data.startswith("https://"):
            return _AnDocumentBlock(_AnURLSource(data), title=title)
        if data.startswith("data:"):
            source = _an_data_url_source(data)
            if source is None:
                raise _GatewayError(400, "file_data must be base64-encoded", param="messages")
        else:
            source = _AnBase64Source("application/pdf", data)  # OpenAI's file inputs are PDFs
        if source.media_type == "text/plain":
            # Plain text goes as a text source (PlainTextSourceParam), not base64.
            try:
                text = _base64.b64decode(source.data, validate=True).decode("utf-8")
            except (_binascii.Error, UnicodeDecodeError):
                raise _GatewayError(400, "text/plain file_data is not base64 UTF-8", param="messages")
            return _AnDocumentBlock(_AnPlainTextSource(text), title=title)
        return _AnDocumentBlock(source, title=title)
    if ref.file_id:
        return _AnDocumentBlock(_AnFileSource(ref.file_id), title=title)
    raise _GatewayError(400, "file parts need file_data or file_id", param="messages")


cdef inline list _an_user_blocks(object content):
    cdef list blocks = []
    for part in content:
        if isinstance(part, _TextPart):
            if part.text:
                blocks.append(_AnTextBlock(part.text, part.cache_control))
        elif isinstance(part, _ImagePart):
            blocks.append(_an_image_block(part))
        elif isinstance(part, _FilePart):
            blocks.append(_an_file_block(part))
        else:
            raise _GatewayError(400, "audio input is not supported by anthropic", param="messages")
    return blocks


cdef inline list _an_text_blocks(object content):
    """Text parts only (system prompts and assistant text); empty text is refused by Anthropic."""
    cdef list blocks = []
    if _an_is_text(content):
        if content:
            blocks.append(_AnTextBlock(content))
        return blocks
    if content is None:
        return blocks
    for part in content:
        if isinstance(part, _TextPart) and part.text:
            blocks.append(_AnTextBlock(part.text, part.cache_control))
    return blocks


cdef inline object _an_tool_input(str arguments):
    """The call's JSON arguments as Anthropic's ``input`` object; not an object → ``{}``."""
    if not arguments:
        return _AN_EMPTY_INPUT
    try:
        raw = _an_raw_decode(arguments.encode())
    except _msgspec.DecodeError:
        return _AN_EMPTY_INPUT
    return raw if bytes(raw)[:1] == b"{" else _AN_EMPTY_INPUT


cdef inline object _an_tool_result(object message, object content):
    # A tool result holds text or images (ToolResultBlockParam.content), e.g. a screenshot.
    if content is None:
        content = ""
    elif not _an_is_text(content):
        content = [b for b in _an_user_blocks(content) if not isinstance(b, _AnDocumentBlock)]
    return _AnToolResultBlock(message.tool_call_id or "", content)


cdef class _AnTurns:
    """Messages in Anthropic's order: consecutive turns of one role merged into one, since the
    Messages API alternates user and assistant (tool results that follow each other become one
    user turn holding several ``tool_result`` blocks)."""

    cdef list messages
    cdef str _role
    cdef object _last

    def __cinit__(self):
        self.messages = []
        self._role = None
        self._last = None

    cdef void add(self, str role, object content):
        if not content:
            return  # Anthropic refuses empty turns
        if role == self._role:
            merged = self._last.content
            if _an_is_text(merged):
                merged = [_AnTextBlock(merged)]
            if _an_is_text(content):
                merged.append(_AnTextBlock(content))
            else:
                merged.extend(content)
            self._last.content = merged
            return
        self._role = role
        self._last = _AnMessageParam(role, content)
        self.messages.append(self._last)


cdef inline object _an_named_tool_choice(object choice):
    if isinstance(choice, str):
        # "required" is Anthropic's "any" (ToolChoiceAnyParam).
        return _AnToolChoice("any" if choice == "required" else choice)
    return _AnToolChoice("tool", choice.function.name)


cdef inline object _an_tools(object tools):
    cdef list out = []
    for tool in tools:
        fn = tool.function
        if tool.type != "function" or fn is None:
            continue  # OpenAI's built-in tool types have no Anthropic equivalent
        out.append(_AnToolDef(fn.name, fn.parameters or _AN_EMPTY_SCHEMA, fn.description))
    return out or None


cdef inline object _an_clamp_temperature(object value):
    # Anthropic's temperature ranges 0.0-1.0 (OpenAI's 0-2).
    if value is None:
        return None
    return 0.0 if value < 0 else (1.0 if value > 1 else value)


cdef inline object _an_stop_sequences(object stop):
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop) or None


cdef inline bytes _an_encode_request(object out, object model, object body_version, bint send_model):
    if send_model:
        out.model = model
    out.anthropic_version = body_version
    return _chunk_encode_json(out)


# ---- request: a conversation of text turns ---------------------------------------------------
# Nearly every request is text turns and sampling parameters. Its Messages body is written from
# a template into one buffer, each message's text copied as the JSON it came in, instead of
# building a MessagesRequest of MessageParams and encoding it: the same bytes (the tests compare
# the two byte for byte) for 40% of the instructions (5,400 against 13,100 for the benchmark's
# request). A request holding anything else (tools, images, override_params, turns to merge)
# returns None from here and takes the Struct path.

cdef bytes _AN_BODY_MAX_TOKENS = b'{"max_tokens":'
cdef bytes _AN_BODY_MESSAGES = b',"messages":['
cdef bytes _AN_BODY_USER_TURN = b'{"role":"user","content":'
cdef bytes _AN_BODY_ASSISTANT_TURN = b'{"role":"assistant","content":[{"type":"text","text":'
cdef bytes _AN_BODY_TEXT_BLOCK = b'{"type":"text","text":'
cdef bytes _AN_BODY_MODEL = b',"model":'
cdef bytes _AN_BODY_VERSION = b',"anthropic_version":'
cdef bytes _AN_BODY_SYSTEM = b',"system":['
cdef bytes _AN_BODY_STOP = b',"stop_sequences":['
cdef bytes _AN_BODY_TEMPERATURE = b',"temperature":'
cdef bytes _AN_BODY_TOP_P = b',"top_p":'
cdef bytes _AN_BODY_TOP_K = b',"top_k":'
cdef bytes _AN_BODY_METADATA = b',"metadata":{"user_id":'
cdef bytes _AN_BODY_STREAM = b',"stream":true'
cdef object _AN_MAX_COUNT = 1 << 62


cdef inline bint _an_put_count(_Out* out, object value) except -1:
    """A non-negative int written in decimal; False for anything else."""
    if type(value) is not int or value < 0 or value > _AN_MAX_COUNT:
        return False
    _out_put_decimal(out, value)
    return True


cdef dict _AN_FLOAT_TEXT = {}  # a float's JSON as msgspec writes it, for the few values clients send
cdef double _an_last_float = 0.0  # the last float written (0: none), and its JSON
cdef bytes _an_last_float_text = None


cdef inline int _an_put_float(_Out* out, object value) except -1:
    """``value`` as msgspec writes it (the Struct path's bytes), remembered: a deployment's
    clients send a handful of temperatures and top_p values, and the last one is compared
    before any look-up. Zero is not remembered, since -0.0 == 0.0 as a key."""
    global _an_last_float, _an_last_float_text
    if type(value) is float and PyFloat_AS_DOUBLE(value) == _an_last_float and _an_last_float != 0:
        return _out_put_bytes(out, _an_last_float_text)
    text = _AN_FLOAT_TEXT.get(value) if value != 0 else None
    if text is None:
        text = _chunk_encode_json(value)
        if value != 0 and len(_AN_FLOAT_TEXT) < 256:
            _AN_FLOAT_TEXT[value] = text
    if type(value) is float and value != 0:
        _an_last_float, _an_last_float_text = PyFloat_AS_DOUBLE(value), text
    return _out_put_bytes(out, text)


cdef inline int _an_put_strings(_Out* out, list values) except -1:
    cdef Py_ssize_t i
    for i in range(len(values)):
        if i:
            _out_put(out, ",", 1)
        _answer_put_json_string(out, values[i])
    return _out_put(out, "]", 1)


cdef _FdStructField _AN_REQ_TOOLS = _FdStructField(_RawContentChatRequest, "tools")
cdef _FdStructField _AN_REQ_RESPONSE_FORMAT = _FdStructField(_RawContentChatRequest, "response_format")
cdef _FdStructField _AN_REQ_THINKING = _FdStructField(_RawContentChatRequest, "thinking")
cdef _FdStructField _AN_REQ_MAX_COMPLETION_TOKENS = _FdStructField(_RawContentChatRequest,
                                                              "max_completion_tokens")
cdef _FdStructField _AN_REQ_MAX_TOKENS = _FdStructField(_RawContentChatRequest, "max_tokens")
cdef _FdStructField _AN_REQ_MESSAGES = _FdStructField(_RawContentChatRequest, "messages")
cdef _FdStructField _AN_REQ_MODEL = _FdStructField(_RawContentChatRequest, "model")
cdef _FdStructField _AN_REQ_STOP = _FdStructField(_RawContentChatRequest, "stop")
cdef _FdStructField _AN_REQ_TEMPERATURE = _FdStructField(_RawContentChatRequest, "temperature")
cdef _FdStructField _AN_REQ_TOP_P = _FdStructField(_RawContentChatRequest, "top_p")
cdef _FdStructField _AN_REQ_TOP_K = _FdStructField(_RawContentChatRequest, "top_k")
cdef _FdStructField _AN_REQ_USER = _FdStructField(_RawContentChatRequest, "user")
cdef _FdStructField _AN_REQ_STREAM = _FdStructField(_RawContentChatRequest, "stream")
cdef _FdStructField _AN_MSG_ROLE = _FdStructField(_RawContentMessage, "role")
cdef _FdStructField _AN_MSG_CONTENT = _FdStructField(_RawContentMessage, "content")
cdef _FdStructField _AN_MSG_TOOL_CALLS = _FdStructField(_RawContentMessage, "tool_calls")
cdef _FdStructField _AN_MSG_CONTENT_BLOCKS = _FdStructField(_RawContentMessage, "content_blocks")


cdef object _an_text_turns_request(object req, object body_version, bint send_model,
                                   int default_max_tokens):
    """The Messages body of a request of text turns (see above), or None."""
    cdef char stack[4096]
    cdef char system_stack[512]
    cdef _Out out, system
    cdef str role, last = None
    if (_AN_REQ_TOOLS.of(req) or _AN_REQ_RESPONSE_FORMAT.of(req) is not None
            or _AN_REQ_THINKING.of(req) is not None):
        return None
    out.data, out.size, out.cap, out.heap = stack, 0, 4096, False
    system.data, system.size, system.cap, system.heap = system_stack, 0, 512, False
    try:
        _out_put_bytes(&out, _AN_BODY_MAX_TOKENS)
        max_tokens = (_AN_REQ_MAX_COMPLETION_TOKENS.of(req) or _AN_REQ_MAX_TOKENS.of(req)
                      or default_max_tokens)
        if not _an_put_count(&out, max_tokens):
            return None
        _out_put_bytes(&out, _AN_BODY_MESSAGES)
        for message in _AN_REQ_MESSAGES.of(req):
            role = _AN_MSG_ROLE.of(message)
            if role == "system" or role == "developer":
                # Every system message is a text block of top-level ``system``, as on the Struct path.
                if system.size:
                    _out_put(&system, ",", 1)
                _out_put_bytes(&system, _AN_BODY_TEXT_BLOCK)
                if not _an_put_raw_text(&system, _AN_MSG_CONTENT.of(message)):
                    return None
                _out_put(&system, "}", 1)
                continue
            if role == last:
                return None  # consecutive turns of one role are merged on the Struct path
            if last is not None:
                _out_put(&out, ",", 1)
            if role == "user":
                _out_put_bytes(&out, _AN_BODY_USER_TURN)
            elif (role == "assistant" and not _AN_MSG_TOOL_CALLS.of(message)
                  and not _AN_MSG_CONTENT_BLOCKS.of(message)):
                _out_put_bytes(&out, _AN_BODY_ASSISTANT_TURN)
            else:
                return None
            if not _an_put_raw_text(&out, _AN_MSG_CONTENT.of(message)):
                return None
            # A user's text is sent as a string; an assistant's as a text block (_an_text_blocks).
            if role == "user":
                _out_put(&out, "}", 1)
            else:
                _out_put(&out, "}]}", 3)
            last = role
        _out_put(&out, "]", 1)
        model = _AN_REQ_MODEL.of(req)
        if send_model and model is not None:
            _out_put_bytes(&out, _AN_BODY_MODEL)
            _answer_put_json_string(&out, model)
        if body_version is not None:
            _out_put_bytes(&out, _AN_BODY_VERSION)
            _answer_put_json_string(&out, body_version)
        if system.size:
            _out_put_bytes(&out, _AN_BODY_SYSTEM)
            _out_put(&out, system.data, system.size)
            _out_put(&out, "]", 1)
        stop = _an_stop_sequences(_AN_REQ_STOP.of(req))
        if stop is not None:
            _out_put_bytes(&out, _AN_BODY_STOP)
            _an_put_strings(&out, stop)
        value = _an_clamp_temperature(_AN_REQ_TEMPERATURE.of(req))
        if value is not None:
            _out_put_bytes(&out, _AN_BODY_TEMPERATURE)
            _an_put_float(&out, value)
        value = _AN_REQ_TOP_P.of(req)
        if value is not None:
            _out_put_bytes(&out, _AN_BODY_TOP_P)
            _an_put_float(&out, value)
        value = _AN_REQ_TOP_K.of(req)
        if value is not None:
            _out_put_bytes(&out, _AN_BODY_TOP_K)
            if not _an_put_count(&out, value):
                return None
        value = _AN_REQ_USER.of(req)
        if value:
            _out_put_bytes(&out, _AN_BODY_METADATA)
            _answer_put_json_string(&out, value)
            _out_put(&out, "}", 1)
        if _AN_REQ_STREAM.of(req):
            _out_put_bytes(&out, _AN_BODY_STREAM)
        _out_put(&out, "}", 1)
        return PyBytes_FromStringAndSize(out.data, out.size)
    finally:
        if out.heap:
            PyMem_Free(out.data)
        if system.heap:
            PyMem_Free(system.data)


def openai_chat_to_anthropic(bytes body, dict overrides=None, object request=None, *,
                             object body_version=None, bint send_model=True,
                             int default_max_tokens=ANTHROPIC_DEFAULT_MAX_TOKENS):
    """An OpenAI chat request as a Messages request body.

    ``request``: the body already decoded as a ``RawContentChatRequest`` (the handler does when
    Anthropic is the only target); it is not changed, and is best passed by position (a keyword
    costs a compiled function a parse of its name on every request). ``body_version`` / ``send_model=False``
    give Vertex AI's flavour (version in the body, model in the URL). Parameters Anthropic cannot
    take (n, seed, penalties, logprobs, json_object response_format, reasoning_effort) are
    dropped, never sent.
    """
    req = _an_chat_request_decoder.decode(body) if request is None else request
    if overrides:
        # A copy: the decoded request is the call's view, and every attempt maps it afresh.
        req = _an_apply_overrides(_msgspec.structs.replace(req), overrides, _AN_CHAT_FIELDS)
    else:
        written = _an_text_turns_request(req, body_version, send_model, default_max_tokens)
        if written is not None:
            return written
    cdef list system = []
    cdef _AnTurns turns = _AnTurns()
    cdef str role
    cdef Py_ssize_t index
    for index, message in enumerate(req.messages):
        role = message.role
        content = _an_content(message.content, index)
        if role == "system" or role == "developer":
            # Anthropic has no system role: every system message goes to top-level ``system``.
            system.extend(_an_text_blocks(content))
        elif role == "user":
            if _an_is_text(content):
                turns.add("user", content)
            elif content is not None:
                turns.add("user", _an_user_blocks(content))
        elif role == "assistant":
            # Blocks a non-strict answer gave the client (thinking with its signature, text) go
            # back verbatim: Anthropic requires the signed thinking block in a tool-use loop
            # (https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking).
            if message.content_blocks:
                blocks = list(message.content_blocks)
            else:
                blocks = _an_text_blocks(content)
            if message.tool_calls:
                for call in message.tool_calls:
                    blocks.append(_AnToolUseBlock(call.id, call.function.name,
                                                _an_tool_input(call.function.arguments)))
            turns.add("assistant", blocks)
        elif role == "tool":
            turns.add("user", [_an_tool_result(message, content)])
        else:
            raise _GatewayError(400, "legacy function messages are not supported by anthropic; "
                                "send tools and tool messages", param="messages")
    max_tokens = req.max_completion_tokens or req.max_tokens or default_max_tokens
    out = _AnMessagesRequest(max_tokens, turns.messages, system=system or None,
                           stop_sequences=_an_stop_sequences(req.stop),
                           temperature=_an_clamp_temperature(req.temperature),
                           top_p=req.top_p, top_k=req.top_k, thinking=req.thinking,
                           stream=req.stream)
    if req.user:
        out.metadata = _AnMetadata(req.user)
    if req.tools:
        out.tools = _an_tools(req.tools)
    if out.tools is not None:
        # tool_choice is only valid beside tools; parallel_tool_calls=false is the choice's
        # disable_parallel_tool_use (ToolChoiceAutoParam / AnyParam / ToolParam).
        choice = _an_named_tool_choice(req.tool_choice) if req.tool_choice is not None else None
        if req.parallel_tool_calls is False:
            if choice is None:
                choice = _AnToolChoice("auto")
            if choice.type != "none":
                choice.disable_parallel_tool_use = True
        out.tool_choice = choice
    fmt = req.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is not None \
            and fmt.json_schema.schema is not None:
        # Structured outputs: OutputConfigParam.format (JSONOutputFormatParam).
        out.output_config = _AnOutputConfig(_AnOutputFormat(fmt.json_schema.schema))
    return _an_encode_request(out, req.model, body_version, send_model)


def openai_completion_to_anthropic(bytes body, dict overrides=None, *, object body_version=None,
                                   bint send_model=True,
                                   int default_max_tokens=ANTHROPIC_DEFAULT_MAX_TOKENS):
    """A legacy ``/v1/completions`` request as one user turn of a Messages request."""
    req = _an_completion_request_decoder.decode(body)
    if overrides:
        _an_apply_overrides(req, overrides, _AN_COMPLETION_FIELDS)
    prompt = req.prompt
    if prompt is None or isinstance(prompt, str):
        content = prompt or ""
    else:
        content = [_AnTextBlock(p) for p in prompt if p] or ""
    out = _AnMessagesRequest(req.max_tokens or default_max_tokens, [_AnMessageParam("user", content)],
                           stop_sequences=_an_stop_sequences(req.stop),
                           temperature=_an_clamp_temperature(req.temperature), top_p=req.top_p,
                           stream=req.stream)
    if req.user:
        out.metadata = _AnMetadata(req.user)
    return _an_encode_request(out, req.model, body_version, send_model)


# ---- response --------------------------------------------------------------------------------

cdef inline str _an_finish_reason(object stop_reason, bint strict):
    if stop_reason is None:
        return "stop"
    if not strict:
        return stop_reason  # Portkey's non-strict mode keeps the provider's own reason
    return _AN_FINISH_REASONS.get(stop_reason, "stop")


cdef inline bytes _an_usage(object input_tokens, long output_tokens, object cache_creation,
                          object cache_read):
    """OpenAI usage as JSON text (for the answer's template, or a Raw in a chunk or text
    completion Struct). Anthropic's input_tokens excludes the cache (its Usage docs: total input
    is the sum of input_tokens, cache_creation_input_tokens and cache_read_input_tokens);
    OpenAI's prompt_tokens counts it all."""
    cdef long created = cache_creation or 0
    cdef long read = cache_read or 0
    return _answer_usage_json((input_tokens or 0) + created + read, output_tokens, read, created)


cdef inline bytes _an_message_usage(object u):
    return _an_usage(u.input_tokens, u.output_tokens, u.cache_creation_input_tokens,
                  u.cache_read_input_tokens)


# What an answer, message_start and message_delta are read for (kernels/jsonread.pxi), slot by
# slot: usage's four figures in 4-7 for each.
cdef enum:
    _AN_SLOT_ID = 1
    _AN_SLOT_MODEL = 2
    _AN_SLOT_STOP_REASON = 1  # message_delta's
    _AN_SLOT_USAGE = 3
    _AN_SLOT_INPUT = 4
    _AN_SLOT_OUTPUT = 5
    _AN_SLOT_CACHE_CREATION = 6
    _AN_SLOT_CACHE_READ = 7
    _AN_SLOT_CONTENT = 8
    _AN_SLOT_ANSWER_STOP = 9  # an answer's stop_reason
    _AN_SLOT_BLOCK_TYPE = 10
    _AN_SLOT_BLOCK_TEXT = 11
    _AN_SLOTS = 12

cdef _JrObject _AN_USAGE_READ = _JrObject(
    (b"input_tokens", b"output_tokens", b"cache_creation_input_tokens", b"cache_read_input_tokens"),
    (_AN_SLOT_INPUT, _AN_SLOT_OUTPUT, _AN_SLOT_CACHE_CREATION, _AN_SLOT_CACHE_READ), (None,) * 4)
cdef _JrObject _AN_ANSWER_READ = _JrObject(
    (b"id", b"model", b"content", b"stop_reason", b"usage"),
    (_AN_SLOT_ID, _AN_SLOT_MODEL, _AN_SLOT_CONTENT, _AN_SLOT_ANSWER_STOP, _AN_SLOT_USAGE),
    (None, None, None, None, _AN_USAGE_READ))
cdef _JrObject _AN_TEXT_BLOCK_READ = _JrObject(
    (b"type", b"text"), (_AN_SLOT_BLOCK_TYPE, _AN_SLOT_BLOCK_TEXT), (None, None))
cdef _JrObject _AN_START_READ = _JrObject((b"message",), (0,), (_JrObject(
    (b"id", b"model", b"usage"), (_AN_SLOT_ID, _AN_SLOT_MODEL, _AN_SLOT_USAGE),
    (None, None, _AN_USAGE_READ)),))
cdef _JrObject _AN_MESSAGE_DELTA_READ = _JrObject((b"delta", b"usage"), (0, _AN_SLOT_USAGE), (
    _JrObject((b"stop_reason",), (_AN_SLOT_STOP_REASON,), (None,)), _AN_USAGE_READ))


cdef inline object _an_figure(const unsigned char* p, Py_ssize_t* spans, int slot, object absent):
    if spans[2 * slot] < 0:
        return absent
    return _jr_int(p, spans[2 * slot], spans[2 * slot + 1])


cdef object _an_read_usage(const unsigned char* p, Py_ssize_t* spans):
    """The usage figures read into ``spans``, ``(input, output, cache creation, cache read)``
    (UsageView's defaults for those absent), or None when usage must be decoded instead."""
    cdef Py_ssize_t at = spans[2 * _AN_SLOT_USAGE]
    if at >= 0 and p[at] != b"{":
        return None
    input_tokens = _an_figure(p, spans, _AN_SLOT_INPUT, None)
    output_tokens = _an_figure(p, spans, _AN_SLOT_OUTPUT, 0)
    cache_creation = _an_figure(p, spans, _AN_SLOT_CACHE_CREATION, None)
    cache_read = _an_figure(p, spans, _AN_SLOT_CACHE_READ, None)
    if (input_tokens is _JR_UNREAD or output_tokens is None or output_tokens is _JR_UNREAD
            or cache_creation is _JR_UNREAD or cache_read is _JR_UNREAD):
        return None
    return (input_tokens, output_tokens, cache_creation, cache_read)


cdef inline object _an_text(const unsigned char* p, Py_ssize_t* spans, int slot):
    """A message's id or model: "" when absent, as MessageView's defaults."""
    if spans[2 * slot] < 0:
        return ""
    return _jr_str(p, spans[2 * slot], spans[2 * slot + 1])


cdef bytes _an_answer_read(bytes body, str provider):
    """A Message of one text block (or none) as the ``chat.completion``, mapped from its bytes:
    the text copied as the JSON it came in (see ``_js_json_string_end``). None when it must be
    decoded instead: any other block, more than one, a text the template cannot copy, a value
    the reader leaves to the decoder."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(body)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(body), i, end, text_at = -1, text_end = -1
    cdef Py_ssize_t spans[2 * _AN_SLOTS]
    if not _jr_read_whole(p, n, _AN_ANSWER_READ, spans, _AN_SLOTS):
        return None
    id = _an_text(p, spans, _AN_SLOT_ID)
    model = _an_text(p, spans, _AN_SLOT_MODEL)
    if id is None or id is _JR_UNREAD or model is None or model is _JR_UNREAD:
        return None
    stop_reason = None
    if spans[2 * _AN_SLOT_ANSWER_STOP] >= 0:
        stop_reason = _jr_str(p, spans[2 * _AN_SLOT_ANSWER_STOP], spans[2 * _AN_SLOT_ANSWER_STOP + 1])
        if stop_reason is _JR_UNREAD:
            return None
    figures = _an_read_usage(p, spans)
    if figures is None:
        return None
    i = spans[2 * _AN_SLOT_CONTENT]
    if i >= 0:
        end = spans[2 * _AN_SLOT_CONTENT + 1]
        if p[i] != b"[":
            return None
        i = _jr_ws(p, i + 1, end)
        if p[i] != b"]":
            i = _jr_read(p, i, end, _AN_TEXT_BLOCK_READ, spans)
            if i < 0 or _jr_ws(p, i, end) != end - 1:
                return None  # not an object, or more than one block
            i = spans[2 * _AN_SLOT_BLOCK_TYPE]
            text_at, text_end = spans[2 * _AN_SLOT_BLOCK_TEXT], spans[2 * _AN_SLOT_BLOCK_TEXT + 1]
            if i < 0 or spans[2 * _AN_SLOT_BLOCK_TYPE + 1] - i != 6 or memcmp(p + i, b'"text"', 6) != 0 \
                    or text_at < 0 or p[text_at] != b'"' \
                    or _js_json_string_end(p, text_at + 1, text_end) != text_end - 1:
                return None
    return _answer_chat_completion_json(
        id, model, None, _SSE_EMPTY, _an_finish_reason(stop_reason, True),
        _an_usage(figures[0], figures[1], figures[2], figures[3]), provider,
        <const char*>p + text_at if text_at >= 0 else NULL, text_end - text_at)


cdef inline object _an_decode_message(bytes body, str provider):
    try:
        return _an_message_decoder.decode(body)
    except (_msgspec.DecodeError, _msgspec.ValidationError):
        text = body[:500].decode("utf-8", "replace")
        raise _GatewayError(502, f"Invalid response received from {provider}: {text}",
                            type="api_error", provider=provider)


def anthropic_to_openai_chat(bytes body, str provider, bint strict=True):
    """A Message as an OpenAI ``chat.completion``; non-strict mode adds ``content_blocks``
    (thinking and text blocks) and keeps Anthropic's stop reason."""
    if strict:
        answer = _an_answer_read(body, provider)
        if answer is not None:
            return answer
    msg = _an_decode_message(body, provider)
    cdef list texts = []
    cdef list calls = []
    cdef list blocks = []
    cdef str kind
    for block in msg.content:
        kind = block.type
        if kind == "text":
            texts.append(block.text)
            if not strict:
                blocks.append({"type": "text", "text": block.text})
        elif kind == "tool_use":
            calls.append(_ToolCall(block.id, _FunctionCall(block.name, bytes(block.input).decode())))
        elif not strict:
            if kind == "thinking":
                blocks.append({"type": "thinking", "thinking": block.thinking or "",
                               "signature": block.signature or ""})
            elif kind == "redacted_thinking":
                blocks.append({"type": "redacted_thinking", "data": block.data or ""})
    extra = _SSE_EMPTY
    if calls:
        extra = b',"tool_calls":' + _chunk_encode_json(calls)
    if blocks:
        extra += b',"content_blocks":' + _chunk_encode_json(blocks)
    return _answer_chat_completion_json(msg.id, msg.model, "".join(texts) if texts else None, extra,
                                 _an_finish_reason(msg.stop_reason, strict),
                                 _an_message_usage(msg.usage), provider)


def anthropic_to_openai_completion(bytes body, str provider):
    """A Message as a legacy ``text_completion``."""
    msg = _an_decode_message(body, provider)
    text = "".join([b.text for b in msg.content if b.type == "text"])
    choice = _TextChoice(0, text, _an_finish_reason(msg.stop_reason, True))
    return _chunk_encode_json(_TextCompletion(msg.id, _chunk_now(), msg.model, [choice],
                                        usage=_msgspec.Raw(_an_message_usage(msg.usage)),
                                        provider=provider))


def anthropic_models_to_openai(bytes body, str provider):
    """``GET /v1/models`` (ModelInfo list) as OpenAI's model list."""
    try:
        listing = _an_models_decoder.decode(body)
    except (_msgspec.DecodeError, _msgspec.ValidationError):
        raise _GatewayError(502, f"Invalid response received from {provider}: "
                            f"{body[:500].decode('utf-8', 'replace')}", type="api_error",
                            provider=provider)
    cards = []
    for info in listing.data:
        try:
            created = int(_datetime.fromisoformat(info.created_at).timestamp())
        except ValueError:
            created = 0
        cards.append(_ModelCard(info.id, created=created, owned_by=provider))
    return _chunk_encode_json(_ModelList(cards))


# ---- stream ----------------------------------------------------------------------------------

cdef _FdStructField _AN_START_MESSAGE = _FdStructField(_AnMessageStartEvent, "message")
cdef _FdStructField _AN_STARTED_ID = _FdStructField(_AnStartedMessage, "id")
cdef _FdStructField _AN_STARTED_MODEL = _FdStructField(_AnStartedMessage, "model")
cdef _FdStructField _AN_STARTED_USAGE = _FdStructField(_AnStartedMessage, "usage")
cdef _FdStructField _AN_MESSAGE_DELTA_BODY = _FdStructField(_AnMessageDeltaEvent, "delta")
cdef _FdStructField _AN_MESSAGE_DELTA_USAGE = _FdStructField(_AnMessageDeltaEvent, "usage")
cdef _FdStructField _AN_DELTA_STOP_REASON = _FdStructField(_AnMessageDeltaBody, "stop_reason")
cdef _FdStructField _AN_USAGE_INPUT = _FdStructField(_AnUsageView, "input_tokens")
cdef _FdStructField _AN_USAGE_OUTPUT = _FdStructField(_AnUsageView, "output_tokens")
cdef _FdStructField _AN_USAGE_CACHE_CREATION = _FdStructField(_AnUsageView, "cache_creation_input_tokens")
cdef _FdStructField _AN_USAGE_CACHE_READ = _FdStructField(_AnUsageView, "cache_read_input_tokens")

cdef class _AnTextChunks:
    """The legacy completions flavour of ChunkWriter's interface: ``text_completion`` chunks."""

    cdef str id
    cdef str model
    cdef long created
    cdef object provider
    cdef bint include_usage

    def __init__(self, str id, str model, object provider=None, bint include_usage=False):
        self.id = id
        self.model = model
        self.created = _chunk_now()
        self.provider = provider if provider is not None else _CHUNK_UNSET
        self.include_usage = include_usage

    cdef bytes _chunk(self, str text, object finish_reason):
        return _chunk_frame(_chunk_encode_json(_TextCompletion(self.id, self.created, self.model,
                                                   [_TextChoice(0, text, finish_reason)],
                                                   provider=self.provider)))

    def role(self):
        return _SSE_EMPTY

    def content(self, str text):
        return self._chunk(text, None)

    def tool_call_start(self, int index, str call_id, str name, str arguments=""):
        return _SSE_EMPTY

    def tool_call_arguments(self, int index, str arguments):
        return _SSE_EMPTY

    def extra(self, **fields):
        text = fields.get("content")
        return self._chunk(text, None) if text else _SSE_EMPTY

    def finish(self, str finish_reason, object usage=None):
        out = self._chunk("", finish_reason)
        if self.include_usage and usage is not None:
            out += _chunk_frame(_chunk_encode_json(_TextCompletion(self.id, self.created, self.model, [],
                                                       usage=usage, provider=self.provider)))
        return out + _CHUNK_SSE_DONE

    def error(self, str message, str type="api_error"):
        provider = None if self.provider is _CHUNK_UNSET else self.provider
        return _chunk_frame(_error_body(502, message, type=type, provider=provider)) + _CHUNK_SSE_DONE


# The chunks the events of one read make, taken as bytes before ``feed`` or ``finish`` returns:
# one buffer for every stream (no feed runs inside another), rather than one per stream, which
# an open stream would hold between its reads (4 KB each) and which a read of twenty deltas
# outgrew (a malloc, a copy and two frees a stream).
cdef _Out _an_chunks
_an_chunks.data = <char*>PyMem_Malloc(16384)
if _an_chunks.data == NULL:
    raise MemoryError()
_an_chunks.size, _an_chunks.cap, _an_chunks.heap = 0, 16384, True


@cython.final
cdef class AnthropicStream(EventSink):
    """Anthropic's event-typed SSE as OpenAI chunks, event by event.

    ``message_start`` opens the stream (the first chunk carries the role); text deltas become
    content deltas; each ``tool_use`` block becomes the next OpenAI tool-call index, its
    ``input_json_delta`` fragments argument deltas sent as they arrive; ``message_delta`` holds
    the stop reason and cumulative usage until ``message_stop`` ends the stream with the finish
    chunk, the usage chunk when asked, and ``[DONE]``. An ``error`` event ends it with an error
    chunk and ``[DONE]``. ``ping``, ``content_block_stop`` and event types Anthropic adds later
    (its versioning policy says to expect them) produce nothing.

    The events of a read are taken as pointers into it (``EventSink``) and their chunks written
    into one buffer (``_an_chunks``); text deltas and the opening of a text block, nearly every
    event, are mapped from their bytes without decoding.
    """

    cdef SSEDecoder _sse
    cdef char _delta_head[_AN_DELTA_HEAD_MAX]  # the last text delta's bytes up to its text's quote
    cdef Py_ssize_t _delta_head_n  # (0: none yet)
    cdef object _writer
    cdef ChunkWriter _chat  # the writer again, typed, when it is a ChunkWriter: deltas skip dispatch
    cdef readonly bint done
    cdef str _provider
    cdef bint _include_usage
    cdef bint _strict
    cdef bint _text
    cdef dict _tool_index
    cdef object _stop_reason
    cdef object _input_tokens
    cdef int _output_tokens
    cdef object _cache_creation
    cdef object _cache_read

    def __init__(self, str provider, bint include_usage=False, bint strict=True,
                 bint text_completion=False):
        self._sse = SSEDecoder()
        self._delta_head_n = 0
        self._writer = None
        self._chat = None
        self.done = False
        self._provider = provider
        self._include_usage = include_usage
        self._strict = strict
        self._text = text_completion
        self._tool_index = None  # made at the first tool_use block
        self._stop_reason = None
        self._input_tokens = None
        self._output_tokens = 0
        self._cache_creation = None
        self._cache_read = None

    cdef object _open(self, str id, str model):
        if self._text:
            self._writer = _AnTextChunks(id, model, self._provider, self._include_usage)
        else:
            self._writer = self._chat = ChunkWriter(id, model, self._provider, self._include_usage)
        return self._writer

    cdef inline object _out(self):
        if self._writer is None:
            # No message_start (an error came first): a fallback id, as Portkey's chunks have.
            return self._open(f"{self._provider}-{int(_time.time() * 1000)}", "")
        return self._writer

    cdef int _take_usage(self, object u) except -1:
        return self._take_figures(_AN_USAGE_INPUT.of(u), _AN_USAGE_OUTPUT.of(u),
                                  _AN_USAGE_CACHE_CREATION.of(u), _AN_USAGE_CACHE_READ.of(u))

    cdef int _take_figures(self, object input_tokens, int output_tokens, object cache_creation,
                           object cache_read) except -1:
        # message_start has the input figures; message_delta the cumulative ones (MessageDeltaUsage).
        if input_tokens is not None:
            self._input_tokens = input_tokens
        if cache_creation is not None:
            self._cache_creation = cache_creation
        if cache_read is not None:
            self._cache_read = cache_read
        self._output_tokens = output_tokens
        return 0

    cdef bint _read_usage(self, const unsigned char* p, Py_ssize_t* spans) except -1:
        """The usage figures read into ``spans`` taken; False, nothing taken, when usage must be
        decoded instead."""
        figures = _an_read_usage(p, spans)
        if figures is None:
            return False
        return self._take_figures(figures[0], figures[1], figures[2], figures[3]) == 0

    cdef bint _read_start(self, const unsigned char* p, Py_ssize_t n) except -1:
        """message_start's id, model and usage taken from its bytes; False, nothing taken, when
        the event must be decoded instead."""
        cdef Py_ssize_t spans[2 * _AN_SLOTS]
        if not _jr_read_whole(p, n, _AN_START_READ, spans, _AN_SLOTS) or spans[0] < 0 \
                or p[spans[0]] != b"{":
            return False
        id = _an_text(p, spans, _AN_SLOT_ID)
        model = _an_text(p, spans, _AN_SLOT_MODEL)
        if id is None or id is _JR_UNREAD or model is None or model is _JR_UNREAD \
                or not self._read_usage(p, spans):
            return False
        if self._writer is None:
            self._open(id, model)
        return True

    cdef bint _read_message_delta(self, const unsigned char* p, Py_ssize_t n) except -1:
        """message_delta's stop reason and usage taken from its bytes; False, nothing taken,
        when the event must be decoded instead."""
        cdef Py_ssize_t spans[2 * _AN_SLOTS]
        if not _jr_read_whole(p, n, _AN_MESSAGE_DELTA_READ, spans, _AN_SLOTS) \
                or (spans[0] >= 0 and p[spans[0]] != b"{"):
            return False
        stop_reason = None
        if spans[2 * _AN_SLOT_STOP_REASON] >= 0:
            stop_reason = _jr_str(p, spans[2 * _AN_SLOT_STOP_REASON], spans[2 * _AN_SLOT_STOP_REASON + 1])
            if stop_reason is _JR_UNREAD:
                return False
        if not self._read_usage(p, spans):
            return False
        if stop_reason is not None:
            self._stop_reason = stop_reason
        return True

    cdef int _put_role(self) except -1:
        """The opening chunk into the read's buffer."""
        if self._chat is not None:
            return self._chat._put_role(&_an_chunks)
        return _out_put_bytes(&_an_chunks, self._writer.role())

    cdef int _put_finish(self) except -1:
        """The finish chunk (the usage chunk when asked for, ``[DONE]``) into the read's buffer."""
        self.done = True
        usage = None
        if self._include_usage:
            usage = _msgspec.Raw(_an_usage(self._input_tokens, self._output_tokens,
                                           self._cache_creation, self._cache_read))
        reason = _an_finish_reason(self._stop_reason, self._strict)
        if self._chat is not None:
            return self._chat._put_finish(&_an_chunks, reason, usage)
        return _out_put_bytes(&_an_chunks, self._out().finish(reason, usage))

    cdef inline Py_ssize_t _text_delta(self, const char* p, Py_ssize_t n, Py_ssize_t start,
                                       bint event) except -1:
        """A text delta written as Anthropic writes it, its text's opening quote at ``start``,
        mapped from the bytes: the text is copied as the JSON it came in when it can be (see
        ``_js_json_string_end``), which is nearly every delta. The length taken, or 0 (nothing
        written) when the delta is written otherwise or its text needs decoding. ``event``: the
        whole event from a read (it ends in a blank line); else its data, which ends at ``n``."""
        cdef const unsigned char* q = <const unsigned char*>p
        cdef Py_ssize_t end, after
        if start < 0:
            return 0
        end = _js_json_string_end(q, start + 1, n)
        if end < 0:
            return 0
        if event:
            after = end + 5
            if after > n or memcmp(p + end + 1, b"}}\n\n", 4) != 0:
                return 0
        else:
            after = end + 3
            if after != n or memcmp(p + end + 1, b"}}", 2) != 0:
                return 0
        if not self._chat._put_content_json(&_an_chunks, p + start, end + 1 - start):
            return 0
        return after

    cdef inline Py_ssize_t _delta_start(self, const unsigned char* q, Py_ssize_t n) noexcept:
        """Where the text of the text delta event at ``q`` opens, or -1: its bytes before the
        text compared whole with the last delta's (a block's deltas differ only in their text),
        else read as ``_an_text_start`` reads them and kept."""
        cdef Py_ssize_t start, k = self._delta_head_n
        if k and n > k and memcmp(q, self._delta_head, k) == 0:
            return k - 1
        start = _an_text_start(q, n, _AN_TEXT_EVENT_HEAD)
        if 0 <= start < _AN_DELTA_HEAD_MAX:
            memcpy(self._delta_head, q, start + 1)
            self._delta_head_n = start + 1
        return start

    cdef Py_ssize_t whole(self, const char* p, Py_ssize_t n) except -1:
        """An event written as Anthropic writes every event (its two lines and the blank one,
        ending in LF), mapped without the line parse: a text delta, most of a stream's events,
        from the read's bytes as ``take`` would map it; any other event handed to ``take``."""
        cdef Py_ssize_t off, event_n, data_at, data_n
        if self.done:
            return 0
        if self._chat is not None and self._strict:
            off = self._text_delta(p, n, self._delta_start(<const unsigned char*>p, n), True)
            if off:
                return off
        off = _sse_two_lines(p, n, &event_n, &data_at, &data_n)
        if off:
            self.take(p + 7, event_n, p + data_at, data_n)
        return off

    cdef bytes _event(self, _AnEvent kind, bytes data):
        cdef int index
        if kind == _AN_BLOCK_DELTA:
            ev = _an_block_delta_decode(data)
            delta = ev.delta
            delta_type = delta.type
            if delta_type == "text_delta":
                if self._strict:
                    if self._chat is not None:
                        return self._chat._content(delta.text)
                    return self._out().content(delta.text)
                return self._out().extra(content=delta.text, content_blocks=[
                    {"index": ev.index, "delta": {"text": delta.text}}])
            if delta_type == "input_json_delta":
                index = self._tool_index.get(ev.index, -1) if self._tool_index is not None else -1
                if index < 0 or not delta.partial_json:
                    return _SSE_EMPTY
                return self._out().tool_call_arguments(index, delta.partial_json)
            if not self._strict:
                if delta_type == "thinking_delta":
                    return self._out().extra(content_blocks=[
                        {"index": ev.index, "delta": {"thinking": delta.thinking}}])
                if delta_type == "signature_delta":
                    return self._out().extra(content_blocks=[
                        {"index": ev.index, "delta": {"signature": delta.signature}}])
            return _SSE_EMPTY
        if kind == _AN_BLOCK_START:
            ev = _an_block_start_decode(data)
            block = ev.content_block
            block_type = block.type
            if block_type == "tool_use":
                if self._tool_index is None:
                    self._tool_index = {}
                index = len(self._tool_index)
                self._tool_index[ev.index] = index
                return self._out().tool_call_start(index, block.id, block.name)
            if block_type == "text" and block.text:
                return self._out().content(block.text)
            if not self._strict and block_type == "redacted_thinking":
                return self._out().extra(content_blocks=[
                    {"index": ev.index, "delta": {"type": "redacted_thinking", "data": block.data}}])
            return _SSE_EMPTY
        if kind == _AN_MESSAGE_START:
            msg = _AN_START_MESSAGE.of(_an_start_decode(data))
            self._take_usage(_AN_STARTED_USAGE.of(msg))
            if self._writer is None:
                self._open(_AN_STARTED_ID.of(msg), _AN_STARTED_MODEL.of(msg))
            self._put_role()
            return _SSE_EMPTY
        if kind == _AN_MESSAGE_DELTA:
            ev = _an_message_delta_decode(data)
            stop_reason = _AN_DELTA_STOP_REASON.of(_AN_MESSAGE_DELTA_BODY.of(ev))
            if stop_reason is not None:
                self._stop_reason = stop_reason
            self._take_usage(_AN_MESSAGE_DELTA_USAGE.of(ev))
            return _SSE_EMPTY
        if kind == _AN_ERROR:
            err = _an_error_event_decode(data).error
            self.done = True
            return self._out().error(f"{self._provider} error: {err.message}", err.type)
        return _SSE_EMPTY

    cdef int take(self, const char* event, Py_ssize_t event_n, const char* data,
                  Py_ssize_t n) except -1:
        cdef _AnEvent kind
        if self.done:
            return 0
        kind = _an_event_kind(event, event_n)
        if kind == _AN_OTHER:  # ping, content_block_stop, and any event Anthropic adds
            return 0
        if kind == _AN_BLOCK_DELTA:
            if self._chat is not None and self._strict and self._text_delta(
                    data, n, _an_text_start(<const unsigned char*>data, n, _AN_TEXT_HEAD), False):
                return 0
        elif kind == _AN_BLOCK_START:
            if _an_is_empty_text_start(<const unsigned char*>data, n):
                return 0
        elif kind == _AN_MESSAGE_START:
            if self._read_start(<const unsigned char*>data, n):
                return self._put_role()
        elif kind == _AN_MESSAGE_DELTA:
            if self._read_message_delta(<const unsigned char*>data, n):
                return 0
        elif kind == _AN_MESSAGE_STOP:
            return self._put_finish()
        piece = self._event(kind, PyBytes_FromStringAndSize(data, n))
        return _out_put_bytes(&_an_chunks, piece)

    cdef bytes _taken(self):
        cdef Py_ssize_t n = _an_chunks.size
        if n == 0:
            return _SSE_EMPTY
        _an_chunks.size = 0
        return PyBytes_FromStringAndSize(_an_chunks.data, n)

    def feed(self, bytes chunk):
        if self.done:
            return _SSE_EMPTY
        _an_chunks.size = 0  # what a feed that raised left
        self._sse.scan(chunk, self)
        return self._taken()

    def finish(self):
        """The end of the upstream body: Anthropic always ends with ``message_stop`` (or an
        ``error`` event), so a stream cut before either ends with an error chunk."""
        if self.done:
            return _SSE_EMPTY
        _an_chunks.size = 0
        self._sse.close_into(self)
        if not self.done:
            self.done = True
            _out_put_bytes(&_an_chunks, self._out().error(
                f"{self._provider} error: stream ended before message_stop"))
        return self._taken()
