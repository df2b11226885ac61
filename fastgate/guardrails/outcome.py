"""What the client gets once hooks ran: the status and body of a JSON answer, or the extra
events of a stream (Portkey's ``afterRequestHookHandler``, ``createHookResponse`` and the stream
handler's ``hook_results`` chunk; reference §7.3).

- A ``deny`` hook failed: 446 with an error of type ``hooks_failed`` and ``hook_results``.
- Some hook failed, none denying, and the answer is a 200: 246, the answer and ``hook_results``.
- Otherwise the upstream's status; ``hook_results`` is added to every JSON object answer whose
  request ran hooks (strict mode or not, as Portkey does).
- Streams: 246 when a before-request hook failed; in non-strict mode a first event carrying the
  before-request ``hook_results`` (``event: hook_results`` on ``/v1/messages``). Portkey skips
  after-request hooks on streams; here they run on the assembled answer at its end, and their
  verdict is the last event before ``[DONE]``: in non-strict mode a ``hook_results`` event, and
  whatever the mode, when a ``deny`` hook failed, an error event with the 446 body (status and
  text have gone out by then; the error is what SDKs raise on).
"""

from __future__ import annotations

from fastgate.guardrails.context import MESSAGES, RESPONSES
from fastgate.guardrails.engine import HookRun
from fastgate.guardrails.results import BeforeHookResults, HookResult, HookResults, encode

HOOKS_FAILED = 446
HOOKS_SOFT_FAILED = 246
MESSAGE = (
    "The guardrail checks defined in the config failed. You can find more information in the "
    "`hook_results` object."
)
_ERROR = (
    b'{"error":{"message":'
    + encode(MESSAGE)
    + b',"type":"hooks_failed","param":null,"code":null},"hook_results":'
)
_NONE: list[HookResult] = []


def _results(before: HookRun | None, after: HookRun | None) -> bytes:
    return encode(HookResults(before.results if before else _NONE, after.results if after else _NONE))


def denied_body(before: HookRun | None, after: HookRun | None = None) -> bytes:
    """The 446 body: Portkey's ``hooks_failed`` error and both lists of results."""
    return _ERROR + _results(before, after) + b"}"


def with_hook_results(body: bytes, results: bytes) -> bytes:
    """A JSON object answer with ``"hook_results"`` added as its last member, without decoding it
    again; any other body is returned as it is."""
    end = body.rstrip()
    if not end.endswith(b"}") or not body.lstrip().startswith(b"{"):
        return body
    head = end[:-1].rstrip()
    return b"".join((head, b"" if head.endswith(b"{") else b",", b'"hook_results":', results, b"}"))


def json_answer(
    status: int, body: bytes, before: HookRun | None, after: HookRun | None = None
) -> tuple[int, bytes]:
    """Status and body for a JSON answer whose request ran hooks.

    ``body`` is the answer as the gateway would send it; when an after-request check changed the
    answer, ``after.response`` is encoded in its place.
    """
    if after is not None and after.denied:
        return HOOKS_FAILED, denied_body(before, after)
    if after is not None and after.response is not None:
        body = encode(after.response)
    failed = (before is not None and before.failed) or (after is not None and after.failed)
    if failed and status == 200:
        status = HOOKS_SOFT_FAILED
    if (before is not None and before.results) or (after is not None and after.results):
        body = with_hook_results(body, _results(before, after))
    return status, body


def stream_status(before: HookRun | None, status: int) -> int:
    """A stream's status: 246 when a before-request hook failed and the upstream said 200."""
    return HOOKS_SOFT_FAILED if before is not None and before.failed and status == 200 else status


def _event(name: bytes, data: bytes, request_type: str) -> bytes:
    if request_type in (MESSAGES, RESPONSES):
        return b"event: " + name + b"\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"


def stream_prelude(before: HookRun | None, strict: bool, request_type: str) -> bytes:
    """The first event of a stream: the before-request results, in non-strict mode only."""
    if strict or before is None or not before.results:
        return b""
    data = b'{"hook_results":' + encode(BeforeHookResults(before.results)) + b"}"
    return _event(b"hook_results", data, request_type)


def stream_epilogue(before: HookRun | None, after: HookRun | None, strict: bool, request_type: str) -> bytes:
    """The events after a stream's last chunk and before its ``[DONE]``: the after-request
    verdict (see the module's docstring)."""
    if after is None or not after.results:
        return b""
    if after.denied:
        body = denied_body(before, after)
        if request_type == MESSAGES:
            # Anthropic's stream error event: {"type": "error", "error": {"type", "message"}}.
            data = (
                b'{"type":"error","error":{"type":"hooks_failed","message":' + encode(MESSAGE) + b"},"
                b'"hook_results":' + _results(before, after) + b"}"
            )
            return _event(b"error", data, request_type)
        if request_type == RESPONSES:
            data = (
                b'{"type":"error","code":"hooks_failed","message":' + encode(MESSAGE) + b',"param":null,'
                b'"hook_results":' + _results(before, after) + b"}"
            )
            return _event(b"error", data, request_type)
        return _event(b"error", body, request_type)
    if strict:
        return b""
    data = b'{"hook_results":{"after_request_hooks":' + encode(after.results) + b"}}"
    return _event(b"hook_results", data, request_type)
