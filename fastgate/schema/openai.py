"""OpenAI wire formats as msgspec Structs: what clients send and what fastgate answers.

Two ways in. ``RequestView`` holds only the fields the gateway itself reads: decoding into it
validates the whole document but builds objects for three fields, so the raw body can go to an
OpenAI-compatible upstream byte for byte (unknown parameters survive). ``ChatRequest`` and
friends are the full typed request, decoded once by a provider mapping that must rebuild the
body. Field names follow OpenAI's API reference and the ``openai`` SDK's types.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

# ---- request side ------------------------------------------------------------------------------


class StreamOptions(msgspec.Struct, omit_defaults=True):
    include_usage: bool = False


class RequestView(msgspec.Struct, omit_defaults=True):
    model: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None


class ImageURL(msgspec.Struct, omit_defaults=True):
    url: str
    detail: str | None = None
    #: Portkey extension: MIME type for ``gs://`` / ``https://`` file URIs.
    mime_type: str | None = None


class TextPart(msgspec.Struct, tag="text", tag_field="type", omit_defaults=True):
    text: str
    cache_control: dict[str, Any] | None = None


class ImagePart(msgspec.Struct, tag="image_url", tag_field="type", omit_defaults=True):
    image_url: ImageURL
    cache_control: dict[str, Any] | None = None


class InputAudio(msgspec.Struct):
    data: str
    format: str


class AudioPart(msgspec.Struct, tag="input_audio", tag_field="type"):
    input_audio: InputAudio


class FileRef(msgspec.Struct, omit_defaults=True):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(msgspec.Struct, tag="file", tag_field="type"):
    file: FileRef


ContentPart = TextPart | ImagePart | AudioPart | FilePart


# Always encoded whole: OpenAI's tool calls carry ``type`` and ``arguments`` even at their
# defaults, and the openai SDK reads both.
class FunctionCall(msgspec.Struct):
    name: str
    arguments: str = ""


class ToolCall(msgspec.Struct):
    id: str
    function: FunctionCall
    type: str = "function"
    #: Provider state a client must send back with the call, in Google's OpenAI-compatibility
    #: spelling: ``{"google": {"thought_signature": ...}}`` (Gemini thought signatures).
    extra_content: dict[str, Any] | UnsetType = UNSET


class Message(msgspec.Struct, omit_defaults=True):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    #: Legacy function calling (``role: function`` answers, ``function_call`` on assistant turns).
    function_call: FunctionCall | None = None
    #: Portkey extension (non-strict answers hand these back): an assistant turn's provider blocks,
    #: such as Anthropic's signed ``thinking`` blocks that a tool-use loop must return unchanged.
    content_blocks: list[dict[str, Any]] | None = None


class FunctionDef(msgspec.Struct, omit_defaults=True):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(msgspec.Struct, omit_defaults=True):
    type: str = "function"
    function: FunctionDef | None = None


class FunctionTool(Tool, omit_defaults=False):
    """A function tool as a mapping writes it: ``type`` always sent, as OpenAI requires."""


class NamedFunction(msgspec.Struct):
    name: str


class NamedToolChoice(msgspec.Struct):
    function: NamedFunction
    type: str = "function"


class JSONSchemaFormat(msgspec.Struct, omit_defaults=True):
    name: str = "response"
    schema: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None


class ChatRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v1/chat/completions`` body, the parts a mapping can carry to another provider."""

    messages: list[Message]
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None
    reasoning_effort: str | None = None
    #: Anthropic-style extended thinking, accepted by Portkey for Anthropic, Bedrock and Gemini.
    thinking: dict[str, Any] | None = None


# The two below change a field's type for decoding only (what msgspec reads into it), which is
# why they are subclasses; mypy sees the narrowing as an incompatible override. No cycles can
# form in a decoded request, so the garbage collector need not track them (gc=False).


class RawContentMessage(Message, omit_defaults=True, gc=False):
    """A Message whose ``content`` stays the JSON text it came as (``null`` when absent): a
    mapping that sends a string on as it is copies those bytes rather than decoding the string
    and encoding it again."""

    content: msgspec.Raw = msgspec.Raw(b"null")  # type: ignore[assignment]


class RawContentChatRequest(ChatRequest, omit_defaults=True, gc=False):
    messages: list[RawContentMessage]  # type: ignore[assignment]


class CompletionRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v1/completions`` body."""

    prompt: str | list[str] | None = None
    model: str | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    n: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    user: str | None = None


class EmbeddingRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v1/embeddings`` body."""

    #: A string, or a list of strings or of token arrays.
    input: str | list[Any]
    model: str | None = None
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None
    #: Cohere/Gemini-style task hint, accepted as Portkey does.
    input_type: str | None = None


# ---- response side -----------------------------------------------------------------------------


class PromptTokensDetails(msgspec.Struct):
    cached_tokens: int = 0
    audio_tokens: int | UnsetType = UNSET


class CompletionTokensDetails(msgspec.Struct):
    reasoning_tokens: int | UnsetType = UNSET
    audio_tokens: int | UnsetType = UNSET


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | UnsetType = UNSET
    completion_tokens_details: CompletionTokensDetails | UnsetType = UNSET
    #: Anthropic/Bedrock cache figures as Portkey reports them (only when non-zero).
    cache_read_input_tokens: int | UnsetType = UNSET
    cache_creation_input_tokens: int | UnsetType = UNSET


class AssistantMessage(msgspec.Struct):
    role: str = "assistant"
    content: str | None = None
    tool_calls: list[ToolCall] | UnsetType = UNSET
    refusal: str | None = None
    #: Non-strict mode only (``x-portkey-strict-open-ai-compliance: false``).
    content_blocks: list[dict[str, Any]] | UnsetType = UNSET


class Choice(msgspec.Struct):
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: Any = None


class ChatCompletion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage | UnsetType = UNSET
    object: str = "chat.completion"
    provider: str | UnsetType = UNSET
    system_fingerprint: str | UnsetType = UNSET


class TextChoice(msgspec.Struct):
    index: int
    text: str
    finish_reason: str | None
    logprobs: Any = None


class TextCompletion(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[TextChoice]
    usage: Usage | UnsetType = UNSET
    object: str = "text_completion"
    provider: str | UnsetType = UNSET


class FunctionDelta(msgspec.Struct):
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET


class ToolCallDelta(msgspec.Struct):
    index: int
    id: str | UnsetType = UNSET
    type: str | UnsetType = UNSET
    function: FunctionDelta | UnsetType = UNSET
    extra_content: dict[str, Any] | UnsetType = UNSET


class Delta(msgspec.Struct):
    role: str | UnsetType = UNSET
    content: str | UnsetType | None = UNSET
    tool_calls: list[ToolCallDelta] | UnsetType = UNSET
    refusal: str | UnsetType | None = UNSET
    content_blocks: list[dict[str, Any]] | UnsetType = UNSET


class ChunkChoice(msgspec.Struct):
    index: int
    delta: Delta
    finish_reason: str | None = None
    logprobs: Any = None


class ChatCompletionChunk(msgspec.Struct):
    id: str
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | UnsetType | None = UNSET
    object: str = "chat.completion.chunk"
    provider: str | UnsetType = UNSET


class Embedding(msgspec.Struct):
    index: int
    embedding: list[float] | str
    object: str = "embedding"


class EmbeddingUsage(msgspec.Struct):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingList(msgspec.Struct):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage
    object: str = "list"
    provider: str | UnsetType = UNSET


class ModelCard(msgspec.Struct):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "fastgate"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: str = "list"


class MessageTextView(msgspec.Struct):
    content: str | None = None


class ChoiceTextView(msgspec.Struct):
    index: int = 0
    message: MessageTextView | None = None
    delta: MessageTextView | None = None
    finish_reason: str | None = None


class ChatAnswerView(msgspec.Struct):
    """A chat completion or chunk, as far as turning it into a legacy ``text_completion`` needs."""

    id: str = ""
    created: int = 0
    model: str = ""
    choices: list[ChoiceTextView] = []
    usage: Usage | None = None


view_decoder = msgspec.json.Decoder(RequestView)
chat_decoder = msgspec.json.Decoder(ChatRequest)
completion_decoder = msgspec.json.Decoder(CompletionRequest)
embedding_decoder = msgspec.json.Decoder(EmbeddingRequest)
object_decoder = msgspec.json.Decoder(dict[str, Any])
json_encoder = msgspec.json.Encoder()
