"""Usage as responses report it: from an OpenAI JSON body, or from a stream's usage chunk.

Streams report usage only in a last chunk (``choices: []``) and only when the request asked
for it (``stream_options.include_usage``, OpenAI API reference, "Create chat completion").
When a token limit applies and the client did not ask, the gateway asks upstream itself
(:func:`with_stream_usage`) and :class:`UsageTap` removes that extra chunk before the client
sees it, so the client receives the stream it asked for.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate.schema.openai import Usage


class UsageView(msgspec.Struct):
    """What the stages read of an OpenAI answer: the model it names and its usage (the content
    is skipped by the decoder)."""

    model: str | None = None
    usage: Usage | None = None


class ChunkView(msgspec.Struct):
    model: str | None = None
    choices: list[msgspec.Raw] = []
    usage: Usage | None = None


class ImageTokens(msgspec.Struct):
    """GPT image models' usage (``input_tokens`` / ``output_tokens``, openai SDK ``ImagesResponse``)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0


class ImagesView(msgspec.Struct):
    #: Counted, not decoded: each item holds a whole image.
    data: list[msgspec.Raw] = []
    usage: ImageTokens | None = None


class ImageParams(msgspec.Struct):
    """What an image's price depends on, from the request."""

    model: str | None = None
    quality: str | None = None
    size: str | None = None


usage_decoder = msgspec.json.Decoder(UsageView)
_images_decoder = msgspec.json.Decoder(ImagesView)
_image_params_decoder = msgspec.json.Decoder(ImageParams)
_chunk_decoder = msgspec.json.Decoder(ChunkView)
_USAGE_MARK = b'"usage":{'
_DATA = b"data: "
_END = b"\n\n"
INCLUDE_USAGE: dict[str, Any] = {"stream_options": {"include_usage": True}}


def body_usage(body: bytes) -> UsageView:
    """Usage of a JSON answer (zero when the body has none or is not an OpenAI object)."""
    try:
        return usage_decoder.decode(body)
    except msgspec.DecodeError:
        return UsageView()


def image_usage(body: bytes) -> tuple[int, Usage]:
    """The number of images an images answer holds, and its tokens (zero where not counted)."""
    try:
        view = _images_decoder.decode(body)
    except msgspec.DecodeError:
        return 0, Usage()
    tokens = view.usage
    if tokens is None:
        return len(view.data), Usage()
    return len(view.data), Usage(tokens.input_tokens, tokens.output_tokens, tokens.total_tokens)


def image_params(body: bytes, overrides: dict[str, Any] | None) -> ImageParams:
    """Model, quality and size of an images request (a config's ``override_params`` winning)."""
    try:
        params = _image_params_decoder.decode(body)
    except msgspec.DecodeError:
        params = ImageParams()
    if overrides:
        for name in ("model", "quality", "size"):
            value = overrides.get(name)
            if isinstance(value, str):
                setattr(params, name, value)
    return params


