# AWS Bedrock: OpenAI chat/completions/embeddings ⇄ Converse, ConverseStream and InvokeModel.
#
# References: Bedrock Runtime API reference (Converse, ConverseStream, InvokeModel) and botocore's
# bedrock-runtime service-2.json for every shape and enum below; "Amazon Titan Text Embeddings"
# and "Cohere Embed" model-parameter pages of the Bedrock user guide for the embedding bodies.
# Everything the request can't carry to Converse is dropped (n, seed, penalties, logprobs,
# response_format, user, metadata): Converse has no field for them and rejects unknown ones.

import itertools as _itertools
import os as _os
import re as _re

from fastgate.errors import GatewayError as _GatewayError
from fastgate.schema import bedrock as _br
from fastgate.schema.openai import (
    AssistantMessage as _AssistantMessage,
    ChatCompletion as _ChatCompletion,
    Choice as _Choice,
    Embedding as _Embedding,
    EmbeddingList as _EmbeddingList,
    EmbeddingUsage as _EmbeddingUsage,
    FilePart as _FilePart,
    FunctionCall as _FunctionCall,
    ImagePart as _ImagePart,
    PromptTokensDetails as _PromptTokensDetails,
    TextChoice as _TextChoice,
    TextCompletion as _TextCompletion,
    TextPart as _TextPart,
    ToolCall as _ToolCall,
    completion_decoder as _completion_decoder,
    embedding_decoder as _embedding_decoder,
)

cdef object _br_chat_decoder = _msgspec.json.Decoder(_br.BedrockChatRequest)
cdef object _br_converse_decoder = _msgspec.json.Decoder(_br.ConverseResponse)
cdef object _br_block_start_decoder = _msgspec.json.Decoder(_br.ContentBlockStartEvent)
cdef object _br_block_delta_decoder = _msgspec.json.Decoder(_br.ContentBlockDeltaEvent)
cdef object _br_message_stop_decoder = _msgspec.json.Decoder(_br.MessageStopEvent)
cdef object _br_metadata_decoder = _msgspec.json.Decoder(_br.MetadataEvent)
cdef object _br_error_message_decoder = _msgspec.json.Decoder(_br.ErrorMessage)
cdef object _br_titan_decoder = _msgspec.json.Decoder(_br.TitanEmbedResponse)
cdef object _br_titan_list_decoder = _msgspec.json.Decoder(list[_br.TitanEmbedResponse])
cdef object _br_cohere_decoder = _msgspec.json.Decoder(_br.CohereEmbedResponse)
cdef object _br_any_decoder = _msgspec.json.Decoder()

cdef object _BrMessage = _br.Message
cdef object _BrContentBlock = _br.ContentBlock
cdef object _BR_CACHE_POINT = _br.CachePoint()
cdef str _BR_PROVIDER = "bedrock"

# StopReason enum (service-2.json) → OpenAI finish_reason, as Portkey's finishReasonMap does.
cdef dict _BR_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "tool_use": "tool_calls",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# ImageFormat and DocumentFormat enums by MIME type.
cdef dict _BR_IMAGE_FORMATS = {
    "image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif", "image/webp": "webp",
}
cdef dict _BR_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
# Exception events of ConverseStream (ConverseStreamOutput members) → OpenAI error types.
cdef dict _BR_EXCEPTION_TYPES = {
    "throttlingException": "rate_limit_error",
    "validationException": "invalid_request_error",
}
# Cross-region inference profile ids prefix the model id with a geography.
cdef frozenset _BR_GEOGRAPHIES = frozenset({"us", "eu", "apac", "au", "ca", "jp", "us-gov", "global"})
# DocumentBlock.name: alphanumerics, single spaces, hyphens, parentheses and square brackets.
cdef object _BR_DOC_NAME_BAD = _re.compile(r"[^A-Za-z0-9 \-()\[\]]+")
cdef object _BR_SPACES = _re.compile(r"\s+")

