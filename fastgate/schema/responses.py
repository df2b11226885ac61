"""OpenAI Responses API wire formats (``POST /v1/responses``) as msgspec Structs.

What a client sends, what fastgate answers for a provider reached through the chat pivot, and
the few fields of a chat answer that answer is built from. Field names and shapes follow OpenAI's
API reference (https://platform.openai.com/docs/api-reference/responses) and the ``openai`` SDK's
types (``openai/types/responses/``).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from fastgate.schema.chat_answer import NULL

# ---- request: content parts --------------------------------------------------------------------


class InputText(msgspec.Struct, tag="input_text", tag_field="type"):
    text: str


class InputImage(msgspec.Struct, tag="input_image", tag_field="type", omit_defaults=True):
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None


class InputFile(msgspec.Struct, tag="input_file", tag_field="type", omit_defaults=True):
    file_data: str | None = None
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None


class OutputText(msgspec.Struct, tag="output_text", tag_field="type"):
    """An assistant's text, in output and in the input items that hand an answer back."""

    text: str
    annotations: list[Any] = []
    logprobs: list[Any] = []


class Refusal(msgspec.Struct, tag="refusal", tag_field="type"):
    refusal: str


class SummaryText(msgspec.Struct, tag="summary_text", tag_field="type"):
    text: str


class ReasoningText(msgspec.Struct, tag="reasoning_text", tag_field="type"):
    text: str


ContentPart = InputText | InputImage | InputFile | OutputText | Refusal | ReasoningText


# ---- request: items, tools, settings -------------------------------------------------------------


class InputItem(msgspec.Struct, omit_defaults=True, gc=False):
    """One input item, of any kind, in one Struct.

    The easy-input message (``{"role": "user", "content": "hi"}``) has no ``type``, so the item
    kinds cannot be a union tagged by it; the fields of the kinds fastgate translates (messages,
    ``function_call``, ``function_call_output``, ``reasoning``) share this Struct, and ``type``
    says which apply. Output items decode into it too, which is how a stored conversation is read
    back for ``previous_response_id``.
    """

    type: str = "message"
    id: str | None = None
    role: str | None = None
    content: str | list[ContentPart] | None = None
    status: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    #: ``function_call_output``: a string, or input_text / input_image / input_file parts.
    output: str | list[ContentPart] | None = None
    summary: list[SummaryText] | None = None
    encrypted_content: str | None = None
    #: ``custom_tool_call``: the tool's free-form input.
    input: str | None = None


class InputMessageItem(msgspec.Struct, tag="message", tag_field="type"):
    """An input message as a stored response lists it (``input_items``): with its id and type,
    its text as content parts."""

    id: str
    role: str
    content: list[ContentPart]
    status: str = "completed"


class ToolParam(msgspec.Struct, omit_defaults=True):
    """A tool as the Responses API takes it: functions are flat (``name`` beside ``type``)."""

    type: str
    name: str | None = None
    description: str | None = None
    #: JSON Schema, kept as the JSON it came in: copied into the chat request and the echo
    #: (``null`` when absent).
    parameters: msgspec.Raw = NULL
    strict: bool | None = None
    #: A ``custom`` tool's input: free text, or a grammar (``{"type": "grammar", ...}``).
    format: dict[str, Any] | None = None
    #: A ``namespace``'s function and custom tools, called by their own names.
    tools: list[ToolParam] | None = None


class TextFormat(msgspec.Struct, omit_defaults=True):
    """``text.format``: ``text``, ``json_object``, or a flat ``json_schema``."""

    type: str
    name: str | None = None
    schema: msgspec.Raw = NULL
    description: str | None = None
    strict: bool | None = None


class TextConfig(msgspec.Struct, omit_defaults=True):
    format: TextFormat | None = None
    verbosity: str | None = None


class ReasoningConfig(msgspec.Struct):
    effort: str | None = None
    summary: str | None = None


class ResponsesRequest(msgspec.Struct, omit_defaults=True, gc=False):
    """``POST /v1/responses`` body: every field fastgate reads or must refuse."""

    model: str | None = None
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    tools: list[ToolParam] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    max_output_tokens: int | None = None
    max_tool_calls: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_logprobs: int | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    stream: bool | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    include: list[str] | None = None
    truncation: str | None = None
    service_tier: str | None = None
    #: Not translatable (refused with a 400 for providers reached through chat).
    background: bool | None = None
    conversation: Any = None
    prompt: Any = None


# ---- the chat request's parts the translation writes itself ---------------------------------------


class ChatJSONSchema(msgspec.Struct, omit_defaults=True):
    """``response_format.json_schema`` with its ``name`` always sent (OpenAI requires it; chat's
    ``JSONSchemaFormat`` leaves it out at its default); the mappings read it as they read that."""

    name: str
    schema: msgspec.Raw
    description: str | None = None
    strict: bool | None = None


# ---- answer --------------------------------------------------------------------------------------


class OutputMessage(msgspec.Struct, tag="message", tag_field="type"):
    id: str
    content: list[OutputText | Refusal]
    status: str = "completed"
    role: str = "assistant"


class FunctionCallItem(msgspec.Struct, tag="function_call", tag_field="type"):
    id: str
    call_id: str
    name: str
    arguments: str
    status: str = "completed"
    #: The namespace tool the called function belongs to, if any.
    namespace: str | UnsetType = UNSET


class CustomToolCallItem(msgspec.Struct, tag="custom_tool_call", tag_field="type"):
    id: str
    call_id: str
    name: str
    input: str
    status: str = "completed"
    namespace: str | UnsetType = UNSET


