"""Cohere API v2 wire formats as msgspec Structs (``/v2/chat``, ``/v2/embed``).

Field names follow Cohere's API reference (https://docs.cohere.com/reference/chat,
https://docs.cohere.com/reference/chat-stream, https://docs.cohere.com/reference/embed) and the
``cohere`` SDK's v2 types. Outbound Structs omit unset fields, so Cohere never sees a ``null``
where it expects absence; inbound ones are small views of what the mapping reads.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

from fastgate.schema.openai import ChatRequest, FunctionDef, ImagePart, TextPart, ToolCall

# ---- request side ------------------------------------------------------------------------------


class CohereChatInput(ChatRequest, kw_only=True):
    """An OpenAI chat body plus the Cohere-only parameters Portkey forwards (chat reference)."""

    k: int | None = None
    documents: list[Any] | None = None
    citation_options: dict[str, Any] | None = None
    safety_mode: str | None = None
    strict_tools: bool | None = None


class CohereMessage(msgspec.Struct, omit_defaults=True):
    """One of Cohere v2's ``system`` / ``user`` / ``assistant`` / ``tool`` messages."""

    role: str
    content: str | list[TextPart | ImagePart] | UnsetType = UNSET
    tool_calls: list[ToolCall] | UnsetType = UNSET
    tool_call_id: str | UnsetType = UNSET


class CohereTool(msgspec.Struct):
    """``ToolV2``: OpenAI's function-tool shape without ``strict`` (that is ``strict_tools``)."""

    type: str
    function: FunctionDef


class CohereResponseFormat(msgspec.Struct, omit_defaults=True):
    """``ResponseFormatV2``: ``text``, or ``json_object`` with an optional JSON schema."""

    type: str
    json_schema: dict[str, Any] | UnsetType = UNSET


class CohereThinking(msgspec.Struct, omit_defaults=True):
    type: str = "enabled"
    token_budget: int | UnsetType = UNSET


class CohereChatRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v2/chat`` body."""

    messages: list[CohereMessage]
    model: str | UnsetType = UNSET
    stream: bool = False
    max_tokens: int | UnsetType = UNSET
    stop_sequences: list[str] | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    p: float | UnsetType = UNSET
    k: int | UnsetType = UNSET
    seed: int | UnsetType = UNSET
    frequency_penalty: float | UnsetType = UNSET
    presence_penalty: float | UnsetType = UNSET
    logprobs: bool | UnsetType = UNSET
    response_format: CohereResponseFormat | UnsetType = UNSET
    tools: list[CohereTool] | UnsetType = UNSET
    strict_tools: bool | UnsetType = UNSET
    tool_choice: str | UnsetType = UNSET
    thinking: CohereThinking | UnsetType = UNSET
    documents: list[Any] | UnsetType = UNSET
    citation_options: dict[str, Any] | UnsetType = UNSET
    safety_mode: str | UnsetType = UNSET


class CohereEmbedRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v2/embed`` body (texts only; ``embedding_types`` is required in v2)."""

    texts: list[str]
    input_type: str
    embedding_types: list[str]
    model: str | UnsetType = UNSET
    output_dimension: int | UnsetType = UNSET
    truncate: str | UnsetType = UNSET


# ---- response side -----------------------------------------------------------------------------


class CohereTokens(msgspec.Struct):
    input_tokens: float = 0
    output_tokens: float = 0


class CohereUsage(msgspec.Struct):
    """``usage``: ``tokens`` counts what the model saw; ``billed_units`` what was charged."""

    tokens: CohereTokens | None = None
    billed_units: CohereTokens | None = None


class CohereContentItem(msgspec.Struct):
    type: str = "text"
    text: str = ""


class CohereFunctionCall(msgspec.Struct):
    name: str = ""
    arguments: str = ""


class CohereToolCall(msgspec.Struct):
    id: str = ""
    function: CohereFunctionCall | None = None


class CohereAssistantMessage(msgspec.Struct):
    content: list[CohereContentItem] | None = None
    tool_calls: list[CohereToolCall] | None = None
    tool_plan: str | None = None


class CohereChatResponse(msgspec.Struct):
    """The non-streamed ``/v2/chat`` answer (no ``model`` field: the request's is used)."""

    id: str = ""
    finish_reason: str = "COMPLETE"
    message: CohereAssistantMessage | None = None
    usage: CohereUsage | None = None


# Stream events (chat-stream reference): one loose Struct for every ``type``, since the same
# ``delta.message`` keys hold lists in ``message-start`` and single objects in the deltas.


class CohereDeltaContent(msgspec.Struct):
    text: str | None = None
    thinking: str | None = None


class CohereDeltaToolCall(msgspec.Struct):
    id: str | None = None
    function: CohereFunctionCall | None = None


class CohereDeltaMessage(msgspec.Struct):
    content: CohereDeltaContent | list[Any] | None = None
    tool_calls: CohereDeltaToolCall | list[Any] | None = None
    tool_plan: str | None = None


class CohereEventDelta(msgspec.Struct):
    message: CohereDeltaMessage | None = None
    finish_reason: str | None = None
    usage: CohereUsage | None = None
    error: str | None = None


class CohereStreamEvent(msgspec.Struct):
    type: str
    id: str | None = None
    index: int = 0
    delta: CohereEventDelta | None = None


class CohereEmbeddings(msgspec.Struct):
    float_: list[list[float]] | None = msgspec.field(default=None, name="float")


class CohereEmbedMeta(msgspec.Struct):
    billed_units: CohereTokens | None = None


class CohereEmbedResponse(msgspec.Struct):
    embeddings: CohereEmbeddings
    id: str = ""
    meta: CohereEmbedMeta | None = None


cohere_chat_input_decoder = msgspec.json.Decoder(CohereChatInput)
cohere_chat_response_decoder = msgspec.json.Decoder(CohereChatResponse)
cohere_stream_event_decoder = msgspec.json.Decoder(CohereStreamEvent)
cohere_embed_response_decoder = msgspec.json.Decoder(CohereEmbedResponse)
