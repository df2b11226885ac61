# Embedding similarity for the semantic cache: cosine between float32 vectors held as bytes.
#
# A lookup compares one prompt's embedding with every stored one of its partition (hundreds of
# 1536-float vectors); in Python that is ~100k multiplications per 100 vectors, here a tight C loop.

from libc.math cimport sqrt

from array import array as _vec_array
from base64 import b64encode as _vec_b64encode
from sys import byteorder as _vec_byteorder

cdef bint _VEC_BIG_ENDIAN = _vec_byteorder == "big"


cdef str float32_base64(list vector):
    """An embedding as OpenAI's ``encoding_format: "base64"`` sends it (what the openai SDK asks
    for by default): little-endian float32, base64-encoded."""
    packed = _vec_array("f", vector)
    if _VEC_BIG_ENDIAN:
        packed.byteswap()
    return _vec_b64encode(packed.tobytes()).decode("ascii")


cdef inline double _vec_dot(const float* a, const float* b, Py_ssize_t n) noexcept nogil:
    cdef double total = 0.0
    cdef Py_ssize_t i
    for i in range(n):
        total += <double>a[i] * <double>b[i]
    return total


def best_match(bytes query, list candidates):
    """``(index, similarity)`` of the candidate most similar to ``query``; ``(-1, -1.0)`` if none.

    Vectors are packed little-endian float32 (``array('f').tobytes()``); candidates of another
    length (an embedding model changed) are skipped.
    """
    cdef char* q
    cdef char* c
    cdef Py_ssize_t qn, cn, dims
    cdef double qnorm, cnorm, sim
    cdef double best = -1.0
    cdef Py_ssize_t best_index = -1
    cdef Py_ssize_t i
    PyBytes_AsStringAndSize(query, &q, &qn)
    dims = qn // 4
    qnorm = sqrt(_vec_dot(<const float*>q, <const float*>q, dims))
    if qnorm == 0.0:
        return best_index, best
    for i in range(len(candidates)):
        candidate = candidates[i]
        if type(candidate) is not bytes:
            continue
        PyBytes_AsStringAndSize(<bytes>candidate, &c, &cn)
        if cn != qn:
            continue
        cnorm = sqrt(_vec_dot(<const float*>c, <const float*>c, dims))
        if cnorm == 0.0:
            continue
        sim = _vec_dot(<const float*>q, <const float*>c, dims) / (qnorm * cnorm)
        if sim > best:
            best = sim
            best_index = i
    return best_index, best
