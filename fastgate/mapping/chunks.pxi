# OpenAI chat.completion.chunk writer shared by every mapped provider's stream mapper.
#
# Chunks follow the openai SDK's ChatCompletionChunk type: every chunk carries id, created,
# model and object; the first delta carries the role; tool-call deltas are keyed by index;
# usage comes in one final chunk with empty choices, and only when the client asked for it
# (stream_options.include_usage), as OpenAI does.

import time as _time

from libc.time cimport time as _c_time

from fastgate.schema.openai import (
    ChatCompletionChunk as _Chunk,
    ChunkChoice as _ChunkChoice,
    Delta as _Delta,
    FunctionDelta as _FunctionDelta,
    ToolCallDelta as _ToolCallDelta,
    Usage as _Usage,
)
from fastgate.errors import error_body as _error_body

import msgspec as _msgspec

cdef object _chunk_encode_json = _msgspec.json.Encoder().encode
cdef object _CHUNK_UNSET = _msgspec.UNSET
cdef bytes _CHUNK_DATA = b"data: "
cdef bytes _CHUNK_SSE_DONE = b"data: [DONE]\n\n"
cdef bytes _CHUNK_CONTENT_FIELD = b'"content":""'
cdef bytes _CHUNK_ROLE_FIELDS = b'"role":"assistant","content":""'
cdef bytes _CHUNK_NO_FINISH = b'},"finish_reason":null'
cdef bytes _CHUNK_FINISH_FIELD = b'},"finish_reason":'
# The content frame's template (ChunkWriter._write_frame): the bytes msgspec writes for
# the chunk Struct, field for field, so a template frame and an encoded chunk never differ.
cdef bytes _CHUNK_ID = b'data: {"id":'
cdef bytes _CHUNK_CREATED = b',"created":'
cdef bytes _CHUNK_CHOICE = (b',"choices":[{"index":0,"delta":{"content":""},"finish_reason":null,'
                            b'"logprobs":null}]')
cdef Py_ssize_t _CHUNK_CHOICE_CONTENT_AT = _CHUNK_CHOICE.index(_CHUNK_CONTENT_FIELD)
cdef Py_ssize_t _CHUNK_CONTENT_TEXT_AT = len(_CHUNK_CONTENT_FIELD) - 2  # where the empty text's quotes are
cdef bytes _CHUNK_NO_USAGE = b',"usage":null'
cdef bytes _CHUNK_OBJECT = b',"object":"chat.completion.chunk"'


cdef inline long _chunk_now() noexcept:
    """Unix time in seconds (a chunk's ``created``), from the C library: no Python call."""
    return _c_time(NULL)


cdef inline bytes _chunk_frame(bytes payload):
    return _CHUNK_DATA + payload + _SSE_BLANK


cdef inline int _chunk_put_spliced(_Out* out, bytes frame, Py_ssize_t cut, const char* mid,
                                   Py_ssize_t mid_n, Py_ssize_t resume) except -1:
    """``frame[:cut] + mid + frame[resume:]`` written into ``out`` (one capacity check)."""
    cdef Py_ssize_t rest = PyBytes_GET_SIZE(frame) - resume
    cdef char* q = _out_take(out, cut + mid_n + rest)
    memcpy(q, PyBytes_AS_STRING(frame), cut)
    memcpy(q + cut, mid, mid_n)
    memcpy(q + cut + mid_n, PyBytes_AS_STRING(frame) + resume, rest)
    return 0


