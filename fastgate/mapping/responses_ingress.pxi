# OpenAI Responses API in front of every provider, with OpenAI chat as the pivot.
#
# Request: a Responses request (https://platform.openai.com/docs/api-reference/responses/create)
# rebuilt as a chat request, both as the Struct the provider mappings read (RawContentChatRequest)
# and as its body, encoded once. Answer: a chat.completion as a Response object. Stream: chat
# chunks mapped event by event to Responses' typed events
# (https://platform.openai.com/docs/api-reference/responses-streaming), each with its
# sequence_number, through the SSE kernel; nothing is collected but the text the ``.done``
# events repeat.
#
# Module-level names are prefixed ``_rs`` / ``_Rs``: every mapping shares one module.

import secrets as _rs_secrets

from fastgate.errors import GatewayError as _RsGatewayError

from fastgate.schema.openai import (
    FilePart as _RsFilePart,
    FileRef as _RsFileRef,
    FunctionCall as _RsFunctionCall,
    FunctionDef as _RsFunctionDef,
    FunctionTool as _RsTool,
    ImagePart as _RsImagePart,
    ImageURL as _RsImageURL,
    NamedFunction as _RsNamedFunction,
    NamedToolChoice as _RsNamedToolChoice,
    RawContentChatRequest as _RsChatRequest,
    RawContentMessage as _RsMessage,
    ResponseFormat as _RsResponseFormat,
    StreamOptions as _RsStreamOptions,
    TextPart as _RsTextPart,
    ToolCall as _RsToolCall,
)
from fastgate.schema.chat_answer import (
    NULL as _RS_NULL,
    AnswerView as _RsAnswerView,
    ChunkView as _RsChunkView,
)
from fastgate.schema.responses import (
    ArgumentsDelta as _RsArgumentsDelta,
    ArgumentsDone as _RsArgumentsDone,
    ChatJSONSchema as _RsJSONSchemaFormat,
    ContentPartAdded as _RsPartAdded,
    ContentPartDone as _RsPartDone,
    CustomInputDelta as _RsCustomDelta,
    CustomInputDone as _RsCustomDone,
    CustomToolCallItem as _RsCustomCallItem,
    EchoReasoning as _RsEchoReasoning,
    EchoText as _RsEchoText,
    FunctionCallItem as _RsFunctionCallItem,
    IncompleteDetails as _RsIncompleteDetails,
    InputFile as _RsInputFile,
    InputImage as _RsInputImage,
    InputItem as _RsInputItem,
    InputMessageItem as _RsInputMessageItem,
    InputText as _RsInputText,
    InputTokensDetails as _RsInputTokensDetails,
    OutputItemAdded as _RsItemAdded,
    OutputItemDone as _RsItemDone,
    OutputMessage as _RsOutputMessage,
    OutputText as _RsOutputText,
    OutputTextDelta as _RsTextDelta,
    OutputTextDone as _RsTextDone,
    OutputTokensDetails as _RsOutputTokensDetails,
    ReasoningItem as _RsReasoningItem,
    Refusal as _RsRefusal,
    RefusalDelta as _RsRefusalDelta,
    RefusalDone as _RsRefusalDone,
    ResponseCompleted as _RsCompleted,
    ResponseCreated as _RsCreated,
    ResponseError as _RsError,
    ResponseFailed as _RsFailed,
    ResponseIncomplete as _RsIncomplete,
    ResponseInProgress as _RsInProgress,
    ResponseSettings as _RsSettings,
    ResponseState as _RsState,
    ResponseUsage as _RsUsage,
    StoredResponse as _RsStoredResponse,
    StreamError as _RsStreamError,
    SummaryPartAdded as _RsSummaryAdded,
    SummaryPartDone as _RsSummaryDone,
    SummaryText as _RsSummaryText,
    SummaryTextDelta as _RsSummaryDelta,
    SummaryTextDone as _RsSummaryTextDone,
    TextFormat as _RsTextFormat,
)

cdef object _rs_items_decoder = _msgspec.json.Decoder(list[_RsInputItem])
cdef object _rs_answer_decode = _msgspec.json.Decoder(_RsAnswerView).decode
cdef object _rs_chunk_decode = _msgspec.json.Decoder(_RsChunkView).decode
cdef object _RsRaw = _msgspec.Raw
cdef object _RS_STREAM_USAGE = _RsStreamOptions(include_usage=True)
cdef object _RS_TEXT_FORMAT = _RsTextFormat("text")
cdef object _RS_EMPTY_SUMMARY = _RsSummaryText("")
cdef tuple _RS_TOOL_CHOICES = ("auto", "none", "required")
# A custom tool (free-form input) as a function: its input is the one string parameter ``input``.
cdef object _RS_CUSTOM_PARAMETERS = _msgspec.Raw(
    b'{"type":"object","properties":{"input":{"type":"string"}},"required":["input"],'
    b'"additionalProperties":false}')
cdef object _rs_object_decode = _msgspec.json.Decoder(dict).decode

# Chat finish reasons that end a Response as ``incomplete``, and why (IncompleteDetails.reason).
# fastgate's strict answers say ``length`` / ``content_filter``; a non-strict one keeps the
# provider's own reason (Anthropic, Bedrock, Gemini, Mistral), so those are here too.
cdef dict _RS_INCOMPLETE = {
    "length": "max_output_tokens",
    "max_tokens": "max_output_tokens",
    "MAX_TOKENS": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "model_length": "max_output_tokens",
    "content_filter": "content_filter",
    "refusal": "content_filter",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
    "SAFETY": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "BLOCKLIST": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "LANGUAGE": "content_filter",
}


cdef inline object _rs_bad(str message, str param):
    return _RsGatewayError(400, message, param=param)


cdef inline object _rs_json_text(str text):
    """A string as the JSON text the chat message carries (see RawContentMessage)."""
    return _RsRaw(_encode_json(text))


# ---- request ---------------------------------------------------------------------------------

