# Text measures the guardrail checks take (fastgate/guardrails/checks/text.py).

from cpython.unicode cimport (
    Py_UNICODE_ISSPACE,
    PyUnicode_DATA,
    PyUnicode_GET_LENGTH,
    PyUnicode_KIND,
    PyUnicode_READ,
)


def word_count(str text):
    """``len(text.split())`` without a string made per word: the runs of characters that are not
    whitespace (``str.isspace``), counted in one pass over the text as it is stored."""
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(text), words = 0
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef bint inside = False
    for i in range(n):
        if Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i)):
            inside = False
        elif not inside:
            inside = True
            words += 1
    return words