@cython.final
cdef class ChunkWriter:
    """Builds the SSE frames of one OpenAI chat stream."""

    cdef readonly str id
    cdef readonly str model
    cdef readonly int created
    cdef readonly object provider
    cdef readonly bint include_usage
    cdef bint _role_sent
    # The frame of a content delta with empty text, written once per stream (_write_frame);
    # every content, role and finish chunk is it with ``"content":""`` (at _cut) replaced.
    cdef bytes _frame
    cdef Py_ssize_t _cut

    def __init__(self, str id, str model, object provider=None, bint include_usage=False):
        self.id = id
        self.model = model
        self.created = _chunk_now()
        self.provider = provider if provider is not None else _CHUNK_UNSET
        self.include_usage = include_usage
        self._role_sent = False
        self._frame = None
        self._cut = 0

    cdef bytes _chunk(self, object delta, object finish_reason):
        chunk = _Chunk(self.id, self.created, self.model, [_ChunkChoice(0, delta, finish_reason)],
                       provider=self.provider)
        if self.include_usage:
            chunk.usage = None
        return _chunk_frame(_chunk_encode_json(chunk))

    cdef object _delta(self, dict fields):
        if not self._role_sent:
            self._role_sent = True
            fields["role"] = "assistant"
        return _Delta(**fields)

    cdef bytes _spliced(self, Py_ssize_t cut, const char* mid, Py_ssize_t mid_n, Py_ssize_t resume):
        """``_chunk_put_spliced`` as bytes, written in place (one allocation; the frame written)."""
        cdef Py_ssize_t size = cut + mid_n + PyBytes_GET_SIZE(self._frame) - resume
        cdef bytes spliced = PyBytes_FromStringAndSize(NULL, size)
        cdef _Out out
        out.data, out.size, out.cap, out.heap = PyBytes_AS_STRING(spliced), 0, size, False
        _chunk_put_spliced(&out, self._frame, cut, mid, mid_n, resume)
        return spliced

    def role(self):
        """The opening chunk: ``{"role": "assistant", "content": ""}``."""
        return self._role()

    cdef bytes _role(self):
        cdef char stack[1024]
        cdef _Out out
        out.data, out.size, out.cap, out.heap = stack, 0, 1024, False
        try:
            self._put_role(&out)
            return PyBytes_FromStringAndSize(out.data, out.size)
        finally:
            if out.heap:
                PyMem_Free(out.data)

    cdef int _put_role(self, _Out* out) except -1:
        """``_role`` written into ``out``."""
        if self._frame is None:
            self._write_frame()
        if self._role_sent:
            return _out_put_bytes(out, self._frame)
        self._role_sent = True
        return _chunk_put_spliced(out, self._frame, self._cut, _CHUNK_ROLE_FIELDS,
                                  len(_CHUNK_ROLE_FIELDS), self._cut + len(_CHUNK_CONTENT_FIELD))

    cdef bytes _content(self, str text):
        """A content delta: the stream's fixed frame around the escaped text. Every field but
        the text is the same for each delta after the first chunk, so the frame is written
        once and each delta costs one string encode."""
        if not self._role_sent:
            return self._chunk(self._delta({"content": text}), None)
        cdef bytes encoded = _chunk_encode_json(text)
        return self._content_json(PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded))

    cdef void _write_frame(self):
        """The frame every content delta, the role chunk and the finish chunk are cut from:
        they differ only inside ``"delta":{…}`` and in ``finish_reason`` (written right after
        the delta). Written from the template, into one buffer."""
        cdef char stack[1024]
        cdef _Out out
        out.data, out.size, out.cap, out.heap = stack, 0, 1024, False
        try:
            _out_put_bytes(&out, _CHUNK_ID)
            _answer_put_json_string(&out, self.id)
            _out_put_bytes(&out, _CHUNK_CREATED)
            _out_put_decimal(&out, self.created)
            _out_put_bytes(&out, _ANSWER_MODEL)
            _answer_put_json_string(&out, self.model)
            self._cut = out.size + _CHUNK_CHOICE_CONTENT_AT
            _out_put_bytes(&out, _CHUNK_CHOICE)
            if self.include_usage:
                _out_put_bytes(&out, _CHUNK_NO_USAGE)
            _out_put_bytes(&out, _CHUNK_OBJECT)
            if self.provider is not _CHUNK_UNSET:
                _out_put_bytes(&out, _ANSWER_PROVIDER)
                _answer_put_json_string(&out, self.provider)
            _out_put(&out, "}\n\n", 3)
            self._frame = PyBytes_FromStringAndSize(out.data, out.size)
        finally:
            if out.heap:
                PyMem_Free(out.data)

    cdef bytes _content_json(self, const char* text, Py_ssize_t n):
        """A content delta whose text is already JSON, a quoted string as ``_js_json_string_end``
        accepts it, copied into the frame. None before the role chunk (the first delta carries
        the role)."""
        if not self._role_sent:
            return None
        if self._frame is None:
            self._write_frame()
        return self._spliced(self._cut + _CHUNK_CONTENT_TEXT_AT, text, n, self._cut + len(_CHUNK_CONTENT_FIELD))

    cdef bint _put_content_json(self, _Out* out, const char* text, Py_ssize_t n) except -1:
        """``_content_json`` written into ``out``; False (and nothing written) before the role
        chunk."""
        if not self._role_sent:
            return False
        if self._frame is None:
            self._write_frame()
        _chunk_put_spliced(out, self._frame, self._cut + _CHUNK_CONTENT_TEXT_AT, text, n,
                           self._cut + len(_CHUNK_CONTENT_FIELD))
        return True

    def content(self, str text):
        return self._content(text)

    def tool_call_start(self, int index, str call_id, str name, str arguments=""):
        call = _ToolCallDelta(index, id=call_id, type="function",
                              function=_FunctionDelta(name=name, arguments=arguments))
        return self._chunk(self._delta({"tool_calls": [call]}), None)

    def tool_call_arguments(self, int index, str arguments):
        call = _ToolCallDelta(index, function=_FunctionDelta(arguments=arguments))
        return self._chunk(self._delta({"tool_calls": [call]}), None)

    def extra(self, **fields):
        """A delta with non-OpenAI fields (``content_blocks``), for non-strict mode."""
        return self._chunk(self._delta(fields), None)

    def finish(self, str finish_reason, object usage=None):
        """The finish chunk, then the usage chunk when asked for, then ``[DONE]``."""
        return self._finish(finish_reason, usage)

    cdef bytes _finish(self, str finish_reason, object usage):
        cdef char stack[1024]
        cdef _Out out
        out.data, out.size, out.cap, out.heap = stack, 0, 1024, False
        try:
            self._put_finish(&out, finish_reason, usage)
            return PyBytes_FromStringAndSize(out.data, out.size)
        finally:
            if out.heap:
                PyMem_Free(out.data)

    cdef int _put_finish(self, _Out* out, str finish_reason, object usage) except -1:
        """``_finish`` written into ``out``: after the first chunk, the frame with its empty
        delta and the reason in place of ``"content":""`` and ``null``."""
        cdef const char* frame
        cdef Py_ssize_t resume
        if self._role_sent and self._frame is not None:
            frame = PyBytes_AS_STRING(self._frame)
            resume = self._cut + len(_CHUNK_CONTENT_FIELD) + len(_CHUNK_NO_FINISH)
            _out_put(out, frame, self._cut)
            _out_put_bytes(out, _CHUNK_FINISH_FIELD)
            _answer_put_json_string(out, finish_reason)
            _out_put(out, frame + resume, PyBytes_GET_SIZE(self._frame) - resume)
        else:
            _out_put_bytes(out, self._chunk(self._delta({}), finish_reason))
        if self.include_usage and usage is not None:
            chunk = _Chunk(self.id, self.created, self.model, [], usage=usage, provider=self.provider)
            _out_put_bytes(out, _chunk_frame(_chunk_encode_json(chunk)))
        return _out_put_bytes(out, _CHUNK_SSE_DONE)

    def error(self, str message, str type="api_error"):
        """A mid-stream failure: an OpenAI error event, then ``[DONE]``."""
        provider = None if self.provider is _CHUNK_UNSET else self.provider
        return _chunk_frame(_error_body(502, message, type=type, provider=provider)) + _CHUNK_SSE_DONE
