"""A ``multipart/form-data`` body read into the JSON the mock's planners take.

The Images API's edits and variations are forms: text fields become string members (numbers and
booleans as OpenAI reads them), each file a ``{"filename", "content_type", "size"}`` member (a
list when the field repeats, as ``image[]`` does). The parts come from the mock's one form
reader (``multipart.py``).
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate.mock.multipart import FormError, collect, parse_parts

_encode = msgspec.json.Encoder().encode
_INTEGERS = frozenset({"n", "partial_images", "output_compression"})
_BOOLEANS = frozenset({"stream"})


def _text(name: str, value: str) -> Any:
    if name in _INTEGERS and value.lstrip("-").isdigit():
        return int(value)
    if name in _BOOLEANS and value in ("true", "false"):
        return value == "true"
    return value


def read_form(body: bytes, content_type: str) -> dict[str, Any]:
    """The form's fields; a malformed body reads as an empty form, which the planners then
    refuse for what it lacks (``prompt``, ``image``) as OpenAI does."""
    try:
        parts = parse_parts(body, content_type)
    except FormError:
        return {}
    fields: dict[str, Any] = {}
    for part in parts:
        name = part.name.removesuffix("[]")
        if part.file is None:
            fields[name] = _text(name, part.value)
            continue
        upload = part.file
        item = {"filename": upload.filename, "content_type": upload.content_type, "size": len(upload.data)}
        collect(fields, name, item)
    return fields


def form_as_json(body: bytes, content_type: str) -> bytes:
    return _encode(read_form(body, content_type))