cdef str _br_id_prefix = _os.urandom(5).hex()
cdef object _br_id_counter = _itertools.count(1)


cdef inline str _br_next_id(str kind):
    """Converse answers carry no id: a unique one per answer, without a syscall each time."""
    return f"{kind}-{_br_id_prefix}{next(_br_id_counter):x}"


cdef inline object _br_bad(str message, str param):
    return _GatewayError(400, message, param=param, code="invalid_request")


cdef inline str _br_base_model(str model):
    head, dot, base = model.partition(".")  # a split and a set look-up: a regex costs 5x this
    return base if dot and head in _BR_GEOGRAPHIES else model


# ---- request: OpenAI chat → Converse ------------------------------------------------------------


cdef inline str _br_part(Py_ssize_t i, Py_ssize_t j, str field):
    """The JSON path of content part ``j`` of message ``i`` (built only for an error message)."""
    return f"messages[{i}].content[{j}]{field}"


cdef tuple _br_data_url(str url, str param):
    """``data:<mime>;base64,<payload>`` → (mime, payload); the payload stays base64 (the wire form)."""
    head, sep, payload = url.partition(",")
    if not sep or not head.endswith(";base64"):
        raise _br_bad(f"{param} must be a base64 data: URL (data:<mime>;base64,...)", param)
    return head[5:len(head) - 7].lower(), payload


cdef object _br_image_block(object image_url, Py_ssize_t i, Py_ssize_t j):
    cdef str url = image_url.url
    cdef str fmt
    if url.startswith("data:"):
        mime, payload = _br_data_url(url, _br_part(i, j, ".image_url.url"))
        fmt = _BR_IMAGE_FORMATS.get(mime)
        if fmt is None:
            param = _br_part(i, j, ".image_url.url")
            raise _br_bad(f"{param}: Bedrock takes png, jpeg, gif or webp images, not {mime!r}", param)
        return _BrContentBlock(image=_br.ImageBlock(fmt, _br.BinarySource(data=payload)))
    param = _br_part(i, j, ".image_url.url")
    if url.startswith("s3://"):
        # ImageSource.s3Location: Bedrock reads the object itself, with the caller's AWS rights.
        mime = image_url.mime_type or ""
        fmt = _BR_IMAGE_FORMATS.get(mime) or _BR_IMAGE_FORMATS.get("image/" + url.rpartition(".")[2].lower())
        if fmt is None:
            raise _br_bad(f"{param}: give image_url.mime_type for an s3:// image without a known extension",
                       param)
        return _BrContentBlock(image=_br.ImageBlock(fmt, _br.BinarySource(s3Location=_br.S3Location(url))))
    if url.startswith(("http://", "https://")):
        # Converse's ImageSource takes bytes or an S3 location only. Fetching the URL here would let
        # any client make the gateway request arbitrary hosts (an SSRF surface), so it is refused.
        raise _br_bad(f"{param}: Bedrock accepts images as base64 data: URLs or s3:// locations, not "
                   "http(s) URLs; the gateway does not fetch URLs for a client", param)
    raise _br_bad(f"{param}: unsupported image URL scheme", param)


cdef object _br_file_block(object ref, Py_ssize_t i, Py_ssize_t j):
    param = _br_part(i, j, ".file")
    if ref.file_data is None:
        raise _br_bad(f"{param}: Bedrock takes files inline as file.file_data (a base64 data: URL); "
                   "file ids are not supported", param)
    mime, payload = _br_data_url(ref.file_data, param + ".file_data")
    if mime in _BR_IMAGE_FORMATS:
        return _BrContentBlock(image=_br.ImageBlock(_BR_IMAGE_FORMATS[mime], _br.BinarySource(data=payload)))
    fmt = _BR_DOCUMENT_FORMATS.get(mime)
    if fmt is None:
        raise _br_bad(f"{param}: Bedrock does not take documents of type {mime!r}", param)
    stem = (ref.filename or "").rpartition(".")[0] or ref.filename or ""
    name = _BR_SPACES.sub(" ", _BR_DOC_NAME_BAD.sub("-", stem)).strip() or f"document-{j}"
    return _BrContentBlock(document=_br.DocumentBlock(fmt, name[:200], _br.BinarySource(data=payload)))