cdef object _rs_part(object part, str where):
    """One input content part as a chat content part."""
    if type(part) is _RsInputText or type(part) is _RsOutputText:
        return _RsTextPart(part.text)
    if type(part) is _RsRefusal:
        return _RsTextPart(part.refusal)
    if type(part) is _RsInputImage:
        if part.image_url is None:
            # A file_id names a file in OpenAI's Files API, which no other provider can read.
            raise _rs_bad("input_image needs image_url (a URL or a data URL): a file_id cannot be "
                          "sent to a provider reached through chat", where)
        return _RsImagePart(_RsImageURL(part.image_url, part.detail))
    if type(part) is _RsInputFile:
        data = part.file_data if part.file_data is not None else part.file_url
        if data is None and part.file_id is None:
            raise _rs_bad("input_file needs file_data, file_url or file_id", where)
        return _RsFilePart(_RsFileRef(data, part.file_id, part.filename))
    raise _rs_bad(f"a {part.type} part is not input", where)


cdef inline bint _rs_is_text(object part):
    return type(part) is _RsInputText or type(part) is _RsOutputText or type(part) is _RsRefusal


cdef object _rs_content(object content, str where):
    """A message's content for chat: a string (kept as its JSON text), or parts; one text part is
    sent as a string, which every OpenAI-compatible server takes for every role."""
    if content is None:
        return _RS_NULL
    if isinstance(content, str):
        return _rs_json_text(content)
    if len(content) == 1 and _rs_is_text(content[0]):
        part = content[0]
        return _rs_json_text(part.refusal if type(part) is _RsRefusal else part.text)
    return [_rs_part(part, f"{where}[{i}]") for i, part in enumerate(content)]


cdef inline object _rs_message(str role, object content):
    """A chat message; null content is left out (RawContentMessage's default), not sent."""
    if content is _RS_NULL:
        return _RsMessage(role)
    return _RsMessage(role, content=content)


cdef str _rs_text_of(object content):
    """The text of an assistant message's content (for the text block beside its thinking)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join([p.refusal if type(p) is _RsRefusal else p.text for p in content if _rs_is_text(p)])


cdef class _RsTurns:
    """Input items in chat's order. A ``function_call`` joins the assistant message before it
    (chat keeps one assistant turn's calls together, with their results after it as ``tool``
    messages); a ``reasoning`` item is held for the assistant turn it precedes."""

    cdef list messages
    cdef object _assistant  # the assistant message that later calls join (None: none open)
    cdef list _thinking  # blocks from reasoning items, for the next assistant message

    def __cinit__(self):
        self.messages = []
        self._assistant = None
        self._thinking = None

    cdef _add(self, object message):
        self.messages.append(message)
        self._assistant = None
        self._thinking = None  # thinking goes back only with the assistant turn right after it

    cdef _assistant_message(self, object content, str text):
        message = _rs_message("assistant", content)
        if self._thinking is not None:
            # Signed thinking goes back in Portkey's content_blocks, which the Anthropic mapping
            # sends as the turn's blocks (text included): Anthropic requires it in a tool-use loop
            # (https://docs.anthropic.com/en/docs/build-with-claude/extended-thinking).
            blocks = self._thinking
            if text:
                blocks.append({"type": "text", "text": text})
            message.content_blocks = blocks
            self._thinking = None
        self.messages.append(message)
        self._assistant = message

    cdef int add(self, object item, Py_ssize_t index) except -1:
        cdef str kind = item.type
        cdef str where = f"input[{index}]"
        if kind == "message":
            role = item.role
            if role == "assistant":
                self._assistant_message(_rs_content(item.content, where + ".content"),
                                        _rs_text_of(item.content) if self._thinking is not None else "")
            elif role == "user" or role == "system" or role == "developer":
                self._add(_rs_message(role, _rs_content(item.content, where + ".content")))
            else:
                raise _rs_bad(f"role must be user, assistant, system or developer, not {role!r}",
                              where + ".role")
        elif kind == "function_call" or kind == "custom_tool_call":
            if not item.call_id or not item.name:
                raise _rs_bad(f"a {kind} item needs call_id and name", where)
            arguments = (item.arguments or "" if kind == "function_call"
                         else _encode_json({"input": item.input or ""}).decode())
            call = _RsToolCall(item.call_id, _RsFunctionCall(item.name, arguments))
            if self._assistant is None:
                self._assistant_message(_RS_NULL, "")
            calls = self._assistant.tool_calls
            if calls is None:
                self._assistant.tool_calls = [call]
            else:
                calls.append(call)
        elif kind == "function_call_output" or kind == "custom_tool_call_output":
            if not item.call_id:
                raise _rs_bad(f"a {kind} item needs call_id", where)
            output = item.output
            message = _rs_message("tool", _rs_content(output if output is not None else "",
                                                      where + ".output"))
            message.tool_call_id = item.call_id
            self._add(message)
        elif kind == "reasoning":
            self._reasoning(item)
        elif kind == "item_reference":
            raise _rs_bad("item_reference cannot be resolved for a provider reached through chat: "
                          "send the item itself, or previous_response_id", where)
        else:
            raise _rs_bad(f"input items of type {kind!r} cannot be sent to a provider reached "
                          "through chat (messages, function and custom tool calls and their "
                          "outputs, and reasoning can)", where + ".type")
        return 0

    cdef _reasoning(self, object item):
        """Thinking a provider can take back only with what signed it (encrypted_content): a
        summary beside it is signed thinking, nothing beside it redacted thinking. Reasoning
        without it (a provider that signs nothing) is not sent back, as DeepSeek asks."""
        secret = item.encrypted_content
        if not secret:
            return
        text = "".join([s.text for s in item.summary or ()])
        block = ({"type": "thinking", "thinking": text, "signature": secret} if text
                 else {"type": "redacted_thinking", "data": secret})
        if self._thinking is None:
            self._thinking = [block]
        else:
            self._thinking.append(block)


cdef str _rs_custom_description(object tool):
    """A custom tool's description, saying how its input is sent (and in which grammar)."""
    fmt = tool.format or {}
    how = "Send the tool's input as the string `input`"
    if fmt.get("type") == "grammar":
        how += f", written in this {fmt.get('syntax', '')} grammar:\n{fmt.get('definition', '')}"
    else:
        how += " (free text)."
    return f"{tool.description}\n\n{how}" if tool.description else how


