"""AWS Bedrock Runtime wire formats (Converse, ConverseStream, InvokeModel embeddings) as Structs.

Shapes and field names follow the Bedrock Runtime API reference and botocore's
``bedrock-runtime/2023-09-30/service-2.json``. Converse's content blocks are unions keyed by
member name (``{"text": ...}``, ``{"image": ...}``): one Struct with every member optional and
``omit_defaults`` writes exactly one key. Blobs travel base64-encoded (rest-json protocol), so a
``data:`` URL's payload goes through without being decoded. Response-side Structs are views:
only what the mapping reads.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import field

from fastgate.schema.openai import ChatRequest

# ---- Converse request --------------------------------------------------------------------------


class S3Location(msgspec.Struct, omit_defaults=True):
    uri: str
    bucketOwner: str | None = None


class BinarySource(msgspec.Struct, omit_defaults=True):
    """ImageSource / DocumentSource: exactly one of ``bytes`` (base64) or ``s3Location``."""

    data: str | None = field(default=None, name="bytes")
    s3Location: S3Location | None = None


class ImageBlock(msgspec.Struct):
    format: str
    source: BinarySource


class DocumentBlock(msgspec.Struct):
    format: str
    name: str
    source: BinarySource


class ToolUseBlock(msgspec.Struct):
    toolUseId: str
    name: str
    input: Any


class ToolResultContent(msgspec.Struct, omit_defaults=True):
    text: str | None = None
    image: ImageBlock | None = None


class ToolResultBlock(msgspec.Struct, omit_defaults=True):
    toolUseId: str
    content: list[ToolResultContent]


class CachePoint(msgspec.Struct):
    type: str = "default"


class ContentBlock(msgspec.Struct, omit_defaults=True):
    text: str | None = None
    image: ImageBlock | None = None
    document: DocumentBlock | None = None
    toolUse: ToolUseBlock | None = None
    toolResult: ToolResultBlock | None = None
    cachePoint: CachePoint | None = None
    #: An earlier assistant turn's thinking, sent back as it came (the response's own shape).
    reasoningContent: ReasoningView | None = None


class SystemBlock(msgspec.Struct, omit_defaults=True):
    text: str | None = None
    cachePoint: CachePoint | None = None


class Message(msgspec.Struct):
    role: str
    content: list[ContentBlock]


class InferenceConfig(msgspec.Struct, omit_defaults=True):
    maxTokens: int | None = None
    temperature: float | None = None
    topP: float | None = None
    stopSequences: list[str] | None = None


class InputSchema(msgspec.Struct):
    json: dict[str, Any]


class ToolSpec(msgspec.Struct, omit_defaults=True):
    name: str
    inputSchema: InputSchema
    description: str | None = None


class ToolEntry(msgspec.Struct):
    toolSpec: ToolSpec


class SpecificTool(msgspec.Struct):
    name: str


class Empty(msgspec.Struct):
    pass


class ToolChoice(msgspec.Struct, omit_defaults=True):
    auto: Empty | None = None
    any_: Empty | None = field(default=None, name="any")
    tool: SpecificTool | None = None


class ToolConfig(msgspec.Struct, omit_defaults=True):
    tools: list[ToolEntry]
    toolChoice: ToolChoice | None = None


class ConverseRequest(msgspec.Struct, omit_defaults=True):
    """Body of ``POST /model/{modelId}/converse`` and ``/converse-stream`` (the model is in the URL)."""

    messages: list[Message]
    system: list[SystemBlock] | None = None
    inferenceConfig: InferenceConfig | None = None
    toolConfig: ToolConfig | None = None
    additionalModelRequestFields: dict[str, Any] | None = None
    guardrailConfig: dict[str, Any] | None = None
    performanceConfig: dict[str, Any] | None = None


class BedrockChatRequest(ChatRequest, omit_defaults=True):
    """OpenAI's chat body plus the Bedrock-only fields Portkey accepts (both spellings)."""

    additionalModelRequestFields: dict[str, Any] | None = None
    additional_model_request_fields: dict[str, Any] | None = None
    guardrailConfig: dict[str, Any] | None = None
    guardrail_config: dict[str, Any] | None = None
    performanceConfig: dict[str, Any] | None = None
    performance_config: dict[str, Any] | None = None