cdef list _br_content_blocks(object content, Py_ssize_t i):
    """User (or tool) content of message ``i`` → Converse blocks. Blank text is skipped: Converse
    rejects it."""
    cdef list blocks = []
    cdef Py_ssize_t j = 0
    if content is None:
        return blocks
    if isinstance(content, str):
        if content:
            blocks.append(_BrContentBlock(text=content))
        return blocks
    for part in content:
        kind = type(part)
        if kind is _TextPart:
            if part.text:
                blocks.append(_BrContentBlock(text=part.text))
        elif kind is _ImagePart:
            blocks.append(_br_image_block(part.image_url, i, j))
        elif kind is _FilePart:
            blocks.append(_br_file_block(part.file, i, j))
        else:
            where = _br_part(i, j, "")
            raise _br_bad(f"{where}: Bedrock Converse does not take {kind.__name__} content", where)
        if kind is not _FilePart and part.cache_control:
            # Prompt caching: a cachePoint block marks the end of the prefix to cache.
            blocks.append(_BrContentBlock(cachePoint=_BR_CACHE_POINT))
        j += 1
    return blocks


cdef object _br_tool_input(str arguments, Py_ssize_t i, Py_ssize_t k):
    if not arguments.strip():
        return {}
    try:
        return _br_any_decoder.decode(arguments)
    except _msgspec.DecodeError:
        where = f"tool_calls[{k}].function" if k >= 0 else "function_call"
        param = f"messages[{i}].{where}.arguments"
        raise _br_bad(f"{param} is not valid JSON", param) from None


cdef int _br_reasoning_blocks(list blocks, list content_blocks) except -1:
    """An assistant turn's signed thinking (Portkey's ``content_blocks``, as non-strict answers
    give it) as the ReasoningContentBlocks it came from, first in the turn."""
    for block in content_blocks:
        if type(block) is not dict:
            continue
        kind = block.get("type")
        if kind == "thinking":
            text = _br.ReasoningText(str(block.get("thinking") or ""), block.get("signature") or None)
            blocks.append(_BrContentBlock(reasoningContent=_br.ReasoningView(reasoningText=text)))
        elif kind == "redacted_thinking":
            reasoning = _br.ReasoningView(redactedContent=str(block.get("data") or ""))
            blocks.append(_BrContentBlock(reasoningContent=reasoning))
    return 0


cdef list _br_assistant_blocks(object msg, Py_ssize_t i):
    cdef list blocks = []
    cdef Py_ssize_t k = 0
    if msg.content_blocks:
        _br_reasoning_blocks(blocks, msg.content_blocks)
    content = msg.content
    if isinstance(content, str):
        if content:
            blocks.append(_BrContentBlock(text=content))
    elif content is not None:
        for part in content:
            if type(part) is _TextPart and part.text:
                blocks.append(_BrContentBlock(text=part.text))
    if msg.tool_calls:
        for call in msg.tool_calls:
            args = _br_tool_input(call.function.arguments, i, k)
            blocks.append(_BrContentBlock(toolUse=_br.ToolUseBlock(call.id, call.function.name, args)))
            k += 1
    elif msg.function_call is not None:
        # Legacy function calling has no call ids: the function name stands in for one.
        fc = msg.function_call
        args = _br_tool_input(fc.arguments, i, -1)
        blocks.append(_BrContentBlock(toolUse=_br.ToolUseBlock(fc.name, fc.name, args)))
    return blocks