cdef object _rs_tool(object tool, set custom, str where):
    """One function tool as chat's nested one, or a custom tool (free-form input) as a function
    of one string, its name added to ``custom``; hosted tools have no chat form."""
    kind = tool.type
    if kind != "function" and kind != "custom":
        raise _rs_bad(f"{kind} is a tool OpenAI hosts: a provider reached through chat "
                      "can only be given function and custom tools", f"{where}.type")
    if not tool.name:
        raise _rs_bad(f"a {kind} tool needs a name", f"{where}.name")
    if kind == "custom":
        custom.add(tool.name)
        fn = _RsFunctionDef(tool.name, _rs_custom_description(tool), _RS_CUSTOM_PARAMETERS)
    else:
        parameters = tool.parameters
        fn = _RsFunctionDef(tool.name, tool.description,
                            None if parameters == _RS_NULL else parameters, tool.strict)
    return _RsTool(function=fn)


cdef list _rs_tools(list tools, set custom, dict namespaces):
    """Responses' tools as chat's. A ``namespace`` groups function and custom tools that the
    model calls by their own names, each call naming its namespace (Codex's sub-agent tools):
    its tools are offered as the others are, ``namespaces`` noting which one each belongs to."""
    cdef list out = []
    cdef Py_ssize_t i, j
    for i, tool in enumerate(tools):
        if tool.type != "namespace":
            out.append(_rs_tool(tool, custom, f"tools[{i}]"))
            continue
        if not tool.name:
            raise _rs_bad("a namespace tool needs a name", f"tools[{i}].name")
        for j, member in enumerate(tool.tools or ()):
            out.append(_rs_tool(member, custom, f"tools[{i}].tools[{j}]"))
            namespaces[member.name] = tool.name
    return out


cdef object _rs_tool_choice(object choice, list tools):
    """``tool_choice`` for chat; ``tools`` is narrowed in place by an ``allowed_tools`` choice.
    (ToolChoiceOptions / ToolChoiceFunction / ToolChoiceCustom / ToolChoiceAllowed in the openai
    SDK's types.)"""
    if choice is None or isinstance(choice, str):
        if choice is not None and choice not in _RS_TOOL_CHOICES:
            raise _rs_bad(f"tool_choice must be auto, none or required, not {choice!r}", "tool_choice")
        return choice
    kind = choice.get("type")
    if (kind == "function" or kind == "custom") and isinstance(choice.get("name"), str):
        return _RsNamedToolChoice(_RsNamedFunction(choice["name"]))
    if kind == "allowed_tools" and isinstance(choice.get("tools"), list):
        names = {t.get("name") for t in choice["tools"]
                 if isinstance(t, dict) and t.get("type") in ("function", "custom")}
        tools[:] = [t for t in tools if t.function.name in names]
        mode = choice.get("mode", "auto")
        return mode if mode in _RS_TOOL_CHOICES else "auto"
    raise _rs_bad(f"tool_choice {kind!r} cannot be sent to a provider reached through chat",
                  "tool_choice")


cdef object _rs_response_format(object fmt):
    if fmt is None or fmt.type == "text":
        return None  # chat's default: nothing to send
    if fmt.type == "json_object":
        return _RsResponseFormat("json_object")
    if fmt.type == "json_schema":
        if fmt.schema == _RS_NULL:
            raise _rs_bad("a json_schema format needs a schema", "text.format.schema")
        return _RsResponseFormat("json_schema", _RsJSONSchemaFormat(
            fmt.name or "response", fmt.schema, fmt.description, fmt.strict))
    raise _rs_bad(f"text.format type must be text, json_object or json_schema, not {fmt.type!r}",
                  "text.format.type")


cdef object _rs_settings(object req):
    """What every Response to this request echoes: its settings, OpenAI's defaults filled in."""
    text = req.text
    reasoning = req.reasoning
    return _RsSettings(
        instructions=req.instructions,
        max_output_tokens=req.max_output_tokens,
        max_tool_calls=req.max_tool_calls,
        metadata=req.metadata or {},
        parallel_tool_calls=req.parallel_tool_calls is not False,
        previous_response_id=req.previous_response_id,
        reasoning=_RsEchoReasoning(reasoning.effort, reasoning.summary) if reasoning is not None
        else _RsEchoReasoning(),
        store=req.store is not False,
        temperature=req.temperature if req.temperature is not None else 1.0,
        text=_RsEchoText(text.format or _RS_TEXT_FORMAT, text.verbosity or "medium")
        if text is not None else _RsEchoText(_RS_TEXT_FORMAT),
        tool_choice=req.tool_choice if req.tool_choice is not None else "auto",
        tools=req.tools or [],
        top_logprobs=req.top_logprobs or 0,
        top_p=req.top_p if req.top_p is not None else 1.0,
        truncation=req.truncation or "disabled",
        user=req.user,
        service_tier="default",
    )


