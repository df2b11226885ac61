# JSON text checks the decoder does not make (see fastgate/jsontext.py).


def quoted_twice(bytes body, tuple quoted):
    """The members of ``quoted`` (each a JSON key with its quotes, ``b'"model"'``) found more than
    once in ``body``: one pass over its quote marks instead of one full search per key.

    Occurrences may overlap (``"a"a"`` holds ``"a"`` twice): a superset of the keys really
    repeated, which the caller confirms with a parse.
    """
    cdef char* p
    cdef Py_ssize_t n, pos = 0, k, i, m, nkeys = len(quoted)
    cdef const char* hit
    cdef int counts[8]
    cdef const char* keys[8]
    cdef Py_ssize_t lengths[8]
    cdef bytes key
    if nkeys > 8:
        raise ValueError("at most 8 keys")
    for k in range(nkeys):
        key = quoted[k]
        keys[k] = key
        lengths[k] = len(key)
        counts[k] = 0
    PyBytes_AsStringAndSize(body, &p, &n)
    while True:
        hit = <const char*>memchr(p + pos, b'"', n - pos)
        if hit == NULL:
            break
        i = hit - p
        for k in range(nkeys):
            m = lengths[k]
            if i + m <= n and p[i + 1] == keys[k][1] and memcmp(p + i, keys[k], m) == 0:
                counts[k] += 1
                break
        pos = i + 1
    return [quoted[k] for k in range(nkeys) if counts[k] > 1]