cdef object _br_tool_result(object msg, Py_ssize_t i):
    tool_use_id = msg.tool_call_id if msg.role == "tool" else msg.name
    if not tool_use_id:
        param = f"messages[{i}].tool_call_id"
        raise _br_bad(f"{param} is required for a tool message", param)
    results = []
    content = msg.content
    if isinstance(content, str) or content is None:
        results.append(_br.ToolResultContent(text=content or ""))
    else:
        for block in _br_content_blocks(content, i):
            if block.text is not None:
                results.append(_br.ToolResultContent(text=block.text))
            elif block.image is not None:
                results.append(_br.ToolResultContent(image=block.image))
    # ToolResultBlock lives in a user turn (Converse: tool results are user content).
    return _BrContentBlock(toolResult=_br.ToolResultBlock(tool_use_id, results))


cdef void _br_system_blocks(object content, list system):
    if isinstance(content, str):
        if content:
            system.append(_br.SystemBlock(text=content))
        return
    if content is None:
        return
    for part in content:
        if type(part) is _TextPart:
            if part.text:
                system.append(_br.SystemBlock(text=part.text))
            if part.cache_control:
                system.append(_br.SystemBlock(cachePoint=_BR_CACHE_POINT))


cdef list _br_converse_messages(list messages, list system):
    """OpenAI turns → Converse turns; consecutive same-role turns merge (Converse wants them
    alternating), so tool results after each other and a user turn after them share one turn."""
    cdef list out = []
    cdef Py_ssize_t i = -1
    cdef str role
    for msg in messages:
        i += 1
        role = msg.role
        if role == "user":
            blocks = _br_content_blocks(msg.content, i)
        elif role == "assistant":
            blocks = _br_assistant_blocks(msg, i)
        elif role == "system" or role == "developer":
            _br_system_blocks(msg.content, system)
            continue
        else:
            blocks = [_br_tool_result(msg, i)]
            role = "user"
        if not blocks:
            continue
        # (wraparound is off in this module: no negative indexes)
        if out and out[len(out) - 1].role == role:
            out[len(out) - 1].content.extend(blocks)
        else:
            out.append(_BrMessage(role, blocks))
    return out


cdef object _br_inference_config(object max_tokens, object temperature, object top_p, object stop):
    if max_tokens is None and temperature is None and top_p is None and not stop:
        return None
    stops = [stop] if isinstance(stop, str) else (stop or None)
    return _br.InferenceConfig(max_tokens, temperature, top_p, stops)


cdef object _br_tool_config(object req):
    # ToolChoice is auto | any | tool (service-2.json): OpenAI's "none" has no counterpart, so the
    # tools are left out; "required" is "any"; a named function is "tool" (Claude and Nova only).
    choice = req.tool_choice
    if not req.tools or choice == "none":
        return None
    tools = []
    for tool in req.tools:
        fn = tool.function
        if fn is None:
            continue
        schema = fn.parameters if fn.parameters is not None else {"type": "object", "properties": {}}
        tools.append(_br.ToolEntry(_br.ToolSpec(fn.name, _br.InputSchema(schema), fn.description)))
    if not tools:
        return None
    if choice == "required":
        tool_choice = _br.ToolChoice(any_=_br.Empty())
    elif choice == "auto":
        tool_choice = _br.ToolChoice(auto=_br.Empty())
    elif choice is not None:
        tool_choice = _br.ToolChoice(tool=_br.SpecificTool(choice.function.name))
    else:
        tool_choice = None
    return _br.ToolConfig(tools, tool_choice)


cdef object _br_additional_fields(object req, str model):
    fields = dict(req.additionalModelRequestFields or req.additional_model_request_fields or {})
    if req.top_k is not None:
        if _br_base_model(model).startswith("amazon.nova"):
            # Nova reads top-k from additionalModelRequestFields.inferenceConfig.topK (Nova user guide).
            fields.setdefault("inferenceConfig", {})["topK"] = req.top_k
        else:
            fields["top_k"] = req.top_k
    if req.thinking is not None:
        # Claude extended thinking on Bedrock: additionalModelRequestFields.thinking.
        fields["thinking"] = req.thinking
    return fields or None


