# Text measures the guardrail checks take (fastgate/guardrails/checks/text.py).

from cpython.unicode cimport (
    Py_UNICODE_ISSPACE,
    PyUnicode_DATA,
    PyUnicode_GET_LENGTH,
    PyUnicode_1BYTE_KIND,
    PyUnicode_KIND,
    PyUnicode_READ,
)


#: Which of the 256 one-byte code points ``str.isspace`` calls whitespace (1) or not (0), read
#: off Python itself.
cdef unsigned char _tx_space1[256]
for _tx_c in range(256):
    _tx_space1[_tx_c] = chr(_tx_c).isspace()


def word_count(str text):
    """``len(text.split())`` without a string made per word: the runs of characters that are not
    whitespace (``str.isspace``), counted in one pass over the text as it is stored. One-byte text
    (most) by a table and without a branch: a word starts wherever a space is followed by a
    non-space, which text alternates too often for a branch to be predicted."""
    cdef Py_ssize_t i, n = PyUnicode_GET_LENGTH(text), words = 0
    cdef int kind = PyUnicode_KIND(text)
    cdef void* data = PyUnicode_DATA(text)
    cdef const unsigned char* one = <const unsigned char*>data
    cdef unsigned char space, before = 1
    cdef bint inside = False
    if kind == PyUnicode_1BYTE_KIND:
        for i in range(n):
            space = _tx_space1[one[i]]
            words += before & (space ^ 1)
            before = space
        return words
    for i in range(n):
        if Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i)):
            inside = False
        elif not inside:
            inside = True
            words += 1
    return words
