# Cohere API v2: OpenAI chat/completions/embeddings requests → /v2/chat and /v2/embed, and
# Cohere's answers and stream events → OpenAI's shapes.
#
# References: https://docs.cohere.com/reference/chat (request, response),
# https://docs.cohere.com/reference/chat-stream (events), https://docs.cohere.com/reference/embed,
# and the cohere-python SDK v2 types (ChatMessageV2, ToolCallV2, ResponseFormatV2, Usage,
# ChatFinishReason, V2ChatStreamResponse, EmbedByTypeResponse). Names here carry a ``_co``
# prefix: every include file shares one module namespace.


from fastgate.errors import GatewayError as _CoGatewayError
from fastgate.schema.openai import (
    AssistantMessage as _CoAssistantMessage,
    ChatCompletion as _CoChatCompletion,
    Choice as _CoChoice,
    Embedding as _CoEmbedding,
    EmbeddingList as _CoEmbeddingList,
    EmbeddingRequest as _CoEmbeddingRequest,
    EmbeddingUsage as _CoEmbeddingUsage,
    CompletionRequest as _CoCompletionRequest,
    FunctionCall as _CoFunctionCall,
    FunctionDef as _CoFunctionDef,
    ImagePart as _CoImagePart,
    ImageURL as _CoImageURL,
    NamedToolChoice as _CoNamedToolChoice,
    TextChoice as _CoTextChoice,
    TextCompletion as _CoTextCompletion,
    TextPart as _CoTextPart,
    ToolCall as _CoToolCall,
    Usage as _CoUsageOut,
    completion_decoder as _co_completion_decoder,
    embedding_decoder as _co_embedding_decoder,
    object_decoder as _co_object_decoder,
)
from fastgate.schema.cohere import (
    CohereChatInput as _CoChatInput,
    CohereChatRequest as _CoChatRequest,
    CohereEmbedRequest as _CoEmbedRequest,
    CohereMessage as _CoMessage,
    CohereResponseFormat as _CoResponseFormat,
    CohereThinking as _CoThinking,
    CohereTool as _CoTool,
    cohere_chat_input_decoder as _co_input_decoder,
    cohere_chat_response_decoder as _co_response_decoder,
    cohere_embed_response_decoder as _co_embed_decoder,
    cohere_stream_event_decoder as _co_event_decoder,
)

cdef str _CO_PROVIDER = "cohere"
# ChatFinishReason → OpenAI (Portkey's finishReasonMap): ERROR and TIMEOUT have no OpenAI
# counterpart and end as "stop"; a stream that reports an error ends with an error event instead.
cdef dict _CO_FINISH = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "stop",
    "TIMEOUT": "stop",
}
# OpenAI's tool_choice → Cohere's (chat reference: REQUIRED | NONE; absent means auto).
cdef dict _CO_TOOL_CHOICE = {"required": "REQUIRED", "none": "NONE"}


cdef inline str _co_finish(object reason, bint strict):
    if not strict and reason:
        return reason
    return _CO_FINISH.get(reason, "stop")


cdef inline object _co_usage(object usage):
    """Cohere ``usage`` → OpenAI ``Usage``: ``tokens`` first, ``billed_units`` when absent."""
    if usage is None:
        return None
    counts = usage.tokens if usage.tokens is not None else usage.billed_units
    if counts is None:
        return None
    cdef long prompt = <long>counts.input_tokens
    cdef long completion = <long>counts.output_tokens
    return _CoUsageOut(prompt, completion, prompt + completion)


cdef inline object _co_parts(list parts, bint images):
    """OpenAI content parts → Cohere's: text always, ``image_url`` where Cohere takes images
    (user turns, Command A Vision); audio and files have no Cohere equivalent and are dropped."""
    cdef list out = []
    for part in parts:
        if isinstance(part, _CoTextPart):
            out.append(_CoTextPart(part.text))
        elif images and isinstance(part, _CoImagePart):
            out.append(_CoImagePart(_CoImageURL(part.image_url.url, part.image_url.detail)))
    return out


cdef object _co_message(object m):
    cdef str role = m.role
    content = m.content
    tool_calls = _CHUNK_UNSET
    tool_call_id = _CHUNK_UNSET
    if role == "developer":
        role = "system"  # Cohere v2 roles: system, user, assistant, tool
    elif role == "function":
        # Legacy function results: a tool turn keyed by the function name, matching the
        # assistant's ``function_call`` below, which becomes a tool call with that id.
        role = "tool"
        tool_call_id = m.name or ""
    elif role == "tool":
        tool_call_id = m.tool_call_id or ""
    if role == "assistant":
        if m.tool_calls:
            tool_calls = m.tool_calls
        elif m.function_call is not None:
            tool_calls = [_CoToolCall(m.function_call.name, m.function_call)]
    if isinstance(content, list):
        content = _co_parts(content, role == "user")
    elif content is None:
        # Cohere requires content on every turn but an assistant turn that only calls tools.
        content = _CHUNK_UNSET if tool_calls is not _CHUNK_UNSET else ""
    return _CoMessage(role, content, tool_calls, tool_call_id)