def bedrock_chat_request(bytes body):
    """OpenAI chat body → ``(model id, Converse body)``; a request Converse can't take is a 400."""
    try:
        req = _br_chat_decoder.decode(body)
    except _msgspec.ValidationError as exc:
        raise _br_bad(f"Invalid request body: {exc}", None) from None
    if not req.model:
        raise _br_bad("Model is required", "model")
    cdef list system = []
    messages = _br_converse_messages(req.messages, system)
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    converse = _br.ConverseRequest(
        messages,
        system or None,
        _br_inference_config(max_tokens, req.temperature, req.top_p, req.stop),
        _br_tool_config(req),
        _br_additional_fields(req, req.model),
        req.guardrailConfig or req.guardrail_config,
        req.performanceConfig or req.performance_config,
    )
    return req.model, _encode_json(converse)


def bedrock_completion_request(bytes body):
    """Legacy ``/v1/completions`` through Converse: the prompt is one user turn."""
    try:
        req = _completion_decoder.decode(body)
    except _msgspec.ValidationError as exc:
        raise _br_bad(f"Invalid request body: {exc}", None) from None
    if not req.model:
        raise _br_bad("Model is required", "model")
    prompt = req.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise _br_bad("Bedrock completes one prompt per request", "prompt")
        prompt = prompt[0]
    if not prompt:
        raise _br_bad("prompt is required", "prompt")
    converse = _br.ConverseRequest(
        [_BrMessage("user", [_BrContentBlock(text=prompt)])],
        None,
        _br_inference_config(req.max_tokens, req.temperature, req.top_p, req.stop),
    )
    return req.model, _encode_json(converse)


# ---- response: Converse → OpenAI -----------------------------------------------------------------


cdef object _br_openai_usage(object u):
    """OpenAI counts cached prompt tokens inside prompt_tokens; Bedrock's inputTokens excludes them."""
    if u is None:
        return _UNSET
    cdef long read = u.cacheReadInputTokens, write = u.cacheWriteInputTokens
    cdef long prompt = u.inputTokens + read + write
    usage = _Usage(prompt, u.outputTokens, prompt + u.outputTokens, _PromptTokensDetails(read))
    if read:
        usage.cache_read_input_tokens = read
    if write:
        usage.cache_creation_input_tokens = write
    return usage


cdef inline str _br_finish_reason(str stop_reason, bint strict=True):
    if not strict:
        return stop_reason  # Portkey's non-strict mode keeps the provider's own reason
    return _BR_FINISH.get(stop_reason, "stop")


cdef tuple _br_answer(bytes body, bint strict):
    """(text or None, tool calls, content blocks, finish reason, usage) of a Converse response.

    Content blocks (text, thinking with its signature, redacted thinking) are collected for
    non-strict mode only (``x-portkey-strict-open-ai-compliance: false``).
    """
    r = _br_converse_decoder.decode(body)
    cdef list texts = []
    cdef list calls = []
    cdef list blocks = []
    message = r.output.message
    if message is not None:
        for block in message.content:
            if block.text is not None:
                texts.append(block.text)
                if not strict:
                    blocks.append({"type": "text", "text": block.text})
            elif block.toolUse is not None:
                tu = block.toolUse
                # ``arguments`` is the model's JSON text as Bedrock sent it (kept raw, not re-encoded).
                calls.append(_ToolCall(tu.toolUseId, _FunctionCall(tu.name, bytes(tu.input).decode())))
            elif block.reasoningContent is not None and not strict:
                reasoning = block.reasoningContent
                if reasoning.reasoningText is not None:
                    blocks.append({"type": "thinking", "thinking": reasoning.reasoningText.text,
                                   "signature": reasoning.reasoningText.signature or ""})
                elif reasoning.redactedContent is not None:
                    blocks.append({"type": "redacted_thinking", "data": reasoning.redactedContent})
    text = "".join(texts) if texts else None
    return text, calls, blocks, _br_finish_reason(r.stopReason, strict), _br_openai_usage(r.usage)


