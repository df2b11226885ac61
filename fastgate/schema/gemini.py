"""Google Gemini wire formats (Gemini API v1beta and Vertex AI v1, same JSON) as msgspec Structs.

Outbound Structs are what fastgate sends (``omit_defaults`` so absent means absent); inbound
"view" Structs hold only what the OpenAI mapping reads. Field names follow Google's REST reference
(https://ai.google.dev/api/generate-content, https://ai.google.dev/api/caching#Content) in its
camelCase JSON spelling, written here in snake_case with ``rename="camel"``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

# ---- request side ------------------------------------------------------------------------------


class Blob(msgspec.Struct, rename="camel"):
    """``inlineData``: bytes given inline, base64."""

    mime_type: str
    data: str


class FileData(msgspec.Struct, rename="camel"):
    """``fileData``: a file by URI (Files API, ``gs://`` on Vertex, public https)."""

    mime_type: str
    file_uri: str


class FunctionCall(msgspec.Struct, rename="camel", omit_defaults=True):
    name: str
    args: dict[str, Any] | UnsetType = UNSET


class FunctionResponse(msgspec.Struct, rename="camel"):
    name: str
    response: dict[str, Any]


class Part(msgspec.Struct, rename="camel", omit_defaults=True):
    """One member of the ``Part`` union: exactly one data field is set."""

    text: str | UnsetType = UNSET
    inline_data: Blob | UnsetType = UNSET
    file_data: FileData | UnsetType = UNSET
    function_call: FunctionCall | UnsetType = UNSET
    function_response: FunctionResponse | UnsetType = UNSET
    #: Opaque thinking state returned with a part; sent back on the same part in later turns
    #: (https://ai.google.dev/gemini-api/docs/thought-signatures).
    thought_signature: str | UnsetType = UNSET


class Content(msgspec.Struct, rename="camel", omit_defaults=True):
    parts: list[Part]
    role: str | UnsetType = UNSET


class ThinkingConfig(msgspec.Struct, rename="camel", omit_defaults=True):
    include_thoughts: bool | UnsetType = UNSET
    thinking_budget: int | UnsetType = UNSET


class GenerationConfig(msgspec.Struct, rename="camel", omit_defaults=True):
    stop_sequences: list[str] | UnsetType = UNSET
    response_mime_type: str | UnsetType = UNSET
    response_schema: dict[str, Any] | UnsetType = UNSET
    candidate_count: int | UnsetType = UNSET
    max_output_tokens: int | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    top_k: int | UnsetType = UNSET
    seed: int | UnsetType = UNSET
    presence_penalty: float | UnsetType = UNSET
    frequency_penalty: float | UnsetType = UNSET
    thinking_config: ThinkingConfig | UnsetType = UNSET


class FunctionDeclaration(msgspec.Struct, rename="camel", omit_defaults=True):
    name: str
    description: str | UnsetType = UNSET
    parameters: dict[str, Any] | UnsetType = UNSET


class Tool(msgspec.Struct, rename="camel", omit_defaults=True):
    """One member of the ``Tool`` union (https://ai.google.dev/api/caching#Tool): functions, or one
    of Google's built-in tools, each configured by an object (empty: the defaults)."""

    function_declarations: list[FunctionDeclaration] | UnsetType = UNSET
    google_search: dict[str, Any] | UnsetType = UNSET
    google_search_retrieval: dict[str, Any] | UnsetType = UNSET
    code_execution: dict[str, Any] | UnsetType = UNSET
    url_context: dict[str, Any] | UnsetType = UNSET
    google_maps: dict[str, Any] | UnsetType = UNSET


class FunctionCallingConfig(msgspec.Struct, rename="camel", omit_defaults=True):
    mode: str
    allowed_function_names: list[str] | UnsetType = UNSET


class ToolConfig(msgspec.Struct, rename="camel"):
    function_calling_config: FunctionCallingConfig


class GenerateContentRequest(msgspec.Struct, rename="camel", omit_defaults=True):
    contents: list[Content]
    system_instruction: Content | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET
    tool_config: ToolConfig | UnsetType = UNSET
    generation_config: GenerationConfig | UnsetType = UNSET


class EmbedContentRequest(msgspec.Struct, rename="camel", omit_defaults=True):
    model: str
    content: Content
    task_type: str | UnsetType = UNSET
    output_dimensionality: int | UnsetType = UNSET


class BatchEmbedContentsRequest(msgspec.Struct):
    requests: list[EmbedContentRequest]


class PredictInstance(msgspec.Struct, omit_defaults=True):
    """Vertex text-embedding ``:predict`` instance (snake_case on the wire:
    https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/text-embeddings-api)."""

    content: str
    task_type: str | UnsetType = UNSET


class PredictParameters(msgspec.Struct, rename="camel", omit_defaults=True):
    output_dimensionality: int | UnsetType = UNSET


class PredictRequest(msgspec.Struct, omit_defaults=True):
    instances: list[PredictInstance]
    parameters: PredictParameters | UnsetType = UNSET


# ---- response side (views) ---------------------------------------------------------------------


_EMPTY_ARGS = msgspec.Raw(b"{}")


class FunctionCallView(msgspec.Struct, rename="camel"):
    name: str = ""
    #: Kept as raw JSON: it becomes OpenAI's ``arguments`` string without a decode/encode round.
    args: msgspec.Raw = _EMPTY_ARGS
    #: Set by newer models/Vertex; used as the OpenAI tool-call id when present.
    id: str | None = None


class PartView(msgspec.Struct, rename="camel"):
    text: str | None = None
    thought: bool = False
    thought_signature: str | None = None
    function_call: FunctionCallView | None = None


class ContentView(msgspec.Struct, rename="camel"):
    parts: list[PartView] = []


class Candidate(msgspec.Struct, rename="camel"):
    content: ContentView | None = None
    finish_reason: str | None = None
    index: int | None = None


class PromptFeedback(msgspec.Struct, rename="camel"):
    block_reason: str | None = None


class UsageMetadata(msgspec.Struct, rename="camel"):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    total_token_count: int = 0
    cached_content_token_count: int = 0
    thoughts_token_count: int = 0


class GoogleError(msgspec.Struct):
    """``google.rpc.Status`` as JSON: https://cloud.google.com/apis/design/errors#http_mapping."""

    message: str = ""
    code: int | None = None
    status: str | None = None


class GenerateContentResponse(msgspec.Struct, rename="camel"):
    """A whole answer, or one event of ``streamGenerateContent`` (an ``error`` when it failed)."""

    candidates: list[Candidate] = []
    prompt_feedback: PromptFeedback | None = None
    usage_metadata: UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    error: GoogleError | None = None


class ErrorEnvelope(msgspec.Struct):
    error: GoogleError


class ContentEmbedding(msgspec.Struct):
    values: list[float] = []


class BatchEmbedContentsResponse(msgspec.Struct):
    embeddings: list[ContentEmbedding] = []


class EmbeddingStatistics(msgspec.Struct):
    token_count: int = 0


class PredictedEmbedding(msgspec.Struct):
    values: list[float] = []
    statistics: EmbeddingStatistics | None = None


class Prediction(msgspec.Struct):
    embeddings: PredictedEmbedding


class PredictResponse(msgspec.Struct):
    predictions: list[Prediction] = []
