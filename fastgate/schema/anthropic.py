"""Anthropic Messages API wire formats as msgspec Structs.

Outbound (what fastgate sends to ``POST /v1/messages``) are full Structs that omit unset fields,
so Anthropic never sees a ``null`` where it expects absence. Inbound (what Anthropic answers)
are small views holding only what the OpenAI mapping reads; unknown fields are skipped, so a
field Anthropic adds tomorrow does not break today's decoder. The ones made on every request
are ``gc=False``: they hold trees of JSON values, never a cycle, so the collector need not track
them.

Field names follow Anthropic's API reference (https://docs.anthropic.com/en/api/messages) and
the ``anthropic`` SDK's types (``anthropic/types/message_create_params.py``, ``message.py``,
``raw_message_stream_event.py``, ``usage.py``).
"""

from __future__ import annotations

from typing import Any

import msgspec

# ---- request side ------------------------------------------------------------------------------


class Base64Source(msgspec.Struct, tag="base64", tag_field="type"):
    media_type: str
    data: str


class URLSource(msgspec.Struct, tag="url", tag_field="type"):
    url: str


class PlainTextSource(msgspec.Struct, tag="text", tag_field="type"):
    """A ``document`` given as text (``PlainTextSourceParam``: media type is always text/plain)."""

    data: str
    media_type: str = "text/plain"


class FileSource(msgspec.Struct, tag="file", tag_field="type"):
    """A file uploaded to Anthropic's Files API (needs the ``files-api-2025-04-14`` beta)."""

    file_id: str


Source = Base64Source | URLSource | PlainTextSource | FileSource


class TextBlock(msgspec.Struct, tag="text", tag_field="type", omit_defaults=True, gc=False):
    text: str
    cache_control: dict[str, Any] | None = None


class ImageBlock(msgspec.Struct, tag="image", tag_field="type", omit_defaults=True):
    source: Source
    cache_control: dict[str, Any] | None = None


class DocumentBlock(msgspec.Struct, tag="document", tag_field="type", omit_defaults=True):
    source: Source
    cache_control: dict[str, Any] | None = None
    title: str | None = None


class ToolUseBlock(msgspec.Struct, tag="tool_use", tag_field="type"):
    id: str
    name: str
    #: The call's arguments: a JSON object, carried as the client's bytes (never re-encoded).
    input: msgspec.Raw


class ToolResultBlock(msgspec.Struct, tag="tool_result", tag_field="type", omit_defaults=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""


ContentBlock = TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock


class MessageParam(msgspec.Struct, gc=False):
    role: str
    content: str | list[ContentBlock]


class ToolDef(msgspec.Struct, omit_defaults=True):
    name: str
    input_schema: dict[str, Any]
    description: str | None = None


class ToolChoice(msgspec.Struct, omit_defaults=True):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(msgspec.Struct):
    user_id: str


class OutputFormat(msgspec.Struct, tag="json_schema", tag_field="type"):
    schema: dict[str, Any]


class OutputConfig(msgspec.Struct):
    """Structured outputs (``OutputConfigParam.format``)."""

    format: OutputFormat


class MessagesRequest(msgspec.Struct, omit_defaults=True, gc=False):
    max_tokens: int
    messages: list[MessageParam]
    #: Absent on Vertex AI, which names the model in the URL.
    model: str | None = None
    #: Vertex AI only: the API version goes in the body (``vertex-2023-10-16``), not a header.
    anthropic_version: str | None = None
    system: list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    metadata: Metadata | None = None
    tools: list[ToolDef] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = None
    output_config: OutputConfig | None = None
    stream: bool = False


# ---- response side (views) ---------------------------------------------------------------------


class UsageView(msgspec.Struct, gc=False):
    """``Usage`` of a Message, and the cumulative figures a ``message_delta`` may carry."""

    input_tokens: int | None = None
    output_tokens: int = 0
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class BlockView(msgspec.Struct, gc=False):
    """One content block, whatever its ``type``; only the fields the mapping reads."""

    type: str
    text: str = ""
    id: str = ""
    name: str = ""
    #: A ``tool_use`` block's arguments, kept as Anthropic's bytes to become OpenAI's JSON string.
    input: msgspec.Raw = msgspec.Raw(b"{}")
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class MessageView(msgspec.Struct, gc=False):
    id: str = ""
    model: str = ""
    content: list[BlockView] = []
    stop_reason: str | None = None
    usage: UsageView = msgspec.field(default_factory=UsageView)


class StartedMessage(msgspec.Struct, gc=False):
    """The message a ``message_start`` event opens: its content is empty, so not read."""

    id: str = ""
    model: str = ""
    usage: UsageView = msgspec.field(default_factory=UsageView)


class MessageStartEvent(msgspec.Struct, gc=False):
    message: StartedMessage


class BlockStartEvent(msgspec.Struct, gc=False):
    index: int
    content_block: BlockView


class DeltaView(msgspec.Struct, gc=False):
    """``text_delta``, ``input_json_delta``, ``thinking_delta``, ``signature_delta``, ..."""

    type: str
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None


class BlockDeltaEvent(msgspec.Struct, gc=False):
    index: int
    delta: DeltaView


class MessageDeltaBody(msgspec.Struct, gc=False):
    stop_reason: str | None = None


class MessageDeltaEvent(msgspec.Struct, gc=False):
    delta: MessageDeltaBody = msgspec.field(default_factory=MessageDeltaBody)
    usage: UsageView = msgspec.field(default_factory=UsageView)


class ErrorInfo(msgspec.Struct):
    type: str = "api_error"
    message: str = ""


class ErrorEvent(msgspec.Struct):
    """``{"type": "error", "error": {"type", "message"}}``: error bodies and stream error events."""

    error: ErrorInfo = msgspec.field(default_factory=ErrorInfo)


class ModelInfoView(msgspec.Struct):
    id: str
    #: RFC 3339 release date.
    created_at: str = ""


class ModelListView(msgspec.Struct):
    data: list[ModelInfoView]