# ---- Converse response (views) -----------------------------------------------------------------


class ToolUseView(msgspec.Struct):
    toolUseId: str
    name: str
    #: Kept as the raw JSON text: it becomes OpenAI's ``arguments`` string without a decode.
    input: msgspec.Raw = msgspec.Raw(b"{}")


class ReasoningText(msgspec.Struct, omit_defaults=True):
    text: str = ""
    signature: str | None = None


class ReasoningView(msgspec.Struct, omit_defaults=True):
    """ReasoningContentBlock: the model's thinking, or its encrypted (redacted) form; read from
    answers, and written back in the assistant turns of later requests (Claude takes its signed
    thinking back unchanged, and wants it before a turn's tool use while thinking is on:
    https://docs.aws.amazon.com/bedrock/latest/userguide/claude-messages-extended-thinking.html)."""

    reasoningText: ReasoningText | None = None
    redactedContent: str | None = None


class BlockView(msgspec.Struct):
    text: str | None = None
    toolUse: ToolUseView | None = None
    reasoningContent: ReasoningView | None = None


class MessageView(msgspec.Struct):
    content: list[BlockView] = []
    role: str = "assistant"


class OutputView(msgspec.Struct):
    message: MessageView | None = None


class TokenUsage(msgspec.Struct):
    inputTokens: int = 0
    outputTokens: int = 0
    totalTokens: int = 0
    cacheReadInputTokens: int = 0
    cacheWriteInputTokens: int = 0


class ConverseResponse(msgspec.Struct):
    output: OutputView = field(default_factory=OutputView)
    stopReason: str = "end_turn"
    usage: TokenUsage | None = None


# ---- ConverseStream events (payload of each event-stream message, by ``:event-type``) ----------


class ToolUseStart(msgspec.Struct):
    toolUseId: str
    name: str


class BlockStart(msgspec.Struct):
    toolUse: ToolUseStart | None = None


class ContentBlockStartEvent(msgspec.Struct):
    start: BlockStart
    contentBlockIndex: int = 0


class ToolUseDelta(msgspec.Struct):
    input: str = ""


class ReasoningDelta(msgspec.Struct):
    """ReasoningContentBlockDelta: one of text, signature or redactedContent."""

    text: str | None = None
    signature: str | None = None
    redactedContent: str | None = None


class BlockDelta(msgspec.Struct):
    text: str | None = None
    toolUse: ToolUseDelta | None = None
    reasoningContent: ReasoningDelta | None = None


class ContentBlockDeltaEvent(msgspec.Struct):
    delta: BlockDelta
    contentBlockIndex: int = 0


class MessageStopEvent(msgspec.Struct):
    stopReason: str = "end_turn"


class MetadataEvent(msgspec.Struct):
    usage: TokenUsage | None = None


class ErrorMessage(msgspec.Struct):
    """``{"message": ...}``: the body of every Bedrock error and exception event."""

    message: str | None = None
    #: Some AWS front ends capitalise it.
    Message: str | None = None


# ---- InvokeModel embeddings --------------------------------------------------------------------


class TitanEmbedRequest(msgspec.Struct, omit_defaults=True):
    """amazon.titan-embed-text-v2:0 (``dimensions``/``normalize`` are v2 only)."""

    inputText: str
    dimensions: int | None = None
    normalize: bool | None = None


class TitanEmbedResponse(msgspec.Struct):
    embedding: list[float]
    inputTextTokenCount: int = 0


class CohereEmbedRequest(msgspec.Struct, omit_defaults=True):
    texts: list[str]
    input_type: str
    truncate: str | None = None


class CohereEmbedResponse(msgspec.Struct):
    #: A list of float vectors; keyed by type (``{"float": [...]}``) when embedding types are
    #: requested or by Embed v4 (Cohere Embed pages of the Bedrock user guide).
    embeddings: list[list[float]] | dict[str, list[list[float]]]