def responses_to_chat(object req, bytes history=None):
    """A decoded Responses request (``schema.responses.request_decoder``) as a chat request.

    ``history``: the stored conversation ``previous_response_id`` names (``StoredResponse
    .conversation``), whose items go before this input. Refuses, with a 400, what a provider
    reached through chat cannot do: hosted tools, background runs, server-side conversations and
    prompt templates, item references. Returns the :class:`ResponsesTurn` that maps the answer.
    """
    if req.background:
        raise _rs_bad("background responses need OpenAI: a provider reached through chat answers "
                      "while the request waits", "background")
    if req.conversation is not None:
        raise _rs_bad("conversation objects are OpenAI's: use previous_response_id to continue a "
                      "conversation with a provider reached through chat", "conversation")
    if req.prompt is not None:
        raise _rs_bad("prompt templates are OpenAI's: send input instead", "prompt")
    cdef _RsTurns turns = _RsTurns()
    cdef Py_ssize_t i
    cdef list items
    if req.instructions:
        turns._add(_rs_message("system", _rs_json_text(req.instructions)))
    if history is not None:
        for i, item in enumerate(_rs_items_decoder.decode(history)):
            turns.add(item, i)
    if isinstance(req.input, str):
        items = [_RsInputItem(role="user", content=req.input)]
    elif req.input is None:
        items = []
    else:
        items = req.input
    if not items and history is None:
        raise _rs_bad("input is empty: send a string or at least one item", "input")
    for i, item in enumerate(items):
        turns.add(item, i)
    stream = bool(req.stream)
    chat = _RsChatRequest(messages=turns.messages, model=req.model, stream=stream,
                          max_tokens=req.max_output_tokens, temperature=req.temperature,
                          top_p=req.top_p, user=req.user, metadata=req.metadata)
    if stream:
        chat.stream_options = _RS_STREAM_USAGE  # usage for response.completed
    cdef set custom = set()
    cdef dict namespaces = {}
    if req.tools:
        tools = _rs_tools(req.tools, custom, namespaces)
        chat.tool_choice = _rs_tool_choice(req.tool_choice, tools)
        chat.tools = tools or None
        if tools:
            chat.parallel_tool_calls = req.parallel_tool_calls
        else:
            chat.tool_choice = None
    elif req.tool_choice is not None and req.tool_choice != "none" and req.tool_choice != "auto":
        raise _rs_bad("tool_choice needs tools", "tool_choice")
    if req.text is not None:
        chat.response_format = _rs_response_format(req.text.format)
    if req.reasoning is not None:
        chat.reasoning_effort = req.reasoning.effort
    return ResponsesTurn(chat, req, items, history, frozenset(custom), namespaces)


# ---- answer ----------------------------------------------------------------------------------

cdef inline bytes _rs_splice(bytes state, bytes settings):
    """The Response: its state's JSON object and its settings' joined into one."""
    return state[:len(state) - 1] + b"," + settings[1:]


cdef bytes _rs_join_lists(list lists):
    """JSON arrays, each as its text, as one array."""
    cdef list inner = [bytes(a)[1:len(a) - 1] for a in lists]
    return b"[" + b",".join([x for x in inner if x.strip()]) + b"]"


cdef object _rs_usage(object u):
    """chat usage (``schema.chat_answer.UsageView``) → ResponseUsage. ``prompt_tokens`` counts
    cached input, as ``input_tokens`` does; Anthropic's cache figures (kept by fastgate's mapping)
    fill the details."""
    if u is None:
        return None
    prompt = u.prompt_tokens or 0
    completion = u.completion_tokens or 0
    cached = u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details is not None else None
    if cached is None:
        cached = u.cache_read_input_tokens
    reasoning = (u.completion_tokens_details.reasoning_tokens
                 if u.completion_tokens_details is not None else None)
    total = u.total_tokens if u.total_tokens is not None else prompt + completion
    return _RsUsage(prompt, _RsInputTokensDetails(cached or 0, u.cache_creation_input_tokens or 0),
                    completion, _RsOutputTokensDetails(reasoning or 0), total)


cdef str _rs_custom_input(str arguments):
    """A custom tool's input from the function call it was asked through: its ``input``, or the
    arguments as they came when they are not that object."""
    try:
        decoded = _rs_object_decode(arguments)
    except (_msgspec.DecodeError, _msgspec.ValidationError):
        return arguments
    value = decoded.get("input")
    return value if isinstance(value, str) else arguments


cdef str _rs_output_text(list items):
    """The text of every output_text part, in order (the SDKs' ``output_text``)."""
    return "".join([part.text for item in items if type(item) is _RsOutputMessage
                    for part in item.content if type(part) is _RsOutputText])


cdef inline str _rs_reasoning_text(object message):
    """Thinking sent as one string field (DeepSeek's reasoning_content, OpenRouter's reasoning)."""
    return message.reasoning_content or message.reasoning or None


cdef str _rs_message_text(object content):
    """A chat answer's content: a string, or (from a few providers) a list of text parts."""
    if content is None or isinstance(content, str):
        return content
    return "".join([p.get("text") or "" for p in content if isinstance(p, dict)])


