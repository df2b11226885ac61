"""Rate limits and budgets of gateway keys and virtual keys: counted before the call, charged after.

Every route is counted and charged: a relayed answer (the passthrough, a native ingress format)
with the usage it reports in whichever API's shape (``limits/usage.py``). A request is counted
(``rpm``) in the same store round trip as its cache look-up (the cache
stage puts its key on the attempt first); the tokens its answer reports are charged afterwards,
off the client's path: from a JSON body at once, from a stream as it ends. A fallback's second
target is not a new request for the gateway key: counted once, charged for what answered. The
gateway key's per-minute limits and what is left of them go back in OpenAI's ``x-ratelimit-*``
answer headers (a 429's say what refused it).
"""

from __future__ import annotations

import time

import msgspec

from fastgate.gateway.pipeline import Attempt, Exchange, Stage
from fastgate.gateway.relay import Outcome
from fastgate.limits.audio import speech_characters, transcript_usage
from fastgate.limits.guard import Guard, LimitReached
from fastgate.limits.headers import ratelimit_headers
from fastgate.limits.usage import (
    RelayedUsage,
    UsageTap,
    UsageView,
    image_params,
    image_usage,
    with_stream_usage,
)
from fastgate.providers.base import RELAYED, Endpoint
from fastgate.routing.plan import Leaf
from fastgate.schema.openai import StreamOptions
from fastgate.store.base import LimitRule, seconds_left

VIRTUAL_KEY_SCOPE = "virtual_key:"
#: Requests whose streams report usage when asked (``stream_options``, chat and completions only).
_STREAM_OPTIONS = frozenset({Endpoint.CHAT, Endpoint.COMPLETIONS})
_INCLUDE_USAGE = StreamOptions(include_usage=True)


class _Charge:
    """The limits of one attempt: ``rules`` checked and counted before the call, ``charged``
    with the answer's usage (the gateway key's rule too once an earlier target counted it)."""

    __slots__ = ("charged", "rules", "strip_usage", "tokens")

    def __init__(self, rules: list[LimitRule], charged: list[LimitRule]) -> None:
        self.rules = rules
        self.charged = charged
        self.tokens = any(r.counts_tokens for r in charged)
        #: The client did not ask for stream usage; the gateway did, and strips it again.
        self.strip_usage = False


class _KeyLimits:
    """The gateway key's rule, whether an earlier target of the request counted it, and its
    window's counts once it did (for the ``x-ratelimit-*`` headers)."""

    __slots__ = ("counted", "headers", "rule")

    def __init__(self, rule: LimitRule) -> None:
        self.rule = rule
        self.counted = False
        self.headers: dict[str, str] | None = None