def bedrock_chat_response(bytes body, str model, bint strict=True):
    text, calls, blocks, finish, usage = _br_answer(body, strict)
    message = _AssistantMessage(content=text, tool_calls=calls or _UNSET,
                                content_blocks=blocks or _UNSET)
    completion = _ChatCompletion(_br_next_id("chatcmpl"), _now(), model,
                                 [_Choice(0, message, finish)], usage=usage, provider=_BR_PROVIDER)
    return _encode_json(completion)


def bedrock_completion_response(bytes body, str model):
    text, calls, blocks, finish, usage = _br_answer(body, True)
    completion = _TextCompletion(_br_next_id("cmpl"), _now(), model,
                                 [_TextChoice(0, text or "", finish)], usage=usage, provider=_BR_PROVIDER)
    return _encode_json(completion)


def bedrock_error_message(bytes body):
    """The ``message`` of a Bedrock error body or exception event (``None`` if it has none)."""
    try:
        err = _br_error_message_decoder.decode(body)
    except (_msgspec.DecodeError, _msgspec.ValidationError):
        return None
    return err.message or err.Message


# ---- stream: ConverseStream event-stream → OpenAI SSE -------------------------------------------


cdef class _BrTextChunks:
    """``text_completion`` stream chunks (legacy /v1/completions), ChunkWriter's counterpart."""

    cdef readonly str id
    cdef readonly str model
    cdef readonly int created
    cdef readonly bint include_usage

    def __init__(self, str id, str model, bint include_usage=False):
        self.id = id
        self.model = model
        self.created = _now()
        self.include_usage = include_usage

    cdef bytes _chunk(self, str text, object finish_reason):
        return _frame(_encode_json(_TextCompletion(self.id, self.created, self.model,
                                                   [_TextChoice(0, text, finish_reason)],
                                                   provider=_BR_PROVIDER)))

    def content(self, str text):
        return self._chunk(text, None)

    def finish(self, str finish_reason, object usage=None):
        out = self._chunk("", finish_reason)
        if self.include_usage and usage is not None:
            out += _frame(_encode_json(_TextCompletion(self.id, self.created, self.model, [],
                                                       usage=usage, provider=_BR_PROVIDER)))
        return out + _SSE_DONE


