"""A ``multipart/form-data`` body (RFC 7578) read into the JSON the mock's planners take.

The Images API's edits and variations are forms: text fields become string members (numbers and
booleans as OpenAI reads them), each file a ``{"filename", "content_type", "size"}`` member (a
list when the field repeats, as ``image[]`` does). Parsed with the standard library's MIME parser:
the mock is no hot path.
"""

from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, TypeGuard

import msgspec

_encode = msgspec.json.Encoder().encode
_INTEGERS = frozenset({"n", "partial_images", "output_compression"})
_BOOLEANS = frozenset({"stream"})


def is_form(content_type: str | None) -> TypeGuard[str]:
    return content_type is not None and content_type.lower().startswith("multipart/form-data")


def _text(name: str, value: str) -> Any:
    if name in _INTEGERS and value.lstrip("-").isdigit():
        return int(value)
    if name in _BOOLEANS and value in ("true", "false"):
        return value == "true"
    return value


def read_form(body: bytes, content_type: str) -> dict[str, Any]:
    """The form's fields; a malformed body reads as an empty form."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, Any] = {}
    if not message.is_multipart():
        return fields
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        name = name.removesuffix("[]")
        raw = part.get_payload(decode=True)
        payload = raw if isinstance(raw, bytes) else b""
        filename = part.get_filename()
        if filename is None:
            fields[name] = _text(name, payload.decode("utf-8", "replace"))
            continue
        item = {"filename": filename, "content_type": part.get_content_type(), "size": len(payload)}
        if name in fields:
            previous = fields[name]
            fields[name] = [*previous, item] if isinstance(previous, list) else [previous, item]
        else:
            fields[name] = item
    return fields


def form_as_json(body: bytes, content_type: str) -> bytes:
    return _encode(read_form(body, content_type))
