"""The mock's reading of ``multipart/form-data`` bodies (RFC 7578): fields and files by name.

Only the mock reads forms whole; the gateway streams them through unread (``gateway/uploads.py``
looks at the fields before the first file, no further).
"""

from __future__ import annotations

import re

import msgspec

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_PARAM = re.compile(rb'\b(name|filename)="([^"]*)"', re.IGNORECASE)
_TYPE = re.compile(rb"^content-type:\s*(.+)$", re.IGNORECASE | re.MULTILINE)


class FormFile(msgspec.Struct):
    filename: str
    content_type: str
    data: bytes


class FormError(ValueError):
    """The body is not a multipart form this reader can take apart."""


def parse_form(body: bytes, content_type: str) -> tuple[dict[str, str | list[str]], dict[str, FormFile]]:
    """Text fields (a name given more than once, like ``timestamp_granularities[]``, as a list)
    and files of a form."""
    match = _BOUNDARY.search(content_type)
    if match is None or not content_type.lower().startswith("multipart/form-data"):
        raise FormError("the body is not multipart/form-data with a boundary")
    delimiter = b"--" + match.group(1).encode("latin-1")
    parts = body.split(b"\r\n" + delimiter)
    if not parts[0].startswith(delimiter):
        raise FormError("the form does not start with its boundary")
    parts[0] = parts[0][len(delimiter) :]
    fields: dict[str, str | list[str]] = {}
    files: dict[str, FormFile] = {}
    for part in parts:
        if part.startswith(b"--"):
            break  # the closing delimiter
        headers, sep, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise FormError("a form part without a header block")
        params = {k.lower().decode(): v.decode("utf-8", "replace") for k, v in _PARAM.findall(headers)}
        name = params.get("name")
        if name is None:
            raise FormError("a form part without a name")
        if "filename" in params:
            kind = _TYPE.search(headers)
            ctype = kind.group(1).strip().decode("latin-1") if kind else "application/octet-stream"
            files[name] = FormFile(params["filename"], ctype, value)
            continue
        text = value.decode("utf-8", "replace")
        previous = fields.get(name)
        if previous is None:
            fields[name] = text
        elif isinstance(previous, list):
            previous.append(text)
        else:
            fields[name] = [previous, text]
    return fields, files
