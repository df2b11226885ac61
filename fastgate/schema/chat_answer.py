"""Views of an OpenAI chat answer (``chat.completion`` and ``chat.completion.chunk``) for the
ingress mappings, which turn the chat pivot's answer into another API's.

They read what every OpenAI-compatible provider writes and what fastgate's own mappings add:
``reasoning_content`` (DeepSeek, vLLM) and ``reasoning`` (OpenRouter, Ollama, Groq) for thinking,
vLLM's ``stop_reason`` (the stop string that matched), Portkey's ``content_blocks`` (signed
thinking from Anthropic, Bedrock and Gemini in non-strict mode) and the cache figures fastgate
reports in ``usage``. Texts a mapping copies into its own JSON as they are (a delta's text, a
tool call's argument fragment) stay ``msgspec.Raw``: the JSON they came as, never decoded.
Nullable everywhere: providers write ``null`` where OpenAI leaves a field out.
"""

from __future__ import annotations

from typing import Any

import msgspec

#: What a missing text field reads as (``msgspec.Raw`` takes no ``None``).
NULL = msgspec.Raw(b"null")


class PromptDetailsView(msgspec.Struct, gc=False):
    cached_tokens: int | None = None


class CompletionDetailsView(msgspec.Struct, gc=False):
    reasoning_tokens: int | None = None


class UsageView(msgspec.Struct, gc=False):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    prompt_tokens_details: PromptDetailsView | None = None
    completion_tokens_details: CompletionDetailsView | None = None
    #: Anthropic's and Bedrock's cache figures, as fastgate and Portkey report them.
    cache_read_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None


class ErrorView(msgspec.Struct, gc=False):
    message: str | None = None
    type: str | None = None


class FunctionView(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | None = None


class ToolCallView(msgspec.Struct, gc=False):
    id: str | None = None
    function: FunctionView | None = None


class AnswerMessageView(msgspec.Struct, gc=False):
    #: A string; a list of text parts from a few providers.
    content: str | list[Any] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[ToolCallView] | None = None
    content_blocks: list[dict[str, Any]] | None = None


class AnswerChoiceView(msgspec.Struct, gc=False):
    message: AnswerMessageView | None = None
    finish_reason: str | None = None
    #: vLLM: the stop string (or token id) that ended the answer.
    stop_reason: str | int | None = None


class AnswerView(msgspec.Struct, gc=False):
    """A ``chat.completion``: only its first choice is read (the ingress APIs have one)."""

    id: str | None = None
    model: str | None = None
    choices: list[AnswerChoiceView] | None = None
    usage: UsageView | None = None


class FunctionDeltaView(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: msgspec.Raw = NULL


class ToolCallDeltaView(msgspec.Struct, gc=False):
    index: int = 0
    id: str | None = None
    function: FunctionDeltaView | None = None


class DeltaView(msgspec.Struct, gc=False):
    content: msgspec.Raw = NULL
    refusal: msgspec.Raw = NULL
    reasoning_content: msgspec.Raw = NULL
    reasoning: msgspec.Raw = NULL
    tool_calls: list[ToolCallDeltaView] | None = None
    content_blocks: list[dict[str, Any]] | None = None


class ChunkChoiceView(msgspec.Struct, gc=False):
    delta: DeltaView | None = None
    finish_reason: str | None = None
    stop_reason: str | int | None = None


class ChunkView(msgspec.Struct, gc=False):
    """A ``chat.completion.chunk``, or the ``{"error": ...}`` event a failed stream ends with."""

    id: str | None = None
    model: str | None = None
    choices: list[ChunkChoiceView] | None = None
    usage: UsageView | None = None
    error: ErrorView | None = None


class ErrorBodyView(msgspec.Struct, gc=False):
    """An OpenAI error body; ``error`` may be a bare string from some providers."""

    error: ErrorView | str | None = None