cdef class ResponsesTurn:
    """One Responses request mapped to chat: the chat request for the provider, and what its
    answer (``answer``, or ``stream``) needs to become a Response. After the answer, ``response``
    is the Response as sent and ``record`` what a store keeps of it."""

    cdef readonly bytes body
    cdef readonly object request
    cdef readonly str id
    cdef readonly long created_at
    cdef readonly bint stream
    cdef readonly bint store
    cdef readonly object previous_response_id
    cdef readonly bytes response
    cdef readonly bytes output  # the Response's output items, as JSON
    cdef str _model
    cdef str _base  # the id's random part, which item ids share
    cdef bytes _settings
    cdef list _items  # the request's input items
    cdef bytes _history
    cdef frozenset _custom  # the names of custom tools, whose calls are custom_tool_call items
    cdef dict _namespaces  # the names of tools in a namespace: its name

    def __init__(self, object chat, object req, list items, bytes history, frozenset custom,
                 dict namespaces):
        self.request = chat
        self.body = _encode_json(chat)
        self._base = _rs_secrets.token_hex(24)
        self.id = "resp_" + self._base
        self.created_at = _now()
        self.stream = chat.stream
        self.store = req.store is not False
        self.previous_response_id = req.previous_response_id
        self.response = None
        self.output = None
        self._model = req.model or ""
        self._settings = _encode_json(_rs_settings(req))
        self._items = items
        self._history = history
        self._custom = custom
        self._namespaces = namespaces

    cdef str item_id(self, str prefix, Py_ssize_t n):
        return f"{prefix}_{self._base}{n:02x}"

    cdef bytes state(self, str status, object model, bytes output, object usage=None,
                     object error=None, object incomplete=None, bint ended=False,
                     object output_text=_UNSET):
        """The Response's JSON at any point of its life (``ended``: it has its completed_at)."""
        state = _RsState(self.id, self.created_at, status, model or self._model, _RsRaw(output),
                         usage, error, incomplete, _now() if ended else None,
                         output_text=output_text)
        return _rs_splice(_encode_json(state), self._settings)

    cdef bytes finished(self, object model, list items, object finish_reason, object usage):
        """The final Response, kept (``response``, ``output``) for the store."""
        reason = _RS_INCOMPLETE.get(finish_reason) if finish_reason is not None else None
        output = _encode_json(items)
        self.output = output
        self.response = self.state("completed" if reason is None else "incomplete", model, output,
                                   _rs_usage(usage), None,
                                   _RsIncompleteDetails(reason) if reason is not None else None,
                                   reason is None, _rs_output_text(items))
        return self.response

    def answer(self, bytes body):
        """A chat.completion (what every provider's mapping answers) as a Response."""
        try:
            answer = _rs_answer_decode(body)
        except (_msgspec.DecodeError, _msgspec.ValidationError) as exc:
            raise _RsGatewayError(502, f"invalid chat answer: {exc}", type="api_error")
        if not answer.choices or answer.choices[0].message is None:
            raise _RsGatewayError(502, "invalid chat answer: no message", type="api_error")
        cdef str text
        choice = answer.choices[0]
        message = choice.message
        cdef list items = []
        cdef Py_ssize_t n = 0
        if message.content_blocks:
            for block in message.content_blocks:
                kind = block.get("type")
                if kind == "thinking":
                    items.append(_RsReasoningItem(self.item_id("rs", n),
                                                  [_RsSummaryText(block.get("thinking") or "")],
                                                  block.get("signature") or None))
                    n += 1
                elif kind == "redacted_thinking":
                    items.append(_RsReasoningItem(self.item_id("rs", n), [], block.get("data")))
                    n += 1
        else:
            thinking = _rs_reasoning_text(message)
            if thinking is not None:
                items.append(_RsReasoningItem(self.item_id("rs", n), [_RsSummaryText(thinking)]))
                n += 1
        parts = []
        text = _rs_message_text(message.content)
        if text or not (message.tool_calls or message.refusal or items):
            parts.append(_RsOutputText(text or ""))
        if message.refusal:
            parts.append(_RsRefusal(message.refusal))
        if parts:
            items.append(_RsOutputMessage(self.item_id("msg", n), parts))
            n += 1
        for call in message.tool_calls or ():
            fn = call.function
            name = (fn.name if fn is not None else None) or ""
            arguments = (fn.arguments if fn is not None else None) or ""
            call_id = call.id or self.item_id("call", n)
            namespace = self._namespaces.get(name, _UNSET)
            if name in self._custom:
                items.append(_RsCustomCallItem(self.item_id("ctc", n), call_id, name,
                                               _rs_custom_input(arguments), namespace=namespace))
            else:
                items.append(_RsFunctionCallItem(self.item_id("fc", n), call_id, name, arguments,
                                                 namespace=namespace))
            n += 1
        return self.finished(answer.model, items, choice.finish_reason, answer.usage)

    def stream_mapper(self):
        """The chat chunk stream of the answer as Responses events."""
        return ResponsesStream(self)

    def record(self):
        """What a store keeps once the answer was sent (None before): the Response, this
        request's input items (ids given, text as content parts, as ``input_items`` lists them),
        and the conversation a ``previous_response_id`` continues."""
        if self.response is None:
            return None
        cdef Py_ssize_t n
        cdef list items = []
        for n, item in enumerate(self._items):
            item_id = item.id or self.item_id("in", n)
            if item.type == "message":
                content = item.content
                if isinstance(content, str):
                    content = [_RsOutputText(content) if item.role == "assistant" else _RsInputText(content)]
                item = _RsInputMessageItem(item_id, item.role, content or [], item.status or "completed")
            elif item.id is None:
                item = _msgspec.structs.replace(item, id=item_id)
            items.append(item)
        inputs = _encode_json(items)
        lists = [inputs, self.output] if self._history is None else [self._history, inputs, self.output]
        return _RsStoredResponse(_RsRaw(self.response), _RsRaw(inputs), _RsRaw(_rs_join_lists(lists)))


# ---- stream ----------------------------------------------------------------------------------
# A text delta, nearly every event of a stream, is written from a template into the read's
# buffer; when the chat chunk is a content delta as ChunkWriter writes it (every mapped
# provider's stream), its text is copied as the JSON it came in, not decoded (the pieces are kept
# escaped, and decoded once when the part is done). Other events are Structs, encoded.

cdef object _rs_str_decode = _msgspec.json.Decoder(str).decode
cdef bytes _RS_TEXT_DELTA_HEAD = (b'event: response.output_text.delta\ndata: '
                                  b'{"type":"response.output_text.delta","sequence_number":')
cdef bytes _RS_TEXT_DELTA_TAIL = b',"logprobs":[]}\n\n'
# ChunkWriter's content frame, field for field (chunks.pxi): its id, created and model, then
cdef bytes _RS_CHUNK_ID = _CHUNK_ID[6:]  # without ``data: ``
# ,"choices":[{"index":0,"delta":{"content":  <the text>  },"finish_reason":null,"logprobs":null}]
cdef bytes _RS_CHUNK_HEAD = _CHUNK_CHOICE[:_CHOICE_CONTENT_AT + _CONTENT_TEXT_AT]
cdef bytes _RS_CHUNK_TAIL = _CHUNK_CHOICE[_CHOICE_CONTENT_AT + len(_CONTENT_FIELD):]
# then ``"usage":null`` (with include_usage), the object, and the provider (when it has one).


cdef inline Py_ssize_t _rs_after(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, bytes literal) noexcept:
    """Where ``p`` goes on after ``literal`` at ``i``, or -1 (also when ``i`` is -1)."""
    cdef Py_ssize_t m = PyBytes_GET_SIZE(literal)
    if i < 0 or i + m > n or memcmp(p + i, PyBytes_AS_STRING(literal), m) != 0:
        return -1
    return i + m


