"""The OpenAI request fields the gateway itself needs; everything else stays in the raw body.

Decoding into this view validates the whole JSON document while building objects only for
the few fields routing and relaying read, so unknown parameters reach an OpenAI-compatible
upstream byte for byte.
"""

from __future__ import annotations

from typing import Any

import msgspec


class StreamOptions(msgspec.Struct, omit_defaults=True):
    include_usage: bool = False


class RequestView(msgspec.Struct, omit_defaults=True):
    model: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None


class ModelCard(msgspec.Struct):
    id: str
    object: str = "model"
    created: int = 0
    owned_by: str = "fastgate"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: str = "list"


view_decoder = msgspec.json.Decoder(RequestView)
object_decoder = msgspec.json.Decoder(dict[str, Any])
json_encoder = msgspec.json.Encoder()
