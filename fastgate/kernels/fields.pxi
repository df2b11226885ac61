# msgspec Struct fields read from compiled code for the cost of a pointer read.
#
# ``obj.name`` on a Struct, from Cython, is a whole attribute lookup (the type's MRO, the
# member descriptor and its checks): ~130 instructions, more than the work a mapping does with
# most values. A _FdStructField keeps the field's slot (the member descriptor's PyMemberDef), found
# once at import, and reads it directly from an object of exactly the Struct type it came from;
# any other object (a subclass, a value override_params put there) takes the ordinary lookup.

from types import MemberDescriptorType as _MemberDescriptorType


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        pass
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    object PyMember_GetOne(const char* obj, PyMemberDef* member)


@cython.final
cdef class _FdStructField:
    cdef object owner
    cdef str name
    cdef object _descriptor  # keeps ``member`` alive
    cdef PyMemberDef* member

    def __init__(self, object owner, str name):
        descriptor = getattr(owner, name)
        if type(descriptor) is not _MemberDescriptorType:
            raise TypeError(f"{owner.__name__}.{name} is not a Struct field")
        self.owner = owner
        self.name = name
        self._descriptor = descriptor
        self.member = (<PyMemberDescrObject*>descriptor).d_member

    cdef inline object of(self, object obj):
        if type(obj) is self.owner:
            return PyMember_GetOne(<const char*><void*>obj, self.member)
        return getattr(obj, self.name)