cdef inline Py_ssize_t _rs_after_string(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept:
    """Where ``p`` goes on after the JSON string opening at ``i``, written as msgspec writes
    strings (``_json_string_end``), or -1."""
    if i < 0 or i >= n or p[i] != b'"':
        return -1
    i = _json_string_end(p, i + 1, n)
    return -1 if i < 0 else i + 1


cdef Py_ssize_t _rs_chunk_text(const unsigned char* p, Py_ssize_t n, Py_ssize_t* end) noexcept:
    """Where the text of a content delta written by ChunkWriter opens (its quote), with ``*end``
    after its closing quote; -1 for any other chunk."""
    cdef Py_ssize_t i, start
    i = _rs_after_string(p, _rs_after(p, 0, n, _RS_CHUNK_ID), n)
    i = _rs_after(p, i, n, _CHUNK_CREATED)
    if i < 0:
        return -1
    start = i
    while i < n and b"0" <= p[i] <= b"9":
        i += 1
    if i == start:
        return -1
    i = _rs_after_string(p, _rs_after(p, i, n, _ANSWER_MODEL), n)
    start = _rs_after(p, i, n, _RS_CHUNK_HEAD)
    i = _rs_after_string(p, start, n)
    end[0] = i
    i = _rs_after(p, i, n, _RS_CHUNK_TAIL)
    if _rs_after(p, i, n, _CHUNK_NO_USAGE) >= 0:
        i += PyBytes_GET_SIZE(_CHUNK_NO_USAGE)
    i = _rs_after(p, i, n, _CHUNK_OBJECT)
    if _rs_after(p, i, n, _ANSWER_PROVIDER) >= 0:
        i = _rs_after_string(p, i + PyBytes_GET_SIZE(_ANSWER_PROVIDER), n)
    if i < 0 or i + 1 != n or p[i] != b"}":
        return -1
    return start


cdef inline str _rs_raw_string(object raw):
    """A delta field kept as its JSON (``msgspec.Raw``) as a string: None when absent or not a
    string (a provider's ``reasoning`` object)."""
    if raw is _RS_NULL:
        return None
    data = bytes(raw)
    return _rs_str_decode(data) if data[:1] == b'"' else None


cdef inline bytes _rs_escaped(str text):
    """A string's JSON text without its quotes: how item text is kept while it streams."""
    cdef bytes encoded = _encode_json(text)
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(encoded) + 1, PyBytes_GET_SIZE(encoded) - 2)


cdef inline str _rs_joined(list pieces):
    if not pieces:
        return ""
    return _rs_str_decode(b'"' + _EMPTY.join(pieces) + b'"')


cdef enum _RsKind:
    _RS_REASONING
    _RS_MESSAGE
    _RS_CALL


cdef class _RsItem:
    """An output item being streamed."""

    cdef _RsKind kind
    cdef Py_ssize_t index  # output_index
    cdef str id
    cdef list text  # text, thinking or arguments, in JSON-escaped pieces (_rs_escaped)
    cdef bint done
    # a message's parts: the finished ones, and the open one's kind (text or refusal)
    cdef list parts
    cdef bint refusal
    # the fixed middle of the open text part's delta events: item_id ... "delta":
    cdef bytes delta_fields
    # a function call's (custom: a custom tool's, whose input is sent when complete)
    cdef str call_id
    cdef str name
    cdef bint custom
    # reasoning's: the provider's block index, and what signs it
    cdef object block
    cdef object secret
    cdef bint redacted

    def __cinit__(self):
        self.text = []
        self.parts = []
        self.done = False
        self.refusal = False
        self.secret = None
        self.redacted = False