class ReasoningItem(msgspec.Struct, tag="reasoning", tag_field="type"):
    """The provider's thinking as a summary. ``encrypted_content`` carries what must go back to
    the provider unchanged in a later turn (Anthropic's thinking signature or redacted data)."""

    id: str
    summary: list[SummaryText]
    encrypted_content: str | None = None


OutputItem = OutputMessage | FunctionCallItem | CustomToolCallItem | ReasoningItem


class InputTokensDetails(msgspec.Struct):
    cached_tokens: int = 0
    cache_write_tokens: int = 0


class OutputTokensDetails(msgspec.Struct):
    reasoning_tokens: int = 0


class ResponseUsage(msgspec.Struct):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails
    total_tokens: int


class IncompleteDetails(msgspec.Struct):
    reason: str


class ResponseError(msgspec.Struct):
    code: str
    message: str


class ResponseState(msgspec.Struct):
    """The part of a Response that the answer decides (the rest echoes the request,
    ``ResponseSettings``): written first, the settings' JSON spliced after it."""

    id: str
    created_at: int
    status: str
    model: str
    output: msgspec.Raw
    usage: ResponseUsage | None = None
    error: ResponseError | None = None
    incomplete_details: IncompleteDetails | None = None
    completed_at: int | None = None
    object: str = "response"
    background: bool = False
    #: The SDKs' convenience (their ``Response.output_text``), also written for clients that read
    #: the JSON themselves: the output_text parts joined. Only once the answer is final.
    output_text: str | UnsetType = UNSET


class EchoReasoning(msgspec.Struct):
    effort: str | None = None
    summary: str | None = None


class EchoText(msgspec.Struct):
    format: TextFormat
    verbosity: str = "medium"


class ResponseSettings(msgspec.Struct):
    """The request's settings as a Response echoes them, with OpenAI's defaults filled in."""

    instructions: str | None
    max_output_tokens: int | None
    max_tool_calls: int | None
    metadata: dict[str, str]
    parallel_tool_calls: bool
    previous_response_id: str | None
    reasoning: EchoReasoning
    store: bool
    temperature: float
    text: EchoText
    tool_choice: str | dict[str, Any]
    tools: list[ToolParam]
    top_logprobs: int
    top_p: float
    truncation: str
    user: str | None
    service_tier: str


class StoredResponse(msgspec.Struct):
    """A stored Response: the answer as sent, the request's input items (``input_items``), and
    the conversation a ``previous_response_id`` continues (earlier turns, this input, this output)."""

    response: msgspec.Raw
    input_items: msgspec.Raw
    conversation: msgspec.Raw
    #: The gateway key that made it (its id; empty on a server without keys): only that key's
    #: requests read, continue or delete it.
    owner: str = ""


# ---- stream events (https://platform.openai.com/docs/api-reference/responses-streaming) --------
# Each is written as ``event: <type>`` and ``data: <the event>``; the kinds that share a shape
# share a base, told apart by their tag.


class LifecycleEvent(msgspec.Struct, tag_field="type"):
    """The whole Response at a turn of its life."""

    sequence_number: int
    response: msgspec.Raw


class ResponseCreated(LifecycleEvent, tag="response.created"):
    pass


class ResponseInProgress(LifecycleEvent, tag="response.in_progress"):
    pass


class ResponseCompleted(LifecycleEvent, tag="response.completed"):
    pass


class ResponseIncomplete(LifecycleEvent, tag="response.incomplete"):
    pass


class ResponseFailed(LifecycleEvent, tag="response.failed"):
    pass


class ItemEvent(msgspec.Struct, tag_field="type"):
    sequence_number: int
    output_index: int
    item: OutputItem


class OutputItemAdded(ItemEvent, tag="response.output_item.added"):
    pass


class OutputItemDone(ItemEvent, tag="response.output_item.done"):
    pass


class ItemDataEvent(msgspec.Struct, tag_field="type"):
    """An event about the data of one output item."""

    sequence_number: int
    item_id: str
    output_index: int


class ContentEvent(ItemDataEvent, tag_field="type"):
    content_index: int


class ContentPartAdded(ContentEvent, tag="response.content_part.added"):
    part: OutputText | Refusal


class ContentPartDone(ContentEvent, tag="response.content_part.done"):
    part: OutputText | Refusal


class OutputTextDelta(ContentEvent, tag="response.output_text.delta"):
    delta: str
    logprobs: list[Any] = []


class OutputTextDone(ContentEvent, tag="response.output_text.done"):
    text: str
    logprobs: list[Any] = []


class RefusalDelta(ContentEvent, tag="response.refusal.delta"):
    delta: str


class RefusalDone(ContentEvent, tag="response.refusal.done"):
    refusal: str


class ArgumentsDelta(ItemDataEvent, tag="response.function_call_arguments.delta"):
    delta: str


class ArgumentsDone(ItemDataEvent, tag="response.function_call_arguments.done"):
    arguments: str


class CustomInputDelta(ItemDataEvent, tag="response.custom_tool_call_input.delta"):
    delta: str


class CustomInputDone(ItemDataEvent, tag="response.custom_tool_call_input.done"):
    input: str


class SummaryEvent(ItemDataEvent, tag_field="type"):
    summary_index: int


class SummaryPartAdded(SummaryEvent, tag="response.reasoning_summary_part.added"):
    part: SummaryText


class SummaryPartDone(SummaryEvent, tag="response.reasoning_summary_part.done"):
    part: SummaryText


class SummaryTextDelta(SummaryEvent, tag="response.reasoning_summary_text.delta"):
    delta: str


class SummaryTextDone(SummaryEvent, tag="response.reasoning_summary_text.done"):
    text: str


class StreamError(msgspec.Struct, tag="error", tag_field="type"):
    sequence_number: int
    message: str
    code: str | None = None
    param: str | None = None


request_decoder = msgspec.json.Decoder(ResponsesRequest)
