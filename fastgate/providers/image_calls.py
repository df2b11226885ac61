"""Image requests that fan out: a model that makes one image a call gets ``n`` calls.

``Provider.fan_out`` is asked before ``request``; a look at ``n`` alone (one field skimmed, a
config's ``override_params`` winning) keeps a one-image request on the single-call path without
mapping its body twice.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastgate.providers.base import Call


class _Count(msgspec.Struct):
    n: Any = None  # checked by the mapping, which refuses anything but a positive integer


_count_decoder = msgspec.json.Decoder(_Count)


def asks_several(call: Call) -> bool:
    """Whether the request asks for more than one image."""
    overrides: dict[str, Any] = call.target.override_params or {}
    n = overrides["n"] if "n" in overrides else _count_decoder.decode(call.body).n
    return isinstance(n, int) and not isinstance(n, bool) and n > 1