cdef class ResponsesStream(EventSink):
    """A chat chunk stream as Responses' events, event by event.

    Output items open as their first delta comes and close when another kind of item starts or
    the stream ends: thinking (``content_blocks`` deltas, or ``reasoning_content`` /
    ``reasoning``) becomes a ``reasoning`` item with summary events; content a ``message`` with
    an ``output_text`` part; each tool call a ``function_call`` item. ``[DONE]`` closes what is
    open and ends with ``response.completed`` (or ``response.incomplete``); an error event (a
    provider failing mid-stream) with ``error`` and ``response.failed``.
    """

    cdef SSEDecoder _sse
    cdef ResponsesTurn _turn
    cdef _Out _buf  # the events this read made
    cdef long _seq
    cdef bint _started
    cdef readonly bint done
    cdef object _model
    cdef list _items
    cdef _RsItem _open
    cdef dict _calls  # chat tool-call index → its item
    cdef object _finish_reason
    cdef object _usage

    def __cinit__(self):
        self._buf.data = <char*>PyMem_Malloc(4096)
        if self._buf.data == NULL:
            raise MemoryError()
        self._buf.size, self._buf.cap, self._buf.heap = 0, 4096, True

    def __dealloc__(self):
        PyMem_Free(self._buf.data)

    def __init__(self, ResponsesTurn turn):
        self._sse = SSEDecoder()
        self._turn = turn
        self._seq = 0
        self._started = False
        self.done = False
        self._model = None
        self._items = []
        self._open = None
        self._calls = {}
        self._finish_reason = None
        self._usage = None

    cdef int _emit(self, object event) except -1:
        """One event: its type as the SSE event name, itself as the data."""
        cdef bytes data = _encode_json(event)
        cdef const char* p = PyBytes_AS_STRING(data)
        # ``{"type":"<name>",...``: the name is the event's type, written first.
        cdef const char* name_end = <const char*>memchr(p + 9, b'"', PyBytes_GET_SIZE(data) - 9)
        _put(&self._buf, "event: ", 7)
        _put(&self._buf, p + 9, name_end - p - 9)
        _put(&self._buf, "\ndata: ", 7)
        _put(&self._buf, p, PyBytes_GET_SIZE(data))
        return _put(&self._buf, "\n\n", 2)

    cdef inline long _next(self):
        cdef long n = self._seq
        self._seq += 1
        return n

    cdef int _start(self) except -1:
        self._started = True
        state = _RsRaw(self._turn.state("in_progress", self._model, b"[]"))
        self._emit(_RsCreated(self._next(), state))
        self._emit(_RsInProgress(self._next(), state))
        return 0

    # -- items

    cdef _RsItem _new_item(self, _RsKind kind, str prefix):
        self._close_open()
        cdef _RsItem item = _RsItem()
        item.kind = kind
        item.index = len(self._items)
        item.id = self._turn.item_id(prefix, item.index)
        self._items.append(item)
        self._open = item
        return item

    cdef object _item_struct(self, _RsItem item, bint final):
        if item.kind == _RS_MESSAGE:
            parts = list(item.parts)
            if final and not item.done:
                parts.append(self._part(item))
            return _RsOutputMessage(item.id, parts, status="completed" if final else "in_progress")
        if item.kind == _RS_CALL:
            status = "completed" if final else "in_progress"
            namespace = self._turn._namespaces.get(item.name, _UNSET)
            if item.custom:
                return _RsCustomCallItem(item.id, item.call_id, item.name,
                                         _rs_custom_input(_rs_joined(item.text)) if final else "", status,
                                         namespace)
            return _RsFunctionCallItem(item.id, item.call_id, item.name,
                                       _rs_joined(item.text) if final else "", status, namespace)
        summary = [_RsSummaryText(_rs_joined(item.text))] if final and not item.redacted else []
        return _RsReasoningItem(item.id, summary, item.secret if final else None)

    cdef object _part(self, _RsItem item):
        text = _rs_joined(item.text)
        return _RsRefusal(text) if item.refusal else _RsOutputText(text)

    cdef int _open_part(self, _RsItem item, bint refusal) except -1:
        cdef Py_ssize_t content_index = len(item.parts)
        item.refusal = refusal
        item.text = []
        item.delta_fields = (b',"item_id":' + _encode_json(item.id) + b',"output_index":'
                             + str(item.index).encode() + b',"content_index":'
                             + str(content_index).encode() + b',"delta":')
        self._emit(_RsPartAdded(self._next(), item.id, item.index, content_index,
                                _RsRefusal("") if refusal else _RsOutputText("")))
        return 0

    cdef int _close_part(self, _RsItem item) except -1:
        cdef Py_ssize_t content_index = len(item.parts)
        part = self._part(item)
        if item.refusal:
            self._emit(_RsRefusalDone(self._next(), item.id, item.index, content_index, part.refusal))
        else:
            self._emit(_RsTextDone(self._next(), item.id, item.index, content_index, part.text))
        self._emit(_RsPartDone(self._next(), item.id, item.index, content_index, part))
        item.parts.append(part)
        item.text = []
        return 0

    cdef int _close(self, _RsItem item) except -1:
        if item.done:
            return 0
        if item.kind == _RS_MESSAGE:
            self._close_part(item)
        elif item.kind == _RS_CALL and item.custom:
            # Its input is the ``input`` of JSON still arriving: sent whole, as one delta.
            text = _rs_custom_input(_rs_joined(item.text))
            if text:
                self._emit(_RsCustomDelta(self._next(), item.id, item.index, text))
            self._emit(_RsCustomDone(self._next(), item.id, item.index, text))
        elif item.kind == _RS_CALL:
            self._emit(_RsArgumentsDone(self._next(), item.id, item.index, _rs_joined(item.text)))
        elif not item.redacted:
            text = _rs_joined(item.text)
            self._emit(_RsSummaryTextDone(self._next(), item.id, item.index, 0, text))
            self._emit(_RsSummaryDone(self._next(), item.id, item.index, 0, _RsSummaryText(text)))
        item.done = True
        self._emit(_RsItemDone(self._next(), item.index, self._item_struct(item, True)))
        return 0

    cdef int _close_open(self) except -1:
        if self._open is not None:
            self._close(self._open)
            self._open = None
        return 0

    # -- deltas

    cdef int _thinking(self, object block, str text) except -1:
        cdef _RsItem item = self._open
        if item is None or item.kind != _RS_REASONING or item.block != block:
            item = self._new_item(_RS_REASONING, "rs")
            item.block = block
            self._emit(_RsItemAdded(self._next(), item.index, self._item_struct(item, False)))
            self._emit(_RsSummaryAdded(self._next(), item.id, item.index, 0, _RS_EMPTY_SUMMARY))
        if text:
            item.text.append(_rs_escaped(text))
            self._emit(_RsSummaryDelta(self._next(), item.id, item.index, 0, text))
        return 0

    cdef int _blocks(self, list blocks) except -1:
        """Non-strict ``content_blocks`` deltas: ``{"index": i, "delta": {...}}``, in the shape
        fastgate's Anthropic, Bedrock and Gemini mappings write them."""
        cdef _RsItem item
        for entry in blocks:
            delta = entry.get("delta")
            if not isinstance(delta, dict):
                continue
            block = entry.get("index")
            thinking = delta.get("thinking")
            if isinstance(thinking, str):
                self._thinking(block, thinking)
            elif isinstance(delta.get("signature"), str):
                item = self._open
                if item is not None and item.kind == _RS_REASONING and item.block == block:
                    item.secret = (item.secret or "") + delta["signature"]
            elif delta.get("type") == "redacted_thinking":
                item = self._new_item(_RS_REASONING, "rs")
                item.block, item.redacted, item.secret = block, True, delta.get("data")
                self._emit(_RsItemAdded(self._next(), item.index, self._item_struct(item, False)))
                self._close_open()
        return 0

    cdef int _text_delta(self, _RsItem item, const char* text, Py_ssize_t n) except -1:
        """A text delta event, from the template; ``text`` is the delta as a JSON string."""
        item.text.append(PyBytes_FromStringAndSize(text + 1, n - 2))
        _put_bytes(&self._buf, _RS_TEXT_DELTA_HEAD)
        _put_decimal(&self._buf, self._next())
        _put_bytes(&self._buf, item.delta_fields)
        _put(&self._buf, text, n)
        return _put_bytes(&self._buf, _RS_TEXT_DELTA_TAIL)

    cdef int _open_text(self, bint refusal) except -1:
        """The open message with an open part of this kind (text or refusal), opened if need be."""
        cdef _RsItem item = self._open
        if item is None or item.kind != _RS_MESSAGE:
            item = self._new_item(_RS_MESSAGE, "msg")
            self._emit(_RsItemAdded(self._next(), item.index, self._item_struct(item, False)))
            self._open_part(item, refusal)
        elif item.refusal != refusal:
            self._close_part(item)
            self._open_part(item, refusal)
        return 0

    cdef int _content(self, str text, bint refusal) except -1:
        self._open_text(refusal)
        cdef _RsItem item = self._open
        if not text:
            return 0
        if refusal:
            item.text.append(_rs_escaped(text))
            return self._emit(_RsRefusalDelta(self._next(), item.id, item.index, len(item.parts), text))
        cdef bytes encoded = _encode_json(text)
        return self._text_delta(item, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded))

    cdef int _tool_call(self, object call) except -1:
        cdef _RsItem item = self._calls.get(call.index)
        fn = call.function
        if item is None:
            name = (fn.name if fn is not None else None) or ""
            custom = name in self._turn._custom
            item = self._new_item(_RS_CALL, "ctc" if custom else "fc")
            item.call_id = call.id or self._turn.item_id("call", item.index)
            item.name, item.custom = name, custom
            self._calls[call.index] = item
            self._emit(_RsItemAdded(self._next(), item.index, self._item_struct(item, False)))
        elif item is not self._open and not item.done:
            self._close_open()  # deltas of an earlier call after another item: that item ends
            self._open = item
        arguments = _rs_raw_string(fn.arguments) if fn is not None else None
        if arguments:
            item.text.append(_rs_escaped(arguments))
            if not item.custom:
                self._emit(_RsArgumentsDelta(self._next(), item.id, item.index, arguments))
        return 0

    cdef int _raw_content(self, object raw) except -1:
        """A delta's text (``DeltaView.content``, the JSON it came as): copied into its event
        when written as msgspec writes strings, else decoded (a ``\\u`` escape) and re-encoded."""
        cdef bytes data
        cdef Py_ssize_t n
        if raw is _RS_NULL:
            return 0
        data = bytes(raw)
        n = PyBytes_GET_SIZE(data)
        if n <= 2 or data[0] != 34:  # empty, or not a string
            return 0
        if _json_string_end(<const unsigned char*>PyBytes_AS_STRING(data), 1, n) == n - 1:
            self._open_text(False)
            return self._text_delta(self._open, PyBytes_AS_STRING(data), n)
        return self._content(_rs_str_decode(data), False)

    cdef int _chunk(self, object chunk) except -1:
        if chunk.model and self._model is None:
            self._model = chunk.model
        if chunk.usage is not None:
            self._usage = chunk.usage
        if not self._started:
            self._start()
        if not chunk.choices:
            return 0
        choice = chunk.choices[0]
        delta = choice.delta
        if delta is not None:
            if delta.content_blocks:
                self._blocks(delta.content_blocks)
            else:
                thinking = _rs_raw_string(delta.reasoning_content) or _rs_raw_string(delta.reasoning)
                if thinking:
                    self._thinking(None, thinking)
            self._raw_content(delta.content)
            refusal = _rs_raw_string(delta.refusal)
            if refusal:
                self._content(refusal, True)
            for call in delta.tool_calls or ():
                self._tool_call(call)
        if choice.finish_reason is not None:
            self._finish_reason = choice.finish_reason
        return 0

    # -- ends

    cdef int _complete(self) except -1:
        if not self._started:
            self._start()
        if not self._items:
            self._content("", False)  # an answer of nothing is an empty message, as a whole answer's
        self._close_open()
        cdef _RsItem item
        cdef list items = []
        for item in self._items:
            items.append(self._item_struct(item, True))
        response = self._turn.finished(self._model, items, self._finish_reason, self._usage)
        reason = _RS_INCOMPLETE.get(self._finish_reason) if self._finish_reason is not None else None
        if reason is None:
            self._emit(_RsCompleted(self._next(), _RsRaw(response)))
        else:
            self._emit(_RsIncomplete(self._next(), _RsRaw(response)))
        self.done = True
        return 0

    cdef int _fail(self, str message, object code) except -1:
        """The provider failed mid-answer: an ``error`` event, then ``response.failed`` holding
        what was answered so far."""
        if not self._started:
            self._start()
        self._emit(_RsStreamError(self._next(), message, code))
        cdef _RsItem item
        cdef list answered = []
        for item in self._items:
            answered.append(self._item_struct(item, item.done))
        state = self._turn.state("failed", self._model, _encode_json(answered), _rs_usage(self._usage),
                                 _RsError("server_error", message), None, True)
        self._emit(_RsFailed(self._next(), _RsRaw(state)))
        self.done = True
        return 0

    cdef int take(self, const char* event, Py_ssize_t event_n, const char* data,
                  Py_ssize_t n) except -1:
        cdef Py_ssize_t start, end
        cdef _RsItem item = self._open
        if self.done:
            return 0
        if item is not None and item.kind == _RS_MESSAGE and not item.refusal:
            start = _rs_chunk_text(<const unsigned char*>data, n, &end)
            if start >= 0:
                return self._text_delta(item, data + start, end - start) if end - start > 2 else 0
        if n == 6 and memcmp(data, b"[DONE]", 6) == 0:
            return self._complete()
        try:
            chunk = _rs_chunk_decode(PyBytes_FromStringAndSize(data, n))
            if chunk.error is not None:
                error = chunk.error
                return self._fail(error.message or "the provider failed mid-stream", error.type)
            return self._chunk(chunk)
        except (_msgspec.DecodeError, _msgspec.ValidationError) as exc:
            # Not a chunk, or a text that is not a JSON string (or not UTF-8) in one.
            return self._fail(f"malformed stream event: {exc}", None)

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
        """The end of the chat stream. It ends with ``[DONE]``; one cut before it ends the
        Response as failed, unless its finish reason had come."""
        if self.done:
            return _EMPTY
        self._buf.size = 0
        self._sse.close_into(self)
        if not self.done:
            if self._finish_reason is not None:
                self._complete()
            else:
                self._fail("the provider's stream ended before the answer did", None)
        return self._taken()