cdef class BedrockStream:
    """ConverseStream's binary event stream → OpenAI SSE, read by read (``StreamMapper``).

    Text and tool-argument deltas are sent as they arrive. ``messageStop`` brings the stop reason
    and ``metadata`` (the last event) the usage, so the finish chunk goes out with the latter.
    Exception events, a corrupted frame or a stream cut before ``messageStop`` end the stream
    with an error event and ``[DONE]``: never silence, never a fake ``stop``.
    """

    cdef EventStreamDecoder _decoder
    cdef ChunkWriter _chat
    cdef _BrTextChunks _text
    cdef dict _tools
    cdef object _stop_reason
    cdef bint _strict
    cdef readonly bint done

    def __init__(self, str model, bint include_usage=False, bint text_completion=False,
                 bint strict=True):
        self._strict = strict or text_completion
        self._decoder = EventStreamDecoder()
        if text_completion:
            self._text = _BrTextChunks(_br_next_id("cmpl"), model, include_usage)
        else:
            self._chat = ChunkWriter(_br_next_id("chatcmpl"), model, _BR_PROVIDER, include_usage)
        self._tools = {}
        self._stop_reason = None
        self.done = False

    cdef bytes _error(self, str message, str kind):
        self.done = True
        if self._chat is not None:
            return self._chat.error(message, kind)
        return _frame(_error_body(502, message, type=kind, provider=_BR_PROVIDER)) + _SSE_DONE

    cdef bytes _content(self, str text):
        if self._chat is not None:
            return self._chat.content(text)
        return self._text.content(text)

    cdef bytes _finish(self, object usage):
        self.done = True
        finish = _br_finish_reason(self._stop_reason, self._strict)
        if self._chat is not None:
            return self._chat.finish(finish, usage)
        return self._text.finish(finish, usage)

    def feed(self, bytes chunk):
        if self.done:
            return _EMPTY
        try:
            messages = self._decoder.feed(chunk)
        except EventStreamError as exc:
            return self._error(f"bedrock error: corrupted event stream: {exc}", "api_error")
        cdef list out = []
        for headers, payload in messages:
            piece = self._event(headers, payload)
            if piece:
                out.append(piece)
            if self.done:
                break
        failure = self._decoder.failure
        if failure is not None and not self.done:
            # A corrupted message after good ones in the same read: the good ones first.
            out.append(self._error(f"bedrock error: corrupted event stream: {failure}", "api_error"))
        return _EMPTY.join(out) if len(out) != 1 else out[0]

    cdef bytes _event(self, dict headers, bytes payload):
        try:
            return self._message(headers, payload)
        except _msgspec.DecodeError as exc:
            name = headers.get(":event-type") or headers.get(":message-type")
            return self._error(f"bedrock error: malformed {name} event: {exc}", "api_error")

    cdef bytes _message(self, dict headers, bytes payload):
        kind = headers.get(":message-type")
        if kind == "event":
            return self._converse_event(headers.get(":event-type"), payload)
        if kind == "exception":
            # e.g. throttlingException, modelStreamErrorException (ConverseStreamOutput members).
            name = headers.get(":exception-type") or "exception"
            message = bedrock_error_message(payload) or payload.decode("utf-8", "replace")
            return self._error(f"bedrock error: {name}: {message}", _BR_EXCEPTION_TYPES.get(name, "api_error"))
        if kind == "error":
            # A protocol-level error message: code and text travel in headers, not the payload.
            code = headers.get(":error-code") or "error"
            return self._error(f"bedrock error: {code}: {headers.get(':error-message') or ''}", "api_error")
        return _EMPTY

    cdef bytes _converse_event(self, object event_type, bytes payload):
        if event_type == "contentBlockDelta":
            ev = _br_block_delta_decoder.decode(payload)
            delta = ev.delta
            if delta.text is not None:
                if not delta.text:
                    return _EMPTY
                if self._strict:
                    return self._content(delta.text)
                return self._chat.extra(content=delta.text, content_blocks=[
                    {"index": ev.contentBlockIndex, "delta": {"text": delta.text}}])
            if delta.toolUse is not None and self._chat is not None:
                index = self._tools.get(ev.contentBlockIndex)
                if index is None or not delta.toolUse.input:
                    return _EMPTY
                return self._chat.tool_call_arguments(index, delta.toolUse.input)
            if delta.reasoningContent is not None and not self._strict:
                return self._reasoning(ev.contentBlockIndex, delta.reasoningContent)
            # Reasoning and citation deltas have no OpenAI chunk field in strict mode.
            return _EMPTY
        if event_type == "contentBlockStart":
            ev = _br_block_start_decoder.decode(payload)
            tool = ev.start.toolUse
            if tool is None or self._chat is None:
                return _EMPTY
            index = len(self._tools)
            self._tools[ev.contentBlockIndex] = index
            return self._chat.tool_call_start(index, tool.toolUseId, tool.name)
        if event_type == "messageStart":
            return self._chat.role() if self._chat is not None else _EMPTY
        if event_type == "messageStop":
            self._stop_reason = _br_message_stop_decoder.decode(payload).stopReason
            return _EMPTY
        if event_type == "metadata":
            if self._stop_reason is None:
                return _EMPTY
            return self._finish(_br_openai_usage(_br_metadata_decoder.decode(payload).usage))
        return _EMPTY

    cdef bytes _reasoning(self, object index, object delta):
        """Non-strict mode: thinking as ``content_blocks`` deltas, in the Anthropic mapping's shape."""
        if delta.text is not None:
            part = {"thinking": delta.text}
        elif delta.signature is not None:
            part = {"signature": delta.signature}
        elif delta.redactedContent is not None:
            part = {"type": "redacted_thinking", "data": delta.redactedContent}
        else:
            return _EMPTY
        return self._chat.extra(content_blocks=[{"index": index, "delta": part}])

    def finish(self):
        """The upstream ended: finish if ``messageStop`` came (metadata missing), else an error."""
        if self.done:
            return _EMPTY
        if self._stop_reason is None or self._decoder.pending:
            return self._error("bedrock error: the stream ended before messageStop", "api_error")
        return self._finish(None)


