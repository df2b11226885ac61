"""Anthropic's Messages API as an ingress format: what a Messages client sends, and what it is answered.

The provider side (what fastgate sends to Anthropic) is ``fastgate.schema.anthropic``; this is
the other way round. Requests are decoded into views that keep every field the chat pivot can
carry and skip the rest (``context_management``, ``container``, ``service_tier``, ...), so a
field Anthropic adds tomorrow does not break today's clients. Content blocks are one flat view
whatever their ``type``: Claude Code sends back blocks of types a mapping need not know
(``server_tool_use``, ``web_search_tool_result``), and a tagged union would refuse them.

Field names follow Anthropic's API reference (https://docs.anthropic.com/en/api/messages,
.../messages-count-tokens) and the ``anthropic`` SDK's types (``message_create_params.py``,
``message_param.py``, ``content_block_param.py``, ``message.py``, ``usage.py``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate.schema.anthropic import TextBlock, ToolUseBlock

# ---- request (what a Messages client sends) ----------------------------------------------------


class SourceIn(msgspec.Struct, gc=False):
    """An image's or a document's ``source``: ``base64``, ``url``, ``text``, ``content`` or ``file``."""

    type: str
    media_type: str | None = None
    #: base64 data, or a ``text`` source's text.
    data: str | None = None
    url: str | None = None
    file_id: str | None = None
    #: A ``content`` source's text or blocks (``ContentBlockSourceParam``).
    content: str | list[BlockIn] | None = None


class BlockIn(msgspec.Struct, gc=False):
    """One content block, whatever its ``type``; the fields of the types the pivot carries."""

    type: str
    text: str | None = None
    cache_control: dict[str, Any] | None = None
    source: SourceIn | None = None
    title: str | None = None
    #: ``tool_use``: the call; its ``input`` stays the client's JSON text.
    id: str | None = None
    name: str | None = None
    input: msgspec.Raw = msgspec.Raw(b"{}")
    #: ``tool_result``: the answer to a call (``content``: text or blocks) and whether it failed.
    tool_use_id: str | None = None
    content: str | list[BlockIn] | None = None
    is_error: bool = False
    #: ``thinking`` / ``redacted_thinking`` blocks of earlier assistant turns.
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None


class MessageIn(msgspec.Struct, gc=False):
    #: ``system`` turns inside ``messages`` are current (SystemMessageParam).
    role: str
    content: str | list[BlockIn]


class ToolIn(msgspec.Struct, gc=False):
    """A client tool (``type`` absent or ``custom``) or a server tool Anthropic runs itself
    (``web_search_20250305``, ``bash_20250124``, ...)."""

    name: str
    type: str | None = None
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoiceIn(msgspec.Struct, gc=False):
    type: str
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class MetadataIn(msgspec.Struct, gc=False):
    user_id: str | None = None


class OutputFormatIn(msgspec.Struct, gc=False):
    type: str
    schema: dict[str, Any] | None = None


class OutputConfigIn(msgspec.Struct, gc=False):
    #: ``low`` | ``medium`` | ``high`` | ``xhigh`` | ``max``.
    effort: str | None = None
    format: OutputFormatIn | None = None


class MessagesRequestIn(msgspec.Struct, gc=False):
    """``POST /v1/messages`` and ``/v1/messages/count_tokens`` bodies (the latter has no
    ``max_tokens``, so it is optional here and required by the create mapping)."""

    messages: list[MessageIn]
    model: str | None = None
    max_tokens: int | None = None
    system: str | list[BlockIn] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    metadata: MetadataIn | None = None
    tools: list[ToolIn] | None = None
    tool_choice: ToolChoiceIn | None = None
    #: ``{"type": "enabled", "budget_tokens": N}`` | ``{"type": "adaptive"}`` | ``{"type": "disabled"}``.
    thinking: dict[str, Any] | None = None
    output_config: OutputConfigIn | None = None
    stream: bool = False


# ---- answer (what a Messages client is answered) -----------------------------------------------


class ThinkingBlock(msgspec.Struct, tag="thinking", tag_field="type"):
    thinking: str
    #: Empty from providers other than Anthropic: they sign nothing.
    signature: str = ""


class RedactedThinkingBlock(msgspec.Struct, tag="redacted_thinking", tag_field="type"):
    data: str


AnswerBlock = ThinkingBlock | RedactedThinkingBlock | TextBlock | ToolUseBlock


class UsageOut(msgspec.Struct):
    """``Usage``: ``input_tokens`` excludes the cache figures (total input is the sum of the three)."""

    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class MessageOut(msgspec.Struct, tag="message", tag_field="type"):
    id: str
    model: str
    content: list[AnswerBlock]
    stop_reason: str | None
    stop_sequence: str | None
    usage: UsageOut
    role: str = "assistant"


class ErrorDetailOut(msgspec.Struct):
    type: str
    message: str


class ErrorOut(msgspec.Struct, tag="error", tag_field="type"):
    """``{"type": "error", "error": {"type", "message"}}``: error bodies and stream ``error`` events."""

    error: ErrorDetailOut


class TokenCount(msgspec.Struct):
    """``POST /v1/messages/count_tokens``'s answer (MessageTokensCount)."""

    input_tokens: int


#: https://docs.anthropic.com/en/api/errors: HTTP status → error type. Any other 5xx is an
#: ``api_error``, any other 4xx an ``invalid_request_error``. Anthropic answers no 408; the
#: gateway does (a config's ``request_timeout``), and it is a timeout, not a bad request.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    """Anthropic's error type for an HTTP status."""
    return ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
