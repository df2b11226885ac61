"""The mock's reading of ``multipart/form-data`` bodies (RFC 7578): its parts, then fields and
files by name.

Only the mock reads forms whole; the gateway streams them through unread (``gateway/uploads.py``
looks at the fields before the first file, no further). One reader serves the mock's every
form: the OpenAI operations read fields and files here, the image planners a JSON view of the
same parts (``forms.py``).
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

import msgspec

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_PARAM = re.compile(rb'\b(name|filename)="([^"]*)"', re.IGNORECASE)
_TYPE = re.compile(rb"^content-type:\s*(.+)$", re.IGNORECASE | re.MULTILINE)


class FormFile(msgspec.Struct):
    filename: str
    content_type: str
    data: bytes


class FormPart(msgspec.Struct):
    """One part: a text field (``file`` None) or a file."""

    name: str
    value: str = ""
    file: FormFile | None = None


class FormError(ValueError):
    """The body is not a multipart form this reader can take apart."""


def is_form(content_type: str | None) -> TypeGuard[str]:
    return content_type is not None and content_type.lower().startswith("multipart/form-data")


def parse_parts(body: bytes, content_type: str) -> list[FormPart]:
    """The form's parts in order; :class:`FormError` for anything RFC 7578 would not send."""
    match = _BOUNDARY.search(content_type)
    if match is None or not is_form(content_type):
        raise FormError("the body is not multipart/form-data with a boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    pieces = body.split(b"\r\n" + delimiter)
    if not pieces[0].startswith(delimiter):
        raise FormError("the form does not start with its boundary")
    pieces[0] = pieces[0][len(delimiter) :]
    parts: list[FormPart] = []
    for piece in pieces:
        if piece.startswith(b"--"):
            return parts  # the closing delimiter
        headers, sep, value = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise FormError("a form part without a header block")
        params = {k.lower().decode(): v.decode("utf-8", "replace") for k, v in _PARAM.findall(headers)}
        name = params.get("name")
        if name is None:
            raise FormError("a form part without a name")
        if "filename" in params:
            kind = _TYPE.search(headers)
            ctype = kind.group(1).strip().decode("latin-1") if kind else "application/octet-stream"
            parts.append(FormPart(name, file=FormFile(params["filename"], ctype, value)))
        else:
            parts.append(FormPart(name, value.decode("utf-8", "replace")))
    raise FormError("the form has no closing boundary")


def collect(into: dict[str, Any], name: str, value: object) -> None:
    """A name a form gives once keeps its value; given again (``timestamp_granularities[]``,
    ``image[]``), its values as a list."""
    previous = into.get(name)
    if previous is None:
        into[name] = value
    elif isinstance(previous, list):
        previous.append(value)
    else:
        into[name] = [previous, value]


def parse_form(body: bytes, content_type: str) -> tuple[dict[str, Any], dict[str, FormFile]]:
    """Text fields (a repeated name's as a list) and files of a form."""
    fields: dict[str, Any] = {}
    files: dict[str, FormFile] = {}
    for part in parse_parts(body, content_type):
        if part.file is not None:
            files[part.name] = part.file
        else:
            collect(fields, part.name, part.value)
    return fields, files
