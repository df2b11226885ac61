# Legacy /v1/completions over a chat-only, OpenAI-shaped API (Mistral has no completions endpoint):
# the prompt goes as one user turn and the chat answer comes back as a ``text_completion``
# (https://platform.openai.com/docs/api-reference/completions/object), streamed chunk by chunk.

from fastgate.schema.openai import (
    ChatAnswerView as _CxAnswer,
    TextChoice as _CxChoice,
    TextCompletion as _CxText,
)
from fastgate.errors import GatewayError as _CxGatewayError

cdef object _cx_params = _msgspec.json.Decoder(dict)
cdef object _cx_answer = _msgspec.json.Decoder(_CxAnswer)
# Completions-only fields: ``logprobs`` is a count there but a flag in chat, the rest have no chat twin.
cdef tuple _CX_DROPPED = ("prompt", "suffix", "echo", "best_of", "logprobs")


cdef inline object _cx_bad(str message):
    return _CxGatewayError(400, message, param="prompt")


def completion_as_chat_request(bytes body):
    """A completions body as a chat body: one user turn, every other parameter kept."""
    try:
        params = _cx_params.decode(body)
    except _msgspec.DecodeError as exc:
        raise _CxGatewayError(400, f"Request body is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise _CxGatewayError(400, "Invalid request body: expected a JSON object")
    prompt = params.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _cx_bad("prompt must be one string for a chat-only provider")
    for name in _CX_DROPPED:
        params.pop(name, None)
    params["messages"] = [{"role": "user", "content": prompt}]
    return _chunk_encode_json(params)


cdef inline str _cx_finish(object reason, dict renames):
    if reason is None:
        return None
    return renames.get(reason, reason)


def chat_as_completion_response(bytes body, object provider=None, dict renames=None):
    """A chat completion as a ``text_completion`` (finish reasons renamed by ``renames``)."""
    cdef dict names = renames or {}
    answer = _cx_answer.decode(body)
    choices = [
        _CxChoice(c.index, (c.message.content if c.message is not None else None) or "",
                  _cx_finish(c.finish_reason, names) or "stop")
        for c in answer.choices
    ]
    usage = answer.usage if answer.usage is not None else _CHUNK_UNSET
    return _chunk_encode_json(_CxText(answer.id, answer.created, answer.model, choices, usage=usage,
                                provider=provider if provider is not None else _CHUNK_UNSET))


cdef class ChatAsCompletionStream:
    """Chat chunks in, ``text_completion`` chunks out, event by event; error events pass as they are."""

    cdef SSEDecoder _sse
    cdef object _provider
    cdef dict _renames
    cdef readonly bint done

    def __init__(self, object provider=None, dict renames=None):
        self._sse = SSEDecoder()
        self._provider = provider if provider is not None else _CHUNK_UNSET
        self._renames = renames or {}
        self.done = False

    cdef bytes _event(self, bytes data):
        if data == _SSE_DONE:
            self.done = True
            return _CHUNK_SSE_DONE
        if data.lstrip()[:8] == b'{"error"':
            return _chunk_frame(data)
        chunk = _cx_answer.decode(data)
        choices = [
            _CxChoice(c.index, (c.delta.content if c.delta is not None else None) or "",
                      _cx_finish(c.finish_reason, self._renames))
            for c in chunk.choices
        ]
        usage = chunk.usage if chunk.usage is not None else _CHUNK_UNSET
        return _chunk_frame(_chunk_encode_json(_CxText(chunk.id, chunk.created, chunk.model, choices, usage=usage,
                                           provider=self._provider)))

    def feed(self, bytes chunk):
        if self.done:
            return _SSE_EMPTY
        cdef list out = []
        for _name, data in self._sse.feed(chunk):
            try:
                out.append(self._event(data))
            except _msgspec.DecodeError as exc:
                self.done = True
                out.append(_chunk_frame(_error_body(502, f"malformed stream event: {exc}", type="api_error",
                                              provider=None if self._provider is _CHUNK_UNSET else self._provider))
                           + _CHUNK_SSE_DONE)
            if self.done:
                break
        return _SSE_EMPTY.join(out)

    def finish(self):
        if self.done:
            return _SSE_EMPTY
        self.done = True
        return _CHUNK_SSE_DONE