class LimitsStage(Stage):
    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def arrive(self, ex: Exchange) -> bool:
        key = ex.key  # the keys stage, before this one, authenticated it
        rule = key.limits.rule(f"key:{key.id}") if key is not None else None
        if rule is None:
            return False
        ex.note(self, _KeyLimits(rule))
        return True

    def wants(self, leaf: Leaf) -> bool:
        return bool(leaf.target.virtual_key)  # its virtual key may have limits

    def engage(self, ex: Exchange, at: Attempt) -> bool:
        key: _KeyLimits | None = ex.noted(self)
        vk = at.virtual_key
        vk_rule = vk.limits.rule(VIRTUAL_KEY_SCOPE + vk.slug) if vk is not None else None
        charged = [r for r in (key.rule if key else None, vk_rule) if r is not None]
        if not charged:
            return False
        charge = _Charge([r for r in charged if not (key and key.counted and r is key.rule)], charged)
        call = at.call
        if (
            ex.stream
            and charge.tokens
            and call.endpoint in _STREAM_OPTIONS
            and not _asks_usage(call.view.stream_options)
        ):
            # Ask for usage: OpenAI-compatible upstreams through the body, mapped providers
            # (which report usage in their own events) through the view their mapper reads.
            charge.strip_usage = True
            target = call.target
            call.target = msgspec.structs.replace(
                target, override_params=with_stream_usage(target.override_params)
            )
            call.view = msgspec.structs.replace(call.view, stream_options=_INCLUDE_USAGE)
        at.notes[self] = charge
        return True

    async def before(self, ex: Exchange, at: Attempt) -> Outcome | None:
        """Count the request (and take the cache's look-up along); over a gateway key's limit a
        429 for the request, over a virtual key's an unreached outcome: a fallback goes on to the
        next target, and without one the client gets the 429."""
        charge: _Charge = at.notes[self]
        try:
            verdict = await self.guard.admit(charge.rules, at.lookup)
        except LimitReached as exc:
            if not exc.scope.startswith(VIRTUAL_KEY_SCOPE):
                raise
            return Outcome(
                status=429,
                provider=at.provider,
                call=at.call,
                headers=exc.headers,
                body=exc.body(),
                reached=False,
            )
        if at.lookup is not None:
            at.looked_up, at.cached = True, verdict.cached
        key: _KeyLimits | None = ex.noted(self)
        if key is not None and not key.counted:
            key.counted = True
            if key.rule.rpm or key.rule.tpm:
                reset = seconds_left(time.time())
                key.headers = ratelimit_headers(key.rule, verdict.requests, verdict.tokens, reset)
        return None

    async def after(self, ex: Exchange, at: Attempt, outcome: Outcome) -> Outcome:
        charge: _Charge = at.notes[self]
        if charge.tokens and outcome.reached and 200 <= outcome.status < 300:
            self._charge_answer(ex, at, outcome, charge)
        key: _KeyLimits | None = ex.noted(self)
        if key is not None and key.headers:
            outcome.headers.update(key.headers)
        return outcome

    def _charge_answer(self, ex: Exchange, at: Attempt, outcome: Outcome, charge: _Charge) -> None:
        """A complete 2xx answer's usage: audio by what it took, images per image, a relayed
        answer a stage read whole (guardrails) in whichever API's shape it reports, the rest
        from ``Outcome.answer_usage``."""
        endpoint = at.call.endpoint
        if endpoint in _AUDIO:
            self._charge_audio(ex, at, outcome, charge)
            return
        body = outcome.body
        if body is None or outcome.from_cache:
            return
        asked = ex.view.model or ""
        if endpoint is Endpoint.IMAGES:
            self._charge_images(charge, at, body)
            return
        if endpoint in RELAYED:
            reader = RelayedUsage(outcome.content_type)
            reader.feed(body)
            usage, model = reader.usage(), reader.model
        else:
            view = outcome.answer_usage()
            usage, model = (view.usage, view.model) if view is not None else (None, None)
        if usage is not None:
            self.guard.charge(charge.charged, outcome.provider.name, model or asked, usage, asked)

    def _charge_images(self, charge: _Charge, at: Attempt, body: bytes) -> None:
        """Images are priced per image (by quality and size) and, for GPT image models, per token."""
        count, usage = image_usage(body)
        params = image_params(at.call.body, at.call.target.override_params)
        cost = self.guard.pricing.table.image_cost(params.model, count, params.quality, params.size)
        self.guard.charge(charge.charged, at.provider.name, params.model or "", usage, cost=cost)

    def watch(self, ex: Exchange, at: Attempt, outcome: Outcome) -> _UsageWatcher | _RelayedWatcher | None:
        charge: _Charge = at.notes[self]
        if not charge.tokens or not 200 <= outcome.status < 300:
            return None
        if outcome.mapper is None:  # relayed as it came: whichever API's usage it reports
            if outcome.content_type not in _REPORTS_USAGE:
                return None  # audio, a file's content: nothing to read a usage from
            return _RelayedWatcher(self.guard, charge, outcome)
        # A cached stream is not charged again, but the usage chunk asked for is still removed.
        return _UsageWatcher(None if outcome.from_cache else self.guard, charge, ex, outcome)

    def _charge_audio(self, ex: Exchange, at: Attempt, outcome: Outcome, charge: _Charge) -> None:
        """Speech by its input's characters; a transcription by the seconds or tokens its
        answer reports (``limits/audio.py``)."""
        seconds, usage, characters = 0.0, None, 0
        if at.call.endpoint is Endpoint.SPEECH:
            characters = speech_characters(ex.body)
        elif outcome.body is not None:
            seconds, usage = transcript_usage(outcome.body)
        self.guard.charge_audio(charge.charged, at.provider.name, ex.view.model, seconds, characters, usage)


_AUDIO = frozenset({Endpoint.SPEECH, Endpoint.TRANSCRIPTIONS, Endpoint.TRANSLATIONS})
#: What a relayed answer that reports usage is sent as.
_REPORTS_USAGE = frozenset({"application/json", "text/event-stream"})


def _asks_usage(options: StreamOptions | None) -> bool:
    return bool(options and options.include_usage)


class _UsageWatcher:
    """A stream's usage, charged as it ends; the usage chunk the gateway asked for is removed
    (its usage is put on the outcome first, for the stages that watch the stream after this one)."""

    __slots__ = ("asked", "charge", "guard", "outcome", "tap")

    def __init__(self, guard: Guard | None, charge: _Charge, ex: Exchange, outcome: Outcome) -> None:
        self.guard = guard
        self.charge = charge
        self.outcome = outcome
        self.asked = ex.view.model or ""
        self.tap = UsageTap(charge.strip_usage)

    def feed(self, out: bytes) -> bytes:
        tap = self.tap
        out = tap.feed(out)
        if tap.usage is not None and self.outcome.usage is None:
            self.outcome.usage = UsageView(tap.model, tap.usage)
        return out

    async def end(self) -> bytes:
        tap = self.tap
        tail = tap.flush()
        if tap.usage is not None and self.guard is not None:
            outcome = self.outcome
            model = tap.model or self.asked
            self.guard.charge(self.charge.charged, outcome.provider.name, model, tap.usage, self.asked)
        return tail


class _RelayedWatcher:
    """An answer relayed as it came, charged with the usage it reports as it ends (a route that
    reports none was counted as a request only)."""

    __slots__ = ("charge", "guard", "provider", "reader")

    def __init__(self, guard: Guard, charge: _Charge, outcome: Outcome) -> None:
        self.guard = guard
        self.charge = charge
        self.provider = outcome.provider.name
        self.reader = RelayedUsage(outcome.content_type)

    def feed(self, out: bytes) -> bytes:
        return self.reader.feed(out)

    async def end(self) -> bytes:
        usage = self.reader.usage()
        if usage is not None:
            self.guard.charge(self.charge.charged, self.provider, self.reader.model or "", usage)
        return b""