# ---- embeddings: InvokeModel (Titan Text Embeddings, Cohere Embed) -------------------------------


cdef inline bint _br_is_cohere(str model):
    return _br_base_model(model).startswith("cohere.embed")


#: Inputs one embeddings request may fan out to (Titan takes one input per InvokeModel call).
BEDROCK_TITAN_MAX_INPUTS = 256


def bedrock_embedding_request(bytes body):
    """OpenAI embeddings body → ``(model id, [InvokeModel body, ...])``.

    Cohere Embed takes ``texts`` (≤ 96) in one call; Titan Text Embeddings embeds one
    ``inputText`` per call, so a list of inputs becomes one call each, gathered by the gateway.
    """
    try:
        req = _embedding_decoder.decode(body)
    except _msgspec.ValidationError as exc:
        raise _br_bad(f"Invalid request body: {exc}", None) from None
    model = req.model
    if not model:
        raise _br_bad("Model is required", "model")
    inputs = [req.input] if isinstance(req.input, str) else req.input
    if not inputs or not all(isinstance(x, str) for x in inputs):
        raise _br_bad("input must be a string or a list of strings for Bedrock embeddings", "input")
    base = _br_base_model(model)
    if base.startswith("cohere.embed"):
        return model, [_encode_json(_br.CohereEmbedRequest(inputs, req.input_type or "search_document"))]
    if base.startswith("amazon.titan-embed-text"):
        if len(inputs) > BEDROCK_TITAN_MAX_INPUTS:
            raise _br_bad(f"Titan Text Embeddings: at most {BEDROCK_TITAN_MAX_INPUTS} inputs per request",
                          "input")
        if base.startswith("amazon.titan-embed-text-v1"):
            return model, [_encode_json(_br.TitanEmbedRequest(text)) for text in inputs]
        # v2: dimensions 256/512/1024; normalize true gives unit vectors, as OpenAI's are.
        return model, [_encode_json(_br.TitanEmbedRequest(text, req.dimensions, True)) for text in inputs]
    raise _br_bad(f"Unsupported Bedrock embedding model {model!r}: use amazon.titan-embed-text-* "
                  "or cohere.embed-*", "model")


def bedrock_embedding_response(bytes body, str model, bint as_base64=False):
    cdef list data = []
    cdef long tokens = 0
    if _br_is_cohere(model):
        vectors = _br_cohere_decoder.decode(body).embeddings
        if isinstance(vectors, dict):
            vectors = vectors.get("float") or []
    else:
        # One Titan answer, or the JSON array of a fanned-out request's answers, in input order.
        answers = _br_titan_list_decoder.decode(body) if body[:1] == b"[" else [_br_titan_decoder.decode(body)]
        vectors = [titan.embedding for titan in answers]
        tokens = sum(titan.inputTextTokenCount for titan in answers)
    for i, vector in enumerate(vectors):
        data.append(_Embedding(i, float32_base64(vector) if as_base64 else vector))
    return _encode_json(_EmbeddingList(data, model, _EmbeddingUsage(tokens, tokens), provider=_BR_PROVIDER))
