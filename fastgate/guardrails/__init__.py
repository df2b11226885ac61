"""Guardrails and hooks with Portkey's semantics (reference §7): checks run before the upstream
call and after the answer, verdicts mapped to 446 / 246 and ``hook_results``.

Where things are:
- ``spec``: hook objects and shorthands as configs write them; ``compile``: built once per
  config, each leaf of a routing plan carrying its ``LeafHooks`` (None when it has none).
- ``check`` and ``checks/``: the check interface and Portkey's default checks; ``registry``: check
  ids, operators' own through the ``fastgate.guardrails`` entry-point group.
- ``context``: what a check reads; ``engine``: running one event's hooks; ``outcome``: the
  status, body or stream events the client gets; ``stream``: a streamed answer reassembled for
  the after-request hooks; ``defaults``: the default-guardrail headers.
- ``runtime`` / ``transport`` / ``jwks``: what checks that call out share per server.

A gateway stage calls ``engine.before_request`` (446: ``outcome.denied_body``; else the request
to send, transformed or not), then ``engine.after_request`` on the decoded answer and
``outcome.json_answer`` (or, for a stream, ``outcome.stream_status`` / ``stream_prelude`` /
``stream_epilogue``), and ``engine.spawn_async`` once the answer went out.
"""

from fastgate.guardrails.check import Check, CheckError, CheckOutcome, ConfigError
from fastgate.guardrails.context import HookContext

__all__ = ["Check", "CheckError", "CheckOutcome", "ConfigError", "HookContext"]
