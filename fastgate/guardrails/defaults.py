"""``x-portkey-default-input-guardrails`` / ``-output-guardrails``: guardrails a client (or a
proxy in front of the gateway) adds to every target, after the target's own hooks.

Each header is a JSON array of guardrail shorthand objects; a distinct pair of header values is
parsed, judged (SSRF policy) and compiled once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from fastgate.errors import bad_request
from fastgate.guardrails.compile import LeafHooks, check_spec_urls, compile_specs, guardrail_specs
from fastgate.guardrails.registry import REGISTRY, Registry
from fastgate.routing.config import ConfigCache
from fastgate.ssrf import HostPolicy

INPUT = "x-portkey-default-input-guardrails"
OUTPUT = "x-portkey-default-output-guardrails"
_decode = msgspec.json.Decoder(list[Any]).decode


class DefaultGuardrails:
    """Reads the two headers into hooks; built once per server."""

    def __init__(self, policy: HostPolicy, registry: Registry = REGISTRY) -> None:
        self.policy = policy
        self.registry = registry
        self._built: ConfigCache[tuple[str | None, str | None], LeafHooks] = ConfigCache(self._build)

    def read(self, headers: Mapping[str, str]) -> LeafHooks | None:
        """The hooks the headers add, or None without them (most requests)."""
        inputs, outputs = headers.get(INPUT), headers.get(OUTPUT)
        if not inputs and not outputs:
            return None
        return self._built.get((inputs, outputs))

    def _build(self, key: tuple[str | None, str | None]) -> LeafHooks:
        hooks = []
        for name, text, kind in ((INPUT, key[0], "input"), (OUTPUT, key[1], "output")):
            items: list[Any] = []
            if text:
                try:
                    items = _decode(text)
                except (msgspec.DecodeError, RecursionError):
                    raise bad_request(f"{name} must be a JSON array of guardrails", param=name) from None
            specs = guardrail_specs(items, kind, name)
            check_spec_urls(specs, self.policy, self.registry)
            hooks.append(compile_specs(specs, self.registry))
        return LeafHooks(hooks[0], hooks[1])