cdef void _co_tools(object req, dict fields):
    """Function tools and tool_choice. Cohere has no named choice: a named choice sends only
    that tool with ``REQUIRED``, which forces exactly that call."""
    choice = req.tool_choice
    cdef list tools = []
    cdef bint strict = False
    for tool in req.tools or ():
        f = tool.function
        if tool.type != "function" or f is None:
            continue  # Cohere v2 tools are functions only
        if isinstance(choice, _CoNamedToolChoice) and f.name != choice.function.name:
            continue
        if f.strict:
            strict = True
        tools.append(_CoTool("function", _CoFunctionDef(f.name, f.description, f.parameters)))
    if tools:
        fields["tools"] = tools
        if strict:
            fields["strict_tools"] = True  # OpenAI's per-function strict → Cohere's strict_tools
    if isinstance(choice, _CoNamedToolChoice):
        fields["tool_choice"] = "REQUIRED"
    elif choice is not None and choice in _CO_TOOL_CHOICE:
        fields["tool_choice"] = _CO_TOOL_CHOICE[choice]


cdef inline void _co_sampling(object req, dict fields):
    """Parameters OpenAI's chat and completions bodies share (chat reference names)."""
    if req.model is not None:
        fields["model"] = req.model
    if req.temperature is not None:
        fields["temperature"] = req.temperature
    if req.top_p is not None:
        fields["p"] = req.top_p
    if req.seed is not None:
        fields["seed"] = req.seed
    if req.frequency_penalty is not None:
        fields["frequency_penalty"] = req.frequency_penalty
    if req.presence_penalty is not None:
        fields["presence_penalty"] = req.presence_penalty
    stop = req.stop
    if stop is not None:
        fields["stop_sequences"] = [stop] if isinstance(stop, str) else stop


cdef object _co_decode(bytes body, object overrides, object decoder, object kind):
    # override_params merge at the dict level, so the body is still decoded only once.
    if overrides:
        params = _co_object_decoder.decode(body)
        params.update(overrides)
        return _msgspec.convert(params, kind)
    return decoder.decode(body)


def cohere_chat_request(bytes body, object overrides=None):
    """OpenAI ``ChatRequest`` bytes → Cohere ``/v2/chat`` body bytes.

    Dropped (no Cohere v2 parameter): n, user, metadata, parallel_tool_calls, reasoning_effort,
    top_logprobs, stream_options (usage always comes in ``message-end``).
    """
    req = _co_decode(body, overrides, _co_input_decoder, _CoChatInput)
    cdef dict fields = {"stream": req.stream}
    _co_sampling(req, fields)
    max_tokens = req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens
    if max_tokens is not None:
        fields["max_tokens"] = max_tokens
    k = req.k if req.k is not None else req.top_k
    if k is not None:
        fields["k"] = k
    if req.logprobs is not None:
        fields["logprobs"] = req.logprobs
    fmt = req.response_format
    if fmt is not None:
        if fmt.type == "json_schema" and fmt.json_schema is not None and fmt.json_schema.schema is not None:
            fields["response_format"] = _CoResponseFormat("json_object", fmt.json_schema.schema)
        elif fmt.type == "text":
            fields["response_format"] = _CoResponseFormat("text")
        else:
            fields["response_format"] = _CoResponseFormat("json_object")
    if req.tools:
        _co_tools(req, fields)
    elif req.tool_choice == "none":
        fields["tool_choice"] = "NONE"
    thinking = req.thinking
    if thinking:
        # Anthropic-style {type, budget_tokens} (as Portkey accepts it) → Cohere's Thinking.
        budget = thinking.get("budget_tokens", thinking.get("token_budget"))
        fields["thinking"] = _CoThinking(thinking.get("type", "enabled"),
                                         budget if budget is not None else _CHUNK_UNSET)
    if req.documents is not None:
        fields["documents"] = req.documents
    if req.citation_options is not None:
        fields["citation_options"] = req.citation_options
    if req.safety_mode is not None:
        fields["safety_mode"] = req.safety_mode
    if req.strict_tools is not None:
        fields["strict_tools"] = req.strict_tools
    messages = [_co_message(m) for m in req.messages]
    return _chunk_encode_json(_CoChatRequest(messages, **fields))


