# A non-streamed OpenAI chat.completion (the openai SDK's ChatCompletion) written from one
# template into one buffer (``_Out``): a mapped answer is a handful of values, and copying them
# into the fixed text costs a fraction of building the answer's five Structs and encoding them.

cdef bytes _ANSWER_ID = b'{"id":'
cdef bytes _ANSWER_CREATED = b',"object":"chat.completion","created":'
cdef bytes _ANSWER_MODEL = b',"model":'
cdef bytes _ANSWER_CONTENT = b',"choices":[{"index":0,"message":{"role":"assistant","content":'
cdef bytes _ANSWER_REFUSAL = b',"refusal":null'
cdef bytes _ANSWER_FINISH = b'},"finish_reason":'
cdef bytes _ANSWER_USAGE = b',"logprobs":null}],"usage":'
cdef bytes _ANSWER_PROVIDER = b',"provider":'
cdef bytes _ANSWER_USAGE_PROMPT = b'{"prompt_tokens":'
cdef bytes _ANSWER_USAGE_COMPLETION = b',"completion_tokens":'
cdef bytes _ANSWER_USAGE_TOTAL = b',"total_tokens":'
cdef bytes _ANSWER_USAGE_CACHED = b',"prompt_tokens_details":{"cached_tokens":'
cdef bytes _ANSWER_USAGE_CACHE_READ = b',"cache_read_input_tokens":'
cdef bytes _ANSWER_USAGE_CACHE_CREATION = b',"cache_creation_input_tokens":'


cdef int _answer_put_json_string(_Out* out, object text) except -1:
    """``text`` as a JSON string. ASCII that needs no escape (ids, model names, most answers)
    is copied between quotes; anything else, and None, goes through msgspec."""
    cdef const unsigned char* p
    cdef Py_ssize_t i, n
    if type(text) is str and PyUnicode_IS_ASCII(text):
        p = <const unsigned char*>PyUnicode_DATA(text)
        n = PyUnicode_GET_LENGTH(text)
        for i in range(_js_plain_end(p, 0, n), n):
            if p[i] < 0x20 or p[i] == b'"' or p[i] == b"\\":
                break
        else:
            _out_put(out, '"', 1)
            _out_put(out, <const char*>p, n)
            return _out_put(out, '"', 1)
    return _out_put_bytes(out, _chunk_encode_json(text))


cdef bytes _answer_usage_json(Py_ssize_t prompt, Py_ssize_t completion, Py_ssize_t cache_read,
                       Py_ssize_t cache_creation):
    """OpenAI usage. ``prompt`` counts every input token, cached ones included, as OpenAI's
    does; the provider's cache figures follow, as Portkey reports them, when non-zero."""
    cdef char stack[256]
    cdef _Out out
    out.data, out.size, out.cap, out.heap = stack, 0, 256, False  # five numbers: never outgrown
    _out_put_bytes(&out, _ANSWER_USAGE_PROMPT)
    _out_put_decimal(&out, prompt)
    _out_put_bytes(&out, _ANSWER_USAGE_COMPLETION)
    _out_put_decimal(&out, completion)
    _out_put_bytes(&out, _ANSWER_USAGE_TOTAL)
    _out_put_decimal(&out, prompt + completion)
    _out_put_bytes(&out, _ANSWER_USAGE_CACHED)
    _out_put_decimal(&out, cache_read)
    _out_put(&out, "}", 1)
    if cache_read:
        _out_put_bytes(&out, _ANSWER_USAGE_CACHE_READ)
        _out_put_decimal(&out, cache_read)
    if cache_creation:
        _out_put_bytes(&out, _ANSWER_USAGE_CACHE_CREATION)
        _out_put_decimal(&out, cache_creation)
    _out_put(&out, "}", 1)
    return PyBytes_FromStringAndSize(out.data, out.size)


cdef bytes _answer_chat_completion_json(str id, str model, object content, bytes message_extra,
                                 str finish_reason, bytes usage, str provider,
                                 const char* content_json=NULL, Py_ssize_t content_json_n=0):
    """One choice holding the assistant's message. ``message_extra`` is JSON text of further
    message fields, each with its leading comma (``,"tool_calls":[...]``), or empty.
    ``content_json``: the content as a JSON string already (copied as it is), instead of
    ``content``."""
    cdef char stack[2048]
    cdef _Out out
    out.data, out.size, out.cap, out.heap = stack, 0, 2048, False
    try:
        _out_put_bytes(&out, _ANSWER_ID)
        _answer_put_json_string(&out, id)
        _out_put_bytes(&out, _ANSWER_CREATED)
        _out_put_decimal(&out, _chunk_now())
        _out_put_bytes(&out, _ANSWER_MODEL)
        _answer_put_json_string(&out, model)
        _out_put_bytes(&out, _ANSWER_CONTENT)
        if content_json != NULL:
            _out_put(&out, content_json, content_json_n)
        else:
            _answer_put_json_string(&out, content)
        _out_put_bytes(&out, _ANSWER_REFUSAL)
        _out_put_bytes(&out, message_extra)
        _out_put_bytes(&out, _ANSWER_FINISH)
        _answer_put_json_string(&out, finish_reason)
        _out_put_bytes(&out, _ANSWER_USAGE)
        _out_put_bytes(&out, usage)
        _out_put_bytes(&out, _ANSWER_PROVIDER)
        _answer_put_json_string(&out, provider)
        _out_put(&out, "}", 1)
        return PyBytes_FromStringAndSize(out.data, out.size)
    finally:
        if out.heap:
            PyMem_Free(out.data)