def with_stream_usage(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``override_params`` that make the upstream report a stream's usage."""
    return {**(overrides or {}), **INCLUDE_USAGE}


class UsageTap:
    """Watches OpenAI SSE on its way to the client for the usage chunk.

    ``strip``: the client did not ask for usage, so the usage-only chunk is removed. Events are
    looked at only when they contain ``"usage":{``, so content chunks pass without a decode.
    """

    __slots__ = ("model", "pending", "strip", "usage")

    def __init__(self, strip: bool) -> None:
        self.strip = strip
        self.usage: Usage | None = None
        self.model: str | None = None
        self.pending = b""

    def feed(self, out: bytes) -> bytes:
        if not out or (not self.pending and out.find(_USAGE_MARK) < 0 and out.endswith(_END)):
            return out
        data = self.pending + out
        # Mappers write whole events, but an unfinished tail is kept until it completes, so a
        # usage event is never let through in halves.
        end = data.rfind(_END)
        if end < 0:
            self.pending = data
            return b""
        cut = end + 2
        self.pending = data[cut:]
        events = data[:cut].split(b"\n\n")
        kept: list[bytes] = []
        for event in events[:-1]:
            if event.find(_USAGE_MARK) >= 0 and event.startswith(_DATA):
                try:
                    chunk = _chunk_decoder.decode(event[len(_DATA) :])
                except msgspec.DecodeError:
                    chunk = ChunkView()
                if chunk.usage is not None:
                    self.usage = chunk.usage
                    self.model = chunk.model
                    if self.strip and not chunk.choices:
                        continue
            kept.append(event + b"\n\n")
        return b"".join(kept)

    def flush(self) -> bytes:
        """An unfinished last event, passed on as it is when the stream ends."""
        tail, self.pending = self.pending, b""
        return tail


# ---- answers relayed as they come (the passthrough, native ingress formats) ---------------------
#
# Whatever API answered, its usage is in one of three shapes (each API's reference, "usage"):
# OpenAI's chat, completions and embeddings (``prompt_tokens`` / ``completion_tokens``), OpenAI's
# Responses and audio (``input_tokens`` / ``output_tokens``, also under ``response`` in the
# ``response.completed`` event) and Anthropic's Messages (``input_tokens`` / ``output_tokens`` with
# the cache's own counts, under ``message`` in ``message_start``, then ``message_delta``'s running
# output count).


class _AnyUsage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


class _Holder(msgspec.Struct):
    model: str | None = None
    usage: _AnyUsage | None = None


class _Answer(msgspec.Struct):
    model: str | None = None
    usage: _AnyUsage | None = None
    response: _Holder | None = None
    message: _Holder | None = None


_answer_decoder = msgspec.json.Decoder(_Answer)
#: Relayed JSON bodies longer than this are passed on without a look for their usage.
MAX_USAGE_BODY = 4 * 1024 * 1024


class RelayedUsage:
    """Usage of an answer relayed as it comes, in any of the shapes above, JSON or SSE.

    It never changes what it is fed. An SSE event is decoded only when it holds ``"usage":``;
    a JSON body is kept (up to ``MAX_USAGE_BODY``) and decoded once at its end.
    """

    __slots__ = ("input", "model", "output", "parts", "pending", "seen", "size", "sse")

    def __init__(self, content_type: str) -> None:
        self.sse = content_type == "text/event-stream"
        self.pending = b""
        self.parts: list[bytes] | None = []
        self.size = 0
        self.model: str | None = None
        self.input = 0
        self.output = 0
        self.seen = False

    def feed(self, out: bytes) -> bytes:
        if self.sse:
            data = self.pending + out
            end = data.rfind(_END)
            if end < 0:
                self.pending = data
                return out
            self.pending = data[end + 2 :]
            if data.find(_USAGE_FIELD) >= 0:
                for event in data[: end + 2].split(_END):
                    if event.find(_USAGE_FIELD) >= 0:
                        for line in event.split(b"\n"):
                            if line.startswith(_DATA):
                                self._take(line[len(_DATA) :])
        elif self.parts is not None:
            self.size += len(out)
            if self.size > MAX_USAGE_BODY:
                self.parts = None
            else:
                self.parts.append(out)
        return out

    def _take(self, data: bytes) -> None:
        try:
            answer = _answer_decoder.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return
        holder = answer.response or answer.message
        usage, model = answer.usage, answer.model
        if holder is not None:
            usage, model = holder.usage or usage, holder.model or model
        if usage is None:
            return
        self.seen = True
        self.model = model or self.model
        # Anthropic counts cached input apart from ``input_tokens``; its stream reports the input
        # once (``message_start``) and the output as it grows (``message_delta``).
        prompt = usage.prompt_tokens + usage.input_tokens
        prompt += usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        self.input = max(self.input, prompt)
        self.output = max(self.output, usage.completion_tokens + usage.output_tokens)

    def usage(self) -> Usage | None:
        """The answer's usage, once it has ended (None when it reported none)."""
        if not self.sse and self.parts:
            self._take(b"".join(self.parts))
            self.parts = None
        if not self.seen:
            return None
        return Usage(self.input, self.output, self.input + self.output)


_USAGE_FIELD = b'"usage":'