def cohere_completion_request(bytes body, object overrides=None):
    """Legacy ``/v1/completions`` → ``/v2/chat``: the prompt becomes one user turn."""
    req = _co_decode(body, overrides, _co_completion_decoder, _CoCompletionRequest)
    prompt = req.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise _CoGatewayError(400, "cohere takes one prompt string per completion", param="prompt")
        prompt = prompt[0]
    cdef dict fields = {"stream": req.stream}
    _co_sampling(req, fields)
    if req.max_tokens is not None:
        fields["max_tokens"] = req.max_tokens
    return _chunk_encode_json(_CoChatRequest([_CoMessage("user", prompt or "")], **fields))


cdef tuple _co_answer(bytes body):
    """A /v2/chat answer's joined text, tool calls, finish reason, usage and id."""
    r = _co_response_decoder.decode(body)
    cdef list texts = []
    cdef list calls = []
    m = r.message
    if m is not None:
        for item in m.content or ():
            if item.type == "text":
                texts.append(item.text)
        for call in m.tool_calls or ():
            f = call.function
            if f is not None:
                # ToolCallV2.function.arguments is already a JSON string, as OpenAI's is.
                calls.append(_CoToolCall(call.id, _CoFunctionCall(f.name, f.arguments or "{}")))
    return "".join(texts), calls, r.finish_reason, _co_usage(r.usage), r.id


def cohere_chat_response(bytes body, str model, bint strict=True):
    """Cohere's ``/v2/chat`` answer → OpenAI ``chat.completion`` bytes."""
    text, calls, finish, usage, id_ = _co_answer(body)
    message = _CoAssistantMessage(content=text if text or not calls else None,
                                  tool_calls=calls if calls else _CHUNK_UNSET)
    out = _CoChatCompletion(id_, _chunk_now(), model,
                            [_CoChoice(0, message, _co_finish(finish, strict))],
                            usage=usage if usage is not None else _CHUNK_UNSET, provider=_CO_PROVIDER)
    return _chunk_encode_json(out)


def cohere_completion_response(bytes body, str model, bint strict=True):
    """Cohere's ``/v2/chat`` answer → OpenAI ``text_completion`` bytes."""
    text, calls, finish, usage, id_ = _co_answer(body)
    out = _CoTextCompletion(id_, _chunk_now(), model,
                            [_CoTextChoice(0, text, _co_finish(finish, strict))],
                            usage=usage if usage is not None else _CHUNK_UNSET, provider=_CO_PROVIDER)
    return _chunk_encode_json(out)


cdef class CohereStream:
    """Cohere v2 chat-stream events → OpenAI SSE (``chat.completion.chunk``, or
    ``text_completion`` for the legacy route), read by read.

    Text deltas and tool-call deltas are sent as they arrive; tool calls get OpenAI indexes in
    order of their ``tool-call-start`` (Portkey relays Cohere's own delta shape instead).
    ``tool-plan-delta``, citations and thinking have no OpenAI field and are dropped. Usage from
    ``message-end`` is sent only when the client asked (``stream_options.include_usage``).
    """

    cdef object _sse
    cdef ChunkWriter _writer
    cdef str _model
    cdef bint _include_usage
    cdef bint _strict
    cdef bint _text
    cdef dict _tool_index
    cdef readonly bint done

    def __init__(self, str model, bint include_usage=False, bint strict=True, bint text=False):
        self._sse = SSEDecoder()
        self._writer = None
        self._model = model
        self._include_usage = include_usage
        self._strict = strict
        self._text = text
        self._tool_index = {}
        self.done = False

    cdef ChunkWriter _open(self, object id_):
        if self._writer is None:
            self._writer = ChunkWriter(id_ or f"cohere-{int(_time.time() * 1000)}", self._model,
                                       _CO_PROVIDER, self._include_usage)
        return self._writer

    cdef bytes _text_chunk(self, str text, object finish, object usage):
        w = self._writer
        out = _CoTextCompletion(w.id, w.created, w.model, [_CoTextChoice(0, text, finish)],
                                usage=usage, provider=_CO_PROVIDER)
        return _chunk_frame(_chunk_encode_json(out))

    cdef bytes _finish(self, object delta):
        w = self._open(None)
        self.done = True
        error = delta.error if delta is not None else None
        if error:
            # message-end reporting a failed generation: a mid-stream error, said as one.
            return w.error(f"cohere error: {error}")
        finish = _co_finish(delta.finish_reason if delta is not None else None, self._strict)
        usage = _co_usage(delta.usage) if delta is not None else None
        if not self._text:
            return w.finish(finish, usage)
        out = self._text_chunk("", finish, _CHUNK_UNSET)
        if self._include_usage and usage is not None:
            chunk = _CoTextCompletion(w.id, w.created, w.model, [], usage=usage, provider=_CO_PROVIDER)
            out += _chunk_frame(_chunk_encode_json(chunk))
        return out + _CHUNK_SSE_DONE

    cdef bytes _event(self, bytes data):
        if data == _SSE_DONE:
            return _SSE_EMPTY
        ev = _co_event_decoder.decode(data)
        kind = ev.type
        delta = ev.delta
        msg = delta.message if delta is not None else None
        if kind == "content-delta":
            if msg is None or msg.content is None or isinstance(msg.content, list):
                return _SSE_EMPTY
            text = msg.content.text
            if not text:
                return _SSE_EMPTY  # thinking deltas carry ``thinking`` only
            w = self._open(None)
            return self._text_chunk(text, None, _CHUNK_UNSET) if self._text else w.content(text)
        if kind == "tool-call-delta":
            if msg is None or msg.tool_calls is None or isinstance(msg.tool_calls, list):
                return _SSE_EMPTY
            f = msg.tool_calls.function
            index = self._tool_index.get(ev.index)
            if f is None or not f.arguments or index is None or self._text:
                return _SSE_EMPTY
            return self._writer.tool_call_arguments(index, f.arguments)
        if kind == "message-start":
            w = self._open(ev.id)
            return _SSE_EMPTY if self._text else w.role()
        if kind == "tool-call-start":
            if self._text or msg is None or msg.tool_calls is None or isinstance(msg.tool_calls, list):
                return _SSE_EMPTY
            call = msg.tool_calls
            f = call.function
            index = len(self._tool_index)
            self._tool_index[ev.index] = index
            return self._open(None).tool_call_start(
                index, call.id or f"call_{index}", f.name if f is not None else "",
                f.arguments if f is not None else "")
        if kind == "message-end":
            return self._finish(delta)
        return _SSE_EMPTY  # content-start/end, tool-plan-delta, tool-call-end, citation-*, debug

    def feed(self, bytes chunk):
        if self.done:
            return _SSE_EMPTY
        cdef list out = []
        for _event_name, data in self._sse.feed(chunk):
            try:
                piece = self._event(data)
            except _msgspec.DecodeError as exc:
                # Not one of Cohere's events: what came before it in this read still goes out.
                self.done = True
                out.append(self._open(None).error(f"cohere error: malformed stream event: {exc}"))
                break
            if piece:
                out.append(piece)
            if self.done:
                break
        return b"".join(out)

    def finish(self):
        """The upstream closed: events it left unterminated, then an error if no message-end came."""
        if self.done:
            return _SSE_EMPTY
        cdef list out = []
        for _event_name, data in self._sse.close():
            out.append(self._event(data))
            if self.done:
                return b"".join(out)
        self.done = True
        out.append(self._open(None).error("cohere error: stream ended before message-end"))
        return b"".join(out)


def cohere_embed_request(bytes body, object overrides=None):
    """OpenAI ``EmbeddingRequest`` → Cohere ``/v2/embed``: ``input_type`` from the request or
    ``search_document`` (v2 requires one), always float embeddings (base64 is encoded here)."""
    req = _co_decode(body, overrides, _co_embedding_decoder, _CoEmbeddingRequest)
    inputs = req.input
    if isinstance(inputs, str):
        texts = [inputs]
    else:
        texts = inputs
        for item in texts:
            if not isinstance(item, str):
                raise _CoGatewayError(400, "cohere embeds text: send input as strings, not tokens",
                                      param="input")
    return _chunk_encode_json(_CoEmbedRequest(
        texts, req.input_type or "search_document", ["float"],
        model=req.model if req.model is not None else _CHUNK_UNSET,
        output_dimension=req.dimensions if req.dimensions is not None else _CHUNK_UNSET))


def cohere_embed_response(bytes body, str model, bint as_base64=False):
    """Cohere ``embeddings_by_type`` answer → OpenAI embedding ``list`` bytes."""
    r = _co_embed_decoder.decode(body)
    vectors = r.embeddings.float_ or []
    cdef list data = []
    cdef Py_ssize_t i
    for i in range(len(vectors)):
        data.append(_CoEmbedding(i, float32_base64(vectors[i]) if as_base64 else vectors[i]))
    tokens = 0
    if r.meta is not None and r.meta.billed_units is not None:
        tokens = <long>r.meta.billed_units.input_tokens
    return _chunk_encode_json(_CoEmbeddingList(data, model, _CoEmbeddingUsage(tokens, tokens),
                                         provider=_CO_PROVIDER))
